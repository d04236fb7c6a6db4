package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// logfmtKeys returns the keys of one line of slog's text handler:
// key=value pairs, values bare or double-quoted with backslash escapes.
func logfmtKeys(t *testing.T, line string) []string {
	t.Helper()
	var keys []string
	for s := strings.TrimSpace(line); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			t.Fatalf("not key=value at %q in %q", s, line)
		}
		keys = append(keys, s[:eq])
		s = s[eq+1:]
		if strings.HasPrefix(s, `"`) {
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			s = s[min(i+1, len(s)):]
		} else if sp := strings.IndexByte(s, ' '); sp >= 0 {
			s = s[sp:]
		} else {
			s = ""
		}
	}
	return keys
}

// jsonKeys returns the keys of a JSON log line, a group's as group.key.
func jsonKeys(t *testing.T, line string) []string {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(line), &obj); err != nil {
		t.Fatalf("not a JSON object: %q: %v", line, err)
	}
	var keys []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			keys = append(keys, prefix+k)
		}
	}
	walk("", obj)
	return keys
}

func TestLogFormatsHaveTheSameKeys(t *testing.T) {
	lines := map[string]string{}
	for _, format := range []string{"text", "json"} {
		var b bytes.Buffer
		log, err := newLogger(&b, "debug", format)
		if err != nil {
			t.Fatal(err)
		}
		log.With("component", "mqtt").Warn("device refused", "device", "pump 1", "err", errors.New(`bad "token"`),
			slog.Group("conn", "remote", "10.0.0.7:51234", "tls", true), "after", 1500*time.Millisecond)
		lines[format] = strings.TrimSpace(b.String())
	}
	text, js := logfmtKeys(t, lines["text"]), jsonKeys(t, lines["json"])
	slices.Sort(text)
	slices.Sort(js)
	want := []string{"after", "component", "conn.remote", "conn.tls", "device", "err", "level", "msg", "time"}
	if !slices.Equal(text, want) || !slices.Equal(js, want) {
		t.Errorf("keys\ntext %v\njson %v\nwant %v\n%s\n%s", text, js, want, lines["text"], lines["json"])
	}
	if _, err := newLogger(&bytes.Buffer{}, "info", "xml"); err == nil || !strings.Contains(err.Error(), "use text or json") {
		t.Errorf("--log-format xml: %v, want a usage error", err)
	}
}

// TestServeLogsJSON runs serve with --log-format json and a clock URL
// whose Date is an hour behind: every line on stderr is a JSON object
// (no banner), and the start-up checks logged the clock as an ERROR with
// its fix.
func TestServeLogsJSON(t *testing.T) {
	skewed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
	}))
	defer skewed.Close()
	hub := serveInProcess(t, t.TempDir(), "--log-format", "json", "--log-level", "info", "--clock-url", skewed.URL)
	var clock map[string]any
	running := false
	for _, line := range strings.Split(strings.TrimSpace(hub.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		if rec["msg"] == "start-up check" && rec["check"] == "clock" {
			clock = rec
		}
		running = running || rec["msg"] == "fieldhub is running"
	}
	if !running {
		t.Error(`no "fieldhub is running" record`)
	}
	if clock == nil || clock["level"] != "ERROR" || !strings.Contains(clock["found"].(string), "ahead of "+skewed.URL) ||
		!strings.Contains(clock["fix"].(string), "NTP") {
		t.Errorf("clock check record = %v, want an ERROR: an hour ahead, fix with NTP", clock)
	}
}
