package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"fieldhub/datadir"
	"fieldhub/db"
	"fieldhub/registry"
)

// TestDeviceShowTransport: device show prints, per transport, what the
// device page's Connect panel shows, for the endpoints the hub last served
// (serve's defaults before any did); keys only with --keys yes.
func TestDeviceShowTransport(t *testing.T) {
	data := t.TempDir()
	out, _, err := cli(t, "", "device", "add", "--data", data, "pump-1")
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`SharedAccessKey=(\S+)`).FindStringSubmatch(out)[1]

	out, stderr, err := cli(t, "", "device", "show", "--data", data, "--transport", "https", "pump-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"transport mqtt     dials port 8883; works as configured",
		"transport https    dials port 443; the hub listens on 8443: needs a change",
		"HTTPS (https)\n  does not work as configured",
		"connection string: HostName=localhost;DeviceId=pump-1;SharedAccessKey=" + registry.KeyPlaceholder,
		"--- Node.js (azure-iot-device) ---", "--- curl ---", "https://localhost:8443/devices/pump-1/messages/events",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("device show --transport https lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, key) || strings.Contains(out, "MQTT over TLS (mqtt)") {
		t.Errorf("device show without --keys shows the key, or another transport's details:\n%s", out)
	}
	if !strings.Contains(stderr, "serve's defaults") {
		t.Errorf("stderr does not say the endpoints are serve's defaults: %q", stderr)
	}

	// What a hub records at start (app.deviceEndpoints).
	d, err := db.Open(context.Background(), datadir.Database(data), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ep := registry.Endpoints{Host: "hub.example", MQTTPort: 1884, HTTPSPort: 443, WebSocket: true, CAFile: "/etc/fieldhub/ca.pem"}
	if err := d.SetSetting(context.Background(), db.SettingDeviceEndpoints, ep.String()); err != nil {
		t.Fatal(err)
	}
	d.Close()
	out, stderr, err = cli(t, "", "device", "show", "--data", data, "--keys", "yes", "--transport", "mqtt", "pump-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"transport https    dials port 443; works as configured",
		"MQTT over TLS (mqtt)\n  works as configured\n  port the SDKs dial: 1884",
		"connection string: HostName=hub.example:1884;DeviceId=pump-1;SharedAccessKey=" + key,
		"CA certificate: /etc/fieldhub/ca.pem",
		"--- mosquitto_pub ---", "-h hub.example -p 1884 -i pump-1",
		"(The Python SDK dials port 8883",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("device show --keys yes --transport mqtt lacks %q:\n%s", want, out)
		}
	}
	if stderr != "" {
		t.Errorf("stderr = %q, want nothing once a hub recorded its endpoints", stderr)
	}

	if _, _, err := cli(t, "", "device", "show", "--data", data, "--transport", "amqp", "pump-1"); err == nil || !strings.Contains(err.Error(), "use mqtt, mqtt-ws or https") {
		t.Errorf("--transport amqp: %v", err)
	}
}
