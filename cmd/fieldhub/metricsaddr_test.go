package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
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
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
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
	for _, name := range []string{"fieldhub_messages_committed_total", "fieldhub_ingest_queue_messages", "fieldhub_devices", "go_goroutines"} {
		if families[name] == nil {
			t.Errorf("the exposition has no %s", name)
		}
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
