package registry_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/registry"
)

// TestConnections: each transport's connection string, dialled port and
// verdict follow from where the hub serves, as the SDKs dial (MQTT the port
// in HostName, HTTPS and MQTT over WebSocket always 443).
func TestConnections(t *testing.T) {
	key := "c2VjcmV0LWtleS1vZi10aGlzLWRldmljZSEhISEhISE="
	dev := db.Device{DeviceID: "pump-1", PrimaryKey: key, SecondaryKey: key, Auth: db.Authentication{Type: auth.AuthSAS}}
	type want struct {
		served, works bool
		cs            string
		port, hubPort int
		snippets      string // ids, "!" before one that does not work as configured
	}
	tests := []struct {
		name string
		ep   registry.Endpoints
		want map[string]want
	}{
		{"defaults: MQTT on 8883, HTTPS on 8443", registry.Endpoints{Host: "hub.example", MQTTPort: 8883, HTTPSPort: 8443, WebSocket: true}, map[string]want{
			"mqtt":    {true, true, "HostName=hub.example;DeviceId=pump-1;SharedAccessKey=" + key, 8883, 8883, "node python csharp mosquitto"},
			"mqtt-ws": {true, false, "HostName=hub.example;DeviceId=pump-1;SharedAccessKey=" + key, 443, 8443, "!node !python !csharp"},
			"https":   {true, false, "HostName=hub.example;DeviceId=pump-1;SharedAccessKey=" + key, 443, 8443, "!node !csharp curl"},
		}},
		{"HTTPS on 443, MQTT on another port", registry.Endpoints{Host: "10.0.0.5", MQTTPort: 1884, HTTPSPort: 443, WebSocket: true}, map[string]want{
			"mqtt":    {true, true, "HostName=10.0.0.5:1884;DeviceId=pump-1;SharedAccessKey=" + key, 1884, 1884, "node !python !csharp mosquitto"},
			"mqtt-ws": {true, true, "HostName=10.0.0.5;DeviceId=pump-1;SharedAccessKey=" + key, 443, 443, "node python csharp"},
			"https":   {true, true, "HostName=10.0.0.5;DeviceId=pump-1;SharedAccessKey=" + key, 443, 443, "node csharp curl"},
		}},
		{"MQTT off", registry.Endpoints{Host: "hub", HTTPSPort: 443}, map[string]want{
			"mqtt":    {port: 0},
			"mqtt-ws": {port: 443, hubPort: 443},
			"https":   {true, true, "HostName=hub;DeviceId=pump-1;SharedAccessKey=" + key, 443, 443, "node csharp curl"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conns, err := registry.Connections(tt.ep, dev, registry.ConnectOptions{Secrets: true, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if len(conns) != len(registry.Transports) {
				t.Fatalf("%d connections, want one per transport", len(conns))
			}
			for i, c := range conns {
				if c.Transport != registry.Transports[i] {
					t.Errorf("connection %d is %s, want %s", i, c.Transport, registry.Transports[i])
				}
				w := tt.want[c.Transport]
				var ids []string
				for _, s := range c.Snippets {
					id := s.ID
					if !s.Works {
						id = "!" + id
					}
					ids = append(ids, id)
				}
				got := want{c.Served, c.Works, c.ConnectionString, c.Port, c.HubPort, strings.Join(ids, " ")}
				if got != w {
					t.Errorf("%s = %+v\nwant %+v", c.Transport, got, w)
				}
				if c.Served && !c.Works && (c.Problem == "" || !strings.Contains(c.Fix, ":443")) {
					t.Errorf("%s does not work but says no problem or fix: %q / %q", c.Transport, c.Problem, c.Fix)
				}
				if !c.Served && !strings.Contains(c.Fix, "--mqtt-addr") {
					t.Errorf("%s is not served and says no fix: %q", c.Transport, c.Fix)
				}
			}
		})
	}
}

// TestConnectionsWithoutSecrets: without secrets nothing holds the key or a
// token; with them the snippets' token is valid for the hub for an hour.
func TestConnectionsWithoutSecrets(t *testing.T) {
	key := "c2VjcmV0LWtleS1vZi10aGlzLWRldmljZSEhISEhISE="
	dev := db.Device{DeviceID: "pump-1", PrimaryKey: key, SecondaryKey: "b3RoZXI=", Auth: db.Authentication{Type: auth.AuthSAS}}
	ep := registry.Endpoints{Host: "hub", MQTTPort: 8883, HTTPSPort: 443, WebSocket: true}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

	hidden, err := registry.Connections(ep, dev, registry.ConnectOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	text := dump(hidden)
	for _, secret := range []string{key, "b3RoZXI=", "SharedAccessSignature"} {
		if strings.Contains(text, secret) {
			t.Errorf("without secrets the connections hold %q", secret)
		}
	}
	for _, ph := range []string{registry.KeyPlaceholder, registry.TokenPlaceholder} {
		if !strings.Contains(text, ph) {
			t.Errorf("without secrets the connections lack the placeholder %q", ph)
		}
	}

	shown, err := registry.Connections(ep, dev, registry.ConnectOptions{Secrets: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if text := dump(shown); strings.Contains(text, registry.KeyPlaceholder) || strings.Contains(text, registry.TokenPlaceholder) {
		t.Errorf("with secrets a placeholder is left:\n%s", text)
	}
	curl := shown[2].Snippets[2].Code
	i := strings.Index(curl, "SharedAccessSignature ")
	if i < 0 {
		t.Fatalf("curl snippet has no token:\n%s", curl)
	}
	tok, err := auth.ParseSAS(curl[i : i+strings.IndexByte(curl[i:], '\'')])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at     time.Time
		wantOK bool
	}{{now.Add(59 * time.Minute), true}, {now.Add(61 * time.Minute), false}} {
		_, err := tok.Verify("pump-1", []string{key}, tc.at, []string{"hub"})
		if (err == nil) != tc.wantOK {
			t.Errorf("token at +%s: %v, want ok=%v", tc.at.Sub(now), err, tc.wantOK)
		}
	}
}

// TestConnectionsX509: an X.509 device's strings hold no key, and its
// snippets hand the SDK the certificate instead.
func TestConnectionsX509(t *testing.T) {
	dev := db.Device{DeviceID: "cam-1", Auth: db.Authentication{Type: auth.AuthSelfSigned, PrimaryThumbprint: strings.Repeat("AB", 32)}}
	conns, err := registry.Connections(registry.DefaultEndpoints(), dev, registry.ConnectOptions{Secrets: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if c.Served && c.ConnectionString != "HostName=localhost;DeviceId=cam-1;x509=true" {
			t.Errorf("%s: %q", c.Transport, c.ConnectionString)
		}
		for _, s := range c.Snippets {
			if !strings.Contains(s.Code, "device-key.pem") || strings.Contains(s.Code, "<") {
				t.Errorf("%s %s snippet lacks the certificate or has a placeholder:\n%s", c.Transport, s.ID, s.Code)
			}
		}
	}
}

// TestSnippetsQuoteTheDeviceID: a device id with a quote (Azure allows
// it) stays one word in the shell snippets and one literal in the code.
func TestSnippetsQuoteTheDeviceID(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dev := db.Device{DeviceID: `o'neil"$(x)`, PrimaryKey: "a2V5", Auth: db.Authentication{Type: auth.AuthSAS}}
	conns, err := registry.Connections(registry.Endpoints{Host: "hub", MQTTPort: 8883, HTTPSPort: 443}, dev, registry.ConnectOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{conns[0].Snippets[3].Code, conns[2].Snippets[2].Code} {
		// Replace the command by printf to see the words the shell makes.
		script := strings.Replace(strings.Replace(code, "curl ", "printf '%s\\n' ", 1), "mosquitto_pub ", "printf '%s\\n' ", 1)
		out, err := exec.CommandContext(context.Background(), sh, "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s\n%s", err, out, script)
		}
		if !strings.Contains(string(out), "devices/"+dev.DeviceID) && !strings.Contains(string(out), "devices/o%27neil") {
			t.Errorf("the shell did not keep the device id:\n%s", out)
		}
	}
}

func dump(conns []registry.Connection) string {
	var b strings.Builder
	for _, c := range conns {
		b.WriteString(c.ConnectionString + "\n" + c.Problem + c.Fix + c.Note + "\n")
		for _, s := range c.Snippets {
			b.WriteString(s.Code + s.Note + "\n")
		}
	}
	return b.String()
}
