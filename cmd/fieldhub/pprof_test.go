package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPprofAddr: the profiles are served only where --pprof-addr says, on
// loopback, and the dashboard never serves them.
func TestPprofAddr(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "192.0.2.1:6060", "example.com:6060", "nonsense"} {
		e := env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
		if _, err := parseServe(e, []string{"--pprof-addr", addr}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--pprof-addr %s: error %v, want one saying loopback only", addr, err)
		}
	}

	pprofAddr := freeAddr(t)
	h := startServe(t, []string{"--pprof-addr", pprofAddr}, nil)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := get("http://" + pprofAddr + "/debug/pprof/heap?debug=1"); status != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile: status %d, body starts %.80q", status, body)
	}
	if status, body := get(h.url + "/debug/pprof/heap?debug=1"); strings.Contains(body, "heap profile") {
		t.Errorf("the dashboard serves profiles (status %d)", status)
	}
}
