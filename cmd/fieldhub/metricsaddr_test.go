package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"fieldhub/internal/testkit"
)

// TestMetricsAddr: --metrics-addr serves the Prometheus exposition without
// sign-in, on loopback only, and nothing else; the dashboard's /metrics
// still asks for credentials.
func TestMetricsAddr(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9100", ":9100", "192.0.2.1:9100", "example.com:9100", "nonsense"} {
		e := env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
		if _, err := parseServe(e, []string{"--metrics-addr", addr}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--metrics-addr %s: error %v, want one saying loopback only", addr, err)
		}
	}

	metricsAddr := freeAddr(t)
	h := startServe(t, []string{"--metrics-addr", metricsAddr}, nil)
	families := scrape(t, metricsAddr)
	for _, name := range []string{"fieldhub_messages_committed_total", "fieldhub_ingest_queue_messages", "fieldhub_devices", "go_goroutines",
		"fieldhub_ingested_messages_total", "fieldhub_ingested_readings_total", "fieldhub_ingested_bytes_total",
		"fieldhub_ingest_refused_total", "fieldhub_commit_duration_seconds", "fieldhub_ingest_step_duration_seconds", "fieldhub_method_calls_total", "fieldhub_c2d_messages", "fieldhub_devices_connected"} {
		if families[name] == nil {
			t.Errorf("the exposition has no %s", name)
		}
	}

	// Real traffic moves them: a message over HTTPS, one over MQTT, and one
	// refused as too large.
	h.publishMQTT(t, "")
	h.sendTelemetry(t, "") // after the MQTT connection closed: dev1 is online by HTTPS
	req, _ := http.NewRequest("POST", "https://"+h.device+"/devices/dev1/messages/events?api-version=2021-04-12", strings.NewReader(strings.Repeat("x", 300<<10)))
	req.Header.Set("Authorization", h.deviceToken(t))
	// The hub reads and drops the refused body before closing, so the
	// client gets the answer, not a failed write (handlers/refused_body.go).
	resp, err := h.client("").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 300 KB message: status %d, want 413", resp.StatusCode)
	}
	// A direct method call to a device that is not connected.
	out, _, err := cli(t, "", "token", "create", "--data", h.data, "--role", "operator", "--name", "metrics")
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("POST", h.url+"/api/v1/devices/dev1/methods/reboot", strings.NewReader(`{"payload":{}}`))
	req.Header.Set("Authorization", "Bearer "+lastLine(out))
	req.Header.Set("Content-Type", "application/json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a method call to an offline device: status %d, want 404", resp.StatusCode)
	}
	// A cloud-to-device message waits for dev1.
	req, _ = http.NewRequest("POST", h.url+"/api/v1/devices/dev1/cloud-messages", strings.NewReader(`{"body":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+lastLine(out))
	req.Header.Set("Content-Type", "application/json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("queue a C2D message: status %d, want 201", resp.StatusCode)
	}
	// The store is counted at most every few seconds.
	testkit.WaitFor(t, "the C2D message counted as queued", func() bool {
		return metricValue(t, scrape(t, metricsAddr), "fieldhub_c2d_messages", map[string]string{"state": "queued"}) == 1
	})
	// A device heard from over HTTPS (and not connected) counts as https.
	// dev1's last activity is stored lazily (telemetry.ActivityStep) and its
	// MQTT connection just closed, so a device of its own, whose first
	// message stores its activity at once, shows it.
	if _, _, err := cli(t, "", "device", "add", "--data", h.data, "dev2"); err != nil {
		t.Fatal(err)
	}
	tok2, _, err := cli(t, "", "device", "token", "--data", h.data, "dev2")
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("POST", "https://"+h.device+"/devices/dev2/messages/events?api-version=2021-04-12", strings.NewReader(`{"t":3}`))
	req.Header.Set("Authorization", lastLine(tok2))
	if resp, err = h.client("").Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("dev2's message: status %d", resp.StatusCode)
	}
	testkit.WaitFor(t, "dev2 counted online over HTTPS", func() bool {
		f := scrape(t, metricsAddr)
		return metricValue(t, f, "fieldhub_devices_connected", map[string]string{"protocol": "https"}) >= 1 &&
			metricValue(t, f, "fieldhub_devices_connected", map[string]string{"protocol": "mqtt"}) == 0
	})
	// While dev1 holds an MQTT connection it counts as mqtt, not https.
	mc := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + h.mqtt).
		SetClientID("dev1").SetUsername("localhost/dev1/?api-version=2021-04-12").SetPassword(h.deviceToken(t)).
		SetTLSConfig(&tls.Config{RootCAs: h.roots, ServerName: "localhost"}).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(30 * time.Second))
	if tok := mc.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect: %v", tok.Error())
	}
	testkit.WaitFor(t, "dev1 counted connected over MQTT", func() bool {
		return metricValue(t, scrape(t, metricsAddr), "fieldhub_devices_connected", map[string]string{"protocol": "mqtt"}) == 1
	})
	mc.Disconnect(0)
	after := scrape(t, metricsAddr)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fieldhub_ingested_messages_total", map[string]string{"protocol": "https"}, 2},
		{"fieldhub_ingested_messages_total", map[string]string{"protocol": "mqtt"}, 1},
		{"fieldhub_ingested_readings_total", map[string]string{"protocol": "https"}, 2}, // {"t":1}, {"t":3}
		{"fieldhub_ingested_readings_total", map[string]string{"protocol": "mqtt"}, 1},
		{"fieldhub_ingested_bytes_total", map[string]string{"protocol": "https"}, float64(len(`{"t":1}{"t":3}`))},
		{"fieldhub_ingested_bytes_total", map[string]string{"protocol": "mqtt"}, float64(len(`{"t":2}`))},
		{"fieldhub_ingest_refused_total", map[string]string{"protocol": "https", "reason": "too_large"}, 1},
		{"fieldhub_ingest_refused_total", map[string]string{"protocol": "https", "reason": "throttled"}, 0},
		{"fieldhub_messages_committed_total", nil, 3},
		{"fieldhub_method_calls_total", map[string]string{"outcome": "not_connected"}, 1},
		{"fieldhub_method_calls_total", map[string]string{"outcome": "ok"}, 0},
	} {
		if got := metricValue(t, after, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %g, want %g", tc.name, tc.labels, got, tc.want)
		}
	}
	if n := after["fieldhub_commit_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n < 1 {
		t.Errorf("fieldhub_commit_duration_seconds counted %d commits, want at least 1", n)
	}
	for _, tc := range []struct {
		method, url string
		want        int
	}{
		{"POST", "http://" + metricsAddr + "/metrics", http.StatusMethodNotAllowed},
		{"GET", "http://" + metricsAddr + "/", http.StatusNotFound},
		{"GET", "http://" + metricsAddr + "/api/v1/devices", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.url, resp.StatusCode, tc.want)
		}
	}
	// The dashboard's /metrics sends a stranger to sign in.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("the dashboard's /metrics answered a stranger with 200")
	}
}

// scrape reads and parses the exposition at addr.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape without sign-in: status %d", resp.StatusCode)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return families
}

// metricValue is the counter or gauge of family name whose labels include
// labels; the test fails when there is none.
func metricValue(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f := families[name]
	if f == nil {
		t.Fatalf("the exposition has no %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("the exposition has no %s%v", name, labels)
	return 0
}
