package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: fieldhub/mqtt
BenchmarkIngest/bare-mochi-2         	       1	     11000 ns/op	         9.5 puback-p50-ms	     90000 msgs/s
BenchmarkIngest/fieldhub-2           	       1	     45000 ns/op	        18.0 method-p99-ms	     22000 msgs/s
BenchmarkIngest/fieldhub-2: broker_bench_test.go:80: a log line
pkg: fieldhub/telemetry
BenchmarkChart7Days-2   	      20	  30000000 ns/op	        30.0 ms/chart	       400 naive-ms/chart
PASS
`

func TestParse(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		bench, unit string
		want        float64
	}{
		{"mqtt.BenchmarkIngest/bare-mochi", "msgs/s", 90000},
		{"mqtt.BenchmarkIngest/fieldhub", "msgs/s", 22000},
		{"mqtt.BenchmarkIngest/fieldhub", "method-p99-ms", 18},
		{"telemetry.BenchmarkChart7Days", "ms/chart", 30},
		{"telemetry.BenchmarkChart7Days", "ns/op", 30000000},
	}
	for _, tt := range tests {
		got, ok := res.get(m(tt.bench, tt.unit))
		if !ok || got != tt.want {
			t.Errorf("%s %s = %v (found %v), want %v", tt.bench, tt.unit, got, ok, tt.want)
		}
	}
}

func TestParseRejectsBadValue(t *testing.T) {
	_, err := parse(strings.NewReader("pkg: fieldhub/x\nBenchmarkX-2 1 abc ns/op\n"))
	if err == nil || !strings.Contains(err.Error(), `value "abc" is not a number`) {
		t.Errorf("err = %v, want a message naming the bad value", err)
	}
}

func TestWriteComputesMet(t *testing.T) {
	res, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	missing := write(&out, res)
	if missing == 0 {
		t.Error("missing = 0, want the figures the sample lacks counted")
	}
	for _, want := range []string{
		// 22,000 ≥ 20,000 and 30 ms ≤ 50 ms; the baseline 90,000 gives 0.24×.
		"22,000 msgs/s  90,000 bare mochi",
		"0.24×",
		"≥ 20,000 msgs/s",
		"method round trip p99, 1,000 devices saturating the hub",
		"30.0 ms",
		"400 naive layout", "0.07×",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "7-day chart") && !strings.HasSuffix(strings.TrimSpace(line), "yes") {
			t.Errorf("7-day chart row %q: want met (30 ms ≤ 50 ms)", line)
		}
		if strings.Contains(line, "10,000 idle TLS connections") && !strings.HasSuffix(strings.TrimSpace(line), "no result") {
			t.Errorf("idle row %q: want no result", line)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("BenchmarkX-2 1 2 ns/op 3")
	f.Fuzz(func(t *testing.T, s string) {
		res, err := parse(strings.NewReader(s))
		if err == nil && res == nil {
			t.Error("nil results without an error")
		}
	})
}

// TestRatioTarget: issue 10's targets bound the ratio to the same-run
// baseline, not the figure.
func TestRatioTarget(t *testing.T) {
	row := func(out, name string) string {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, name) {
				return strings.TrimSpace(line)
			}
		}
		return ""
	}
	for _, tt := range []struct {
		hub, bare string
		want      string
	}{
		{"7000", "10000", "yes"}, // 0.70×
		{"6900", "10000", "NO"},  // 0.69×
		{"20000", "0", "no result"},
	} {
		input := "pkg: fieldhub/bench\nBenchmarkHubHTTPS-2 1 " + tt.hub + " msgs/s " + tt.bare + " bare-req/s\n"
		res, err := parse(strings.NewReader(input))
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		write(&out, res)
		got := row(out.String(), "HTTPS single messages")
		if !strings.Contains(got, "≥ 0.70× baseline") || !strings.HasSuffix(got, tt.want) {
			t.Errorf("%s against %s: row %q, want a ratio target ending %q", tt.hub, tt.bare, got, tt.want)
		}
	}
}

// TestIdleTargetSaysMeasuredOrProjected: the 100,000-device row says
// whether it was measured or projected, and from what.
func TestIdleTargetSaysMeasuredOrProjected(t *testing.T) {
	row := func(input string) string {
		res, err := parse(strings.NewReader("pkg: fieldhub/mqtt\n" + input))
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		write(&out, res)
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, "RSS, 100,000 idle devices") && !strings.Contains(line, "most measured") {
				return strings.TrimSpace(line)
			}
		}
		t.Fatalf("no 100,000-device row in:\n%s", out.String())
		return ""
	}
	projected := row("BenchmarkIdleConnections-2 1 1 ns/op 19000 connected 20000 file-limit 2835 projected-rss-MB-at-100000\n")
	for _, want := range []string{"PROJECTED from 19,000; file limit 20,000", "2,835 MB", "≤ 3,072 MB", "yes"} {
		if !strings.Contains(projected, want) {
			t.Errorf("projected row %q lacks %q", projected, want)
		}
	}
	measured := row("BenchmarkIdleConnections-2 1 1 ns/op 100000 connected 1048576 file-limit 3100 measured-rss-MB-at-100000\n")
	for _, want := range []string{"measured at 100,000", "3,100 MB", "NO"} {
		if !strings.Contains(measured, want) {
			t.Errorf("measured row %q lacks %q", measured, want)
		}
	}
	if strings.Contains(measured, "PROJECTED") {
		t.Errorf("measured row %q says projected", measured)
	}
}
