package alert

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSign(t *testing.T) {
	tests := []struct{ secret, body, want string }{
		// RFC 2104 example as published (Wikipedia), and one checked with
		// `openssl dgst -sha256 -hmac`.
		{"key", "The quick brown fox jumps over the lazy dog", "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"},
		{"It's a secret", `{"id":"1","type":"alert.raised"}`, "sha256=297c969866f298fe1fa8947d083051f606bf4386019538d34ed58afc131d7b64"},
	}
	for _, tt := range tests {
		if got := Sign([]byte(tt.secret), []byte(tt.body)); got != tt.want {
			t.Errorf("Sign(%q, %q) = %s, want %s", tt.secret, tt.body, got, tt.want)
		}
	}
	if got := FormatTimestamp(time.Unix(1772366400, 999e6)); got != "1772366400" {
		t.Errorf("FormatTimestamp = %s", got)
	}
}

// sampleEvent is a raised threshold alert as the caller would announce it.
func sampleEvent(t *testing.T) Event {
	t.Helper()
	a, _ := raised(t)
	r := thresholdRule(1, "temp", Greater, 30, 0)
	r.Name = "Too warm <inside> & out"
	return Event{ID: "alert-42-raised", Type: EventRaised, SentAt: at(5), Alert: *a, Rule: r,
		Device: Device{ID: "d", URL: DeviceURL("https://hub.example.com/", "d")}}
}

func TestPayload(t *testing.T) {
	ev := sampleEvent(t)
	b, err := ev.Payload()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"alert-42-raised","type":"alert.raised","sentAt":"2026-03-01T12:00:05Z",` +
		`"alert":{"id":42,"ruleId":1,"deviceId":"d","severity":"major","state":"active","count":1,"firstAt":"2026-03-01T12:00:00Z","lastAt":"2026-03-01T12:00:00Z","value":31},` +
		`"rule":{"id":1,"name":"Too warm \u003cinside\u003e \u0026 out","severity":"major","enabled":true,"scope":{"fleet":true},"condition":{"kind":"threshold","metric":"temp","op":"\u003e","value":30,"forSeconds":0}},` +
		`"device":{"id":"d","url":"https://hub.example.com/devices/d"}}`
	if string(b) != want {
		t.Fatalf("payload\n %s\nwant\n %s", b, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	body, err := sampleEvent(t).Payload()
	if err != nil {
		t.Fatal(err)
	}
	sig := Sign(secret, body)
	ev, err := Verify(secret, body, sig, at(65), time.Minute)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if ev.ID != "alert-42-raised" || ev.Alert.Value != 31.0 || ev.Rule.Condition.Op != Greater {
		t.Fatalf("verified event = %+v", ev)
	}
	tampered := []byte(strings.Replace(string(body), `"value":31`, `"value":99`, 1))
	tests := []struct {
		name      string
		secret    []byte
		body      []byte
		signature string
		now       time.Time
		want      error
	}{
		{"tampered body", secret, tampered, sig, at(5), ErrBadSignature},
		{"wrong secret", []byte("other"), body, sig, at(5), ErrBadSignature},
		{"no prefix", secret, body, strings.TrimPrefix(sig, "sha256="), at(5), ErrBadSignature},
		{"not hex", secret, body, "sha256=zz", at(5), ErrBadSignature},
		{"empty", secret, body, "", at(5), ErrBadSignature},
		{"replayed later", secret, body, sig, at(66), ErrStale},
		{"from the future", secret, body, sig, at(-56), ErrStale},
	}
	for _, tt := range tests {
		if _, err := Verify(tt.secret, tt.body, tt.signature, tt.now, time.Minute); !errors.Is(err, tt.want) {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestSlack(t *testing.T) {
	base := sampleEvent(t)
	cleared := base
	cleared.Type, cleared.ID, cleared.Value = EventCleared, "alert-42-cleared", 27.5
	cleared.Alert.State, cleared.Alert.ClearReason = StateCleared, ReasonCondition
	acked := base
	acked.Type = EventAcknowledged
	acked.Alert.State, acked.Alert.AcknowledgedBy, acked.Alert.AckComment = StateAcknowledged, "ann", "on it <3"
	byHand := base
	byHand.Type = EventCleared
	byHand.Alert.State, byHand.Alert.ClearReason, byHand.Alert.ClearedBy = StateCleared, ReasonOperator, "bob"
	silent := base
	silent.Rule = silenceRule(2, 300)
	silent.Rule.Name = "Offline"
	silent.Alert.Severity, silent.Device = Critical, Device{ID: "pump#1", URL: DeviceURL("http://h:8080", "pump#1")}
	back := silent
	back.Type, back.Value = EventCleared, 750.0
	back.Alert.ClearReason = ReasonCondition
	fw := base
	fw.Rule = changedRule(3, "", "firmware")
	fw.Rule.Name = "Firmware"
	fw.Alert.Severity, fw.Alert.Value, fw.Device.URL = Info, "1.4.2", ""

	tests := []struct {
		name string
		ev   Event
		text string
	}{
		{"raised", base, "[MAJOR] Alert: Too warm &lt;inside&gt; &amp; out on <https://hub.example.com/devices/d|d>. temp is 31 (&gt; 30)."},
		{"cleared", cleared, "[MAJOR] Cleared: Too warm &lt;inside&gt; &amp; out on <https://hub.example.com/devices/d|d>. temp is 27.5 again (raised at &gt; 30)."},
		{"acknowledged", acked, "[MAJOR] Acknowledged by ann: Too warm &lt;inside&gt; &amp; out on <https://hub.example.com/devices/d|d>. temp is 31 (&gt; 30). Comment: on it &lt;3"},
		{"cleared by hand", byHand, "[MAJOR] Cleared: Too warm &lt;inside&gt; &amp; out on <https://hub.example.com/devices/d|d>. Reason: cleared by bob."},
		{"silent", silent, "[CRITICAL] Alert: Offline on <http://h:8080/devices/pump%231|pump#1>. No message for 5m0s."},
		{"spoke again", back, "[CRITICAL] Cleared: Offline on <http://h:8080/devices/pump%231|pump#1>. The device spoke again after 12m30s of silence."},
		{"changed, no link", fw, `[INFO] Alert: Firmware on d. firmware changed to "1.4.2".`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.ev.Slack()
			if err != nil {
				t.Fatal(err)
			}
			var msg struct {
				Text   string `json:"text"`
				Blocks []struct {
					Type string `json:"type"`
					Text struct {
						Type, Text string
					} `json:"text"`
					Elements []struct{ Type, Text string } `json:"elements"`
				} `json:"blocks"`
			}
			if err := json.Unmarshal(b, &msg); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if msg.Text != tt.text {
				t.Fatalf("text\n %s\nwant\n %s", msg.Text, tt.text)
			}
			if len(msg.Blocks) != 2 || msg.Blocks[0].Type != "section" || msg.Blocks[0].Text.Type != "mrkdwn" || msg.Blocks[0].Text.Text != tt.text ||
				msg.Blocks[1].Type != "context" || len(msg.Blocks[1].Elements) != 1 ||
				!strings.HasPrefix(msg.Blocks[1].Elements[0].Text, "Severity "+string(tt.ev.Alert.Severity)+" · rule: ") {
				t.Fatalf("blocks = %+v", msg.Blocks)
			}
		})
	}
	huge := fw
	huge.Alert.Value = strings.Repeat("x", 10000)
	b, err := huge.Slack()
	if err != nil || len(b) > 3000 {
		t.Fatalf("a huge property value gave %d bytes (%v)", len(b), err)
	}
}

func TestEventFor(t *testing.T) {
	for k, want := range map[TransitionKind]EventType{Raise: EventRaised, Clear: EventCleared, Repeat: "", Update: ""} {
		got, ok := EventFor(k)
		if got != want || ok != (want != "") {
			t.Errorf("EventFor(%s) = %q, %v", k, got, ok)
		}
	}
	for _, e := range EventTypes() {
		if !e.Valid() {
			t.Errorf("%s not valid", e)
		}
	}
	if EventType("alert.repeated").Valid() {
		t.Error("alert.repeated valid")
	}
}

func TestDeviceURL(t *testing.T) {
	tests := []struct{ base, id, want string }{
		{"https://hub", "pump-1", "https://hub/devices/pump-1"},
		{"https://hub/fieldhub/", "a:b", "https://hub/fieldhub/devices/a:b"},
		{"http://h", "x/y?z#w", "http://h/devices/x%2Fy%3Fz%23w"},
		{"", "pump-1", ""},
	}
	for _, tt := range tests {
		if got := DeviceURL(tt.base, tt.id); got != tt.want {
			t.Errorf("DeviceURL(%q, %q) = %q, want %q", tt.base, tt.id, got, tt.want)
		}
	}
}

func TestEventDecodingIsLenient(t *testing.T) {
	body := `{"id":"e1","type":"alert.cleared","sentAt":"2026-03-01T12:00:05Z","newField":1,` +
		`"alert":{"id":1,"ruleId":2,"deviceId":"d","severity":"minor","state":"cleared","count":2,"firstAt":"2026-03-01T12:00:00Z","lastAt":"2026-03-01T12:00:01Z","value":3,"extra":true},` +
		`"rule":{"id":2,"name":"n","severity":"minor","enabled":true,"scope":{"fleet":true,"future":1},"condition":{"kind":"future","metric":"m","op":">","value":1,"seconds":4}},` +
		`"device":{"id":"d"},"value":0.5}`
	var ev Event
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ID != "e1" || ev.Type != EventCleared || ev.Alert.Count != 2 || ev.Rule.Condition.Kind != "future" ||
		ev.Rule.Condition.Seconds != 4 || !ev.Rule.Scope.Fleet || ev.Value != 0.5 || ev.Device.ID != "d" {
		t.Fatalf("decoded %+v", ev)
	}
}
