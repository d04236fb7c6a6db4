package mqtt

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestParseDevicePublish(t *testing.T) {
	tests := []struct {
		name     string
		deviceID string
		topic    string
		want     Publish
	}{
		{
			name:     "telemetry without properties",
			deviceID: "dev1",
			topic:    "devices/dev1/messages/events/",
			want:     Publish{Kind: Telemetry},
		},
		{
			name:     "telemetry without trailing slash",
			deviceID: "dev1",
			topic:    "devices/dev1/messages/events",
			want:     Publish{Kind: Telemetry},
		},
		{
			// What azure-iot-device-mqtt 1.16.4 sends: querystring.stringify for
			// system properties ($ as %24), then encodeURIComponent pairs.
			name:     "telemetry from the node sdk",
			deviceID: "dev'(1)*!",
			topic:    "devices/dev'(1)*!/messages/events/%24.mid=m%201&%24.cid=c1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&Sensor%20Kind=a%26b%3Dc",
			want: Publish{
				Kind:   Telemetry,
				Bag:    "%24.mid=m%201&%24.cid=c1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&Sensor%20Kind=a%26b%3Dc",
				System: map[string]string{"$.mid": "m 1", "$.cid": "c1", "$.ct": "application/json", "$.ce": "utf-8"},
				App:    map[string]string{"alert": "high", "Sensor Kind": "a&b=c"},
			},
		},
		{
			name:     "telemetry with literal $ and all system properties",
			deviceID: "dev1",
			topic:    "devices/dev1/messages/events/$.to=%2Fx&$.uid=u&$.exp=2030-01-01T00%3A00%3A00Z&k=",
			want: Publish{
				Kind:   Telemetry,
				Bag:    "$.to=%2Fx&$.uid=u&$.exp=2030-01-01T00%3A00%3A00Z&k=",
				System: map[string]string{"$.to": "/x", "$.uid": "u", "$.exp": "2030-01-01T00:00:00Z"},
				App:    map[string]string{"k": ""},
			},
		},
		{
			name:     "twin get",
			deviceID: "dev1",
			topic:    "$iothub/twin/GET/?$rid=0b5a8a9e-7c1f-4a4e-9d36-f2a5f1f0b0b1",
			want:     Publish{Kind: TwinGet, RID: "0b5a8a9e-7c1f-4a4e-9d36-f2a5f1f0b0b1"},
		},
		{
			name:     "twin get with encoded $",
			deviceID: "dev1",
			topic:    "$iothub/twin/GET/?%24rid=42",
			want:     Publish{Kind: TwinGet, RID: "42"},
		},
		{
			name:     "reported patch with version",
			deviceID: "dev1",
			topic:    "$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3",
			want:     Publish{Kind: TwinPatchReported, RID: "7"},
		},
		{
			name:     "method response",
			deviceID: "dev1",
			topic:    "$iothub/methods/res/200/?$rid=abc",
			want:     Publish{Kind: MethodResponse, RID: "abc", Status: 200},
		},
		{
			name:     "method response with a negative status",
			deviceID: "dev1",
			topic:    "$iothub/methods/res/-1/?$rid=abc",
			want:     Publish{Kind: MethodResponse, RID: "abc", Status: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDevicePublish(tt.deviceID, tt.topic)
			if err != nil {
				t.Fatalf("ParseDevicePublish(%q, %q): %v", tt.deviceID, tt.topic, err)
			}
			assertPublish(t, got, tt.want)
		})
	}
}

func assertPublish(t *testing.T, got, want Publish) {
	t.Helper()
	if got.Kind != want.Kind || got.Bag != want.Bag || got.RID != want.RID || got.Status != want.Status {
		t.Errorf("got {Kind:%v Bag:%q RID:%q Status:%d}, want {Kind:%v Bag:%q RID:%q Status:%d}",
			got.Kind, got.Bag, got.RID, got.Status, want.Kind, want.Bag, want.RID, want.Status)
	}
	if !maps.Equal(got.System, want.System) {
		t.Errorf("System: got %v, want %v", got.System, want.System)
	}
	if !maps.Equal(got.App, want.App) {
		t.Errorf("App: got %v, want %v", got.App, want.App)
	}
}

func TestParseDevicePublishRefused(t *testing.T) {
	tests := []struct {
		name      string
		topic     string
		forbidden bool   // wraps ErrForbiddenTopic
		wantMsg   string // in the error
	}{
		{"another device's telemetry", "devices/dev2/messages/events/", true, `belongs to device "dev2", not "dev1"`},
		{"device id prefix", "devices/dev10/messages/events/", true, `belongs to device "dev10"`},
		{"device id suffix", "devices/dev/messages/events/", true, `belongs to device "dev"`},
		{"c2d topic", "devices/dev1/messages/devicebound/", true, "publishes telemetry on"},
		{"module telemetry", "devices/dev1/modules/m1/messages/events/", true, "module identities"},
		{"events prefix only", "devices/dev1/messages/eventsX", true, "publishes telemetry on"},
		{"method request", "$iothub/methods/POST/reboot/?$rid=1", true, "a device publishes on"},
		{"desired patch", "$iothub/twin/PATCH/properties/desired/?$version=2", true, "a device publishes on"},
		{"twin response", "$iothub/twin/res/200/?$rid=1", true, "a device publishes on"},
		{"lower-case verb", "$iothub/twin/get/?$rid=1", true, "a device publishes on"},
		{"other topic", "sensors/temp", true, "a device publishes on"},
		{"empty", "", true, "a device publishes on"},
		{"twin get without rid", "$iothub/twin/GET/", false, "missing $rid"},
		{"twin get with empty rid", "$iothub/twin/GET/?$rid=", false, "missing $rid"},
		{"reported without rid", "$iothub/twin/PATCH/properties/reported/?$version=1", false, "missing $rid"},
		{"method response bad status", "$iothub/methods/res/ok/?$rid=1", false, `status "ok" is not an integer`},
		{"method response huge status", "$iothub/methods/res/99999999999/?$rid=1", false, "not an integer"},
		{"bad escape in bag", "devices/dev1/messages/events/a=%zz", false, `value of "a"`},
		{"bad escape in query", "$iothub/twin/GET/?$rid=%4", false, "twin get topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDevicePublish("dev1", tt.topic)
			if err == nil {
				t.Fatalf("ParseDevicePublish(%q): got nil error", tt.topic)
			}
			if errors.Is(err, ErrForbiddenTopic) != tt.forbidden {
				t.Errorf("errors.Is(%v, ErrForbiddenTopic): got %v, want %v", err, !tt.forbidden, tt.forbidden)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q: want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestAllowedSubscription(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"devices/dev1/messages/devicebound/#", true},
		{"$iothub/methods/POST/#", true},
		{"$iothub/twin/res/#", true},
		{"$iothub/twin/PATCH/properties/desired/#", true},
		{"devices/dev2/messages/devicebound/#", false},
		{"devices/+/messages/devicebound/#", false},
		{"devices/dev1/messages/events/#", false},
		{"devices/dev1/#", false},
		{"#", false},
		{"$iothub/#", false},
		{"$iothub/methods/POST/reboot", false},
		{"$iothub/twin/PATCH/properties/reported/#", false},
		{"", false},
	}
	for _, tt := range tests {
		err := AllowedSubscription("dev1", tt.filter)
		if (err == nil) != tt.want {
			t.Errorf("AllowedSubscription(dev1, %q): got %v, want allowed=%v", tt.filter, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrForbiddenTopic) {
			t.Errorf("AllowedSubscription(dev1, %q): error %v does not wrap ErrForbiddenTopic", tt.filter, err)
		}
	}
}

func TestDecodePropertyBag(t *testing.T) {
	tests := []struct {
		name       string
		bag        string
		wantSystem map[string]string
		wantApp    map[string]string
		wantErr    string
	}{
		{name: "empty", bag: ""},
		{name: "only separators", bag: "&&"},
		{name: "app", bag: "a=1&b=x%20y", wantApp: map[string]string{"a": "1", "b": "x y"}},
		{name: "plus stays plus", bag: "a=1+2", wantApp: map[string]string{"a": "1+2"}},
		{name: "encoded dollar", bag: "%24.mid=m&$.cid=c", wantSystem: map[string]string{"$.mid": "m", "$.cid": "c"}},
		{name: "no value", bag: "flag", wantApp: map[string]string{"flag": ""}},
		{name: "equals in value", bag: "a=b=c", wantApp: map[string]string{"a": "b=c"}},
		{name: "last value wins", bag: "a=1&a=2", wantApp: map[string]string{"a": "2"}},
		{name: "unicode", bag: "t%C3%A9=%F0%9F%98%80", wantApp: map[string]string{"té": "😀"}},
		{name: "empty key", bag: "=v", wantErr: "empty property name"},
		{name: "bad escape in key", bag: "a%g=1", wantErr: `key "a%g"`},
		{name: "bad escape in value", bag: "a=%", wantErr: `value of "a"`},
		{name: "invalid utf-8", bag: "a=%FF", wantErr: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys, app, err := DecodePropertyBag(tt.bag)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodePropertyBag(%q): got error %v, want one containing %q", tt.bag, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodePropertyBag(%q): %v", tt.bag, err)
			}
			if !maps.Equal(sys, tt.wantSystem) || !maps.Equal(app, tt.wantApp) {
				t.Errorf("DecodePropertyBag(%q): got %v %v, want %v %v", tt.bag, sys, app, tt.wantSystem, tt.wantApp)
			}
		})
	}
}

func TestEncodePropertyBag(t *testing.T) {
	tests := []struct {
		name   string
		system map[string]string
		app    map[string]string
		want   string
	}{
		{"empty", nil, nil, ""},
		{"system first, sorted", map[string]string{"$.to": "/devices/d/messages/deviceBound", "$.mid": "m1"},
			map[string]string{"z": "1", "a": "2"},
			"%24.mid=m1&%24.to=%2Fdevices%2Fd%2Fmessages%2FdeviceBound&a=2&z=1"},
		{"separators and wildcards encoded", nil, map[string]string{"k&=/": "a+b#c d"}, "k%26%3D%2F=a%2Bb%23c%20d"},
		{"encodeURIComponent leaves these", nil, map[string]string{"-_.!~*'()": "é"}, "-_.!~*'()=%C3%A9"},
		{"invalid utf-8 replaced", nil, map[string]string{"k": "a\xffb"}, "k=a%EF%BF%BDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EncodePropertyBag(tt.system, tt.app); got != tt.want {
				t.Errorf("EncodePropertyBag: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuilders(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"c2d without properties keeps the slash", C2DTopic("dev1", nil, nil), "devices/dev1/messages/devicebound/"},
		{"c2d with properties", C2DTopic("dev'(1)", map[string]string{"$.mid": "m1"}, map[string]string{"k": "a/b"}),
			"devices/dev'(1)/messages/devicebound/%24.mid=m1&k=a%2Fb"},
		{"method request", MethodRequestTopic("reboot", "17"), "$iothub/methods/POST/reboot/?$rid=17"},
		{"method request rid encoded", MethodRequestTopic("set", "a&b"), "$iothub/methods/POST/set/?$rid=a%26b"},
		{"twin get reply", TwinResponseTopic(200, "r1", 0), "$iothub/twin/res/200/?$rid=r1"},
		{"reported reply", TwinResponseTopic(204, "r2", 5), "$iothub/twin/res/204/?$rid=r2&$version=5"},
		{"twin error reply", TwinResponseTopic(400, "r3", 0), "$iothub/twin/res/400/?$rid=r3"},
		{"desired patch", DesiredPatchTopic(12), "$iothub/twin/PATCH/properties/desired/?$version=12"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseUsername(t *testing.T) {
	tests := []struct {
		in         string
		wantHost   string
		wantDevice string
		wantErr    string
	}{
		{"localhost:8883/dev1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4", "localhost:8883", "dev1", ""},
		{"hub.example.com/dev'(1)*!/?api-version=2021-04-12&DeviceClientType=x&model-id=dtmi%3Ax%3B1", "hub.example.com", "dev'(1)*!", ""},
		{"hub/dev?1/?api-version=2021-04-12", "hub", "dev?1", ""},
		{"hub/dev1/api-version=2016-11-14", "hub", "dev1", ""},
		{"hub/dev1/", "hub", "dev1", ""},
		{"hub/dev1", "hub", "dev1", ""},
		{"", "", "", "want <HostName>/<deviceId>"},
		{"dev1", "", "", "want <HostName>/<deviceId>"},
		{"/dev1/?api-version=1", "", "", "want <HostName>/<deviceId>"},
		{"hub//?api-version=1", "", "", "missing device id"},
		{"hub/dev1/mod1/?api-version=2021-04-12", "", "", "module identities are not supported"},
	}
	for _, tt := range tests {
		host, dev, err := ParseUsername(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseUsername(%q): got error %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || host != tt.wantHost || dev != tt.wantDevice {
			t.Errorf("ParseUsername(%q): got %q, %q, %v; want %q, %q", tt.in, host, dev, err, tt.wantHost, tt.wantDevice)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Telemetry: "telemetry", TwinGet: "twin get", TwinPatchReported: "reported properties patch",
		MethodResponse: "method response", Kind(0): "Kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String(): got %q, want %q", int(k), got, want)
		}
	}
}

func FuzzDecodePropertyBag(f *testing.F) {
	for _, s := range []string{"", "a=1&b=2", "%24.mid=m&$.cid=c&k", "a=%zz", "=&=", "%E2%82%AC=%F0%9F%98%80&x=a+b", "a=%FF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, bag string) {
		sys, app, err := DecodePropertyBag(bag)
		if err != nil {
			return
		}
		enc := EncodePropertyBag(sys, app)
		if strings.ContainsAny(enc, "/#+\x00 ") {
			t.Fatalf("EncodePropertyBag(%v, %v) = %q: not a safe topic segment", sys, app, enc)
		}
		sys2, app2, err := DecodePropertyBag(enc)
		if err != nil {
			t.Fatalf("DecodePropertyBag(EncodePropertyBag(…)) = %v for %q", err, enc)
		}
		if !maps.Equal(sys, sys2) || !maps.Equal(app, app2) {
			t.Fatalf("round trip of %q via %q: got %v %v, want %v %v", bag, enc, sys2, app2, sys, app)
		}
	})
}

func FuzzParseDevicePublish(f *testing.F) {
	f.Add("dev1", "devices/dev1/messages/events/%24.mid=1&a=b", "k", "v")
	f.Add("dev1", "devices/dev2/messages/events/", "$.ct", "application/json")
	f.Add("dev'(1)*!", "$iothub/twin/GET/?$rid=1", "a&b", "c=d/e")
	f.Add("d", "$iothub/methods/res/200/?$rid=x", "", "")
	f.Fuzz(func(t *testing.T, deviceID, topic, key, value string) {
		// Arbitrary topics: never panic, and never accept another device's topic.
		if p, err := ParseDevicePublish(deviceID, topic); err == nil {
			switch p.Kind {
			case Telemetry:
				if !strings.HasPrefix(topic, "devices/"+deviceID+"/messages/events") {
					t.Fatalf("ParseDevicePublish(%q, %q) accepted another device's topic", deviceID, topic)
				}
			case TwinGet, TwinPatchReported, MethodResponse:
				if p.RID == "" || !strings.HasPrefix(topic, "$iothub/") {
					t.Fatalf("ParseDevicePublish(%q, %q) = %+v", deviceID, topic, p)
				}
			default:
				t.Fatalf("ParseDevicePublish(%q, %q): unknown kind %v", deviceID, topic, p.Kind)
			}
		}

		// Round trip: properties encoded into a telemetry topic come back.
		if deviceID == "" || strings.Contains(deviceID, "/") || key == "" {
			return
		}
		sys := map[string]string{"$.mid": strings.ToValidUTF8(value, "\uFFFD")}
		app := map[string]string{}
		if k := strings.ToValidUTF8(key, "\uFFFD"); k[0] == '$' {
			sys[k] = strings.ToValidUTF8(value, "\uFFFD")
		} else {
			app[k] = strings.ToValidUTF8(value, "\uFFFD")
		}
		topic = "devices/" + deviceID + "/messages/events/" + EncodePropertyBag(sys, app)
		p, err := ParseDevicePublish(deviceID, topic)
		if err != nil {
			t.Fatalf("ParseDevicePublish(%q, %q): %v", deviceID, topic, err)
		}
		if len(app) == 0 {
			app = nil
		}
		if p.Kind != Telemetry || !maps.Equal(p.System, sys) || !maps.Equal(p.App, app) {
			t.Fatalf("round trip via %q: got %v %v %v, want telemetry %v %v", topic, p.Kind, p.System, p.App, sys, app)
		}
		// The same properties on a C2D topic stay in the one segment after devicebound/.
		c2d := C2DTopic(deviceID, sys, app)
		if bag := strings.TrimPrefix(c2d, "devices/"+deviceID+"/messages/devicebound/"); strings.Contains(bag, "/") {
			t.Fatalf("C2DTopic bag %q spans segments", bag)
		}
	})
}
