package bench

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// writerStalls are the hub's ingest writer's group commits and steps
// between them (fieldhub_commit_duration_seconds and
// fieldhub_ingest_step_duration_seconds{step}) since it started: by name,
// how many ran and how many took over 25 and over 50 ms. A step's duration
// is what every commit behind it waited, so the difference of two readings
// says which of the writer's operations made a phase's acknowledgement tail
// (bench/README.md, issue 10, sixth round).
type writerStalls map[string][3]uint64

// writerStallNames are the keys of writerStalls, in the order reported.
var writerStallNames = []string{"commit", "index", "checkpoint", "prune"}

// readWriterStalls scrapes the hub's metrics listener at addr.
func readWriterStalls(b *testing.B, addr string) writerStalls {
	b.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatalf("scrape the hub's metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("scrape the hub's metrics: status %d", resp.StatusCode)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		b.Fatalf("read the hub's metrics: %v", err)
	}
	out := writerStalls{}
	if f := families["fieldhub_commit_duration_seconds"]; f != nil && len(f.GetMetric()) == 1 {
		out["commit"] = overCounts(f.GetMetric()[0].GetHistogram())
	}
	if f := families["fieldhub_ingest_step_duration_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "step" {
					out[l.GetValue()] = overCounts(m.GetHistogram())
				}
			}
		}
	}
	return out
}

// overCounts is a histogram's count and how many took over 25 and 50 ms.
func overCounts(h *dto.Histogram) [3]uint64 {
	n := h.GetSampleCount()
	c := [3]uint64{n, n, n}
	for _, bk := range h.GetBucket() {
		switch bk.GetUpperBound() {
		case 0.025:
			c[1] = n - bk.GetCumulativeCount()
		case 0.05:
			c[2] = n - bk.GetCumulativeCount()
		}
	}
	return c
}

// since says what ran between before and s: "commit 1538 (12 > 25 ms, 3 > 50 ms), index 5 (…), …".
func (s writerStalls) since(before writerStalls) string {
	var parts []string
	for _, name := range writerStallNames {
		a, z := before[name], s[name]
		parts = append(parts, fmt.Sprintf("%s %d (%d > 25 ms, %d > 50 ms)", name, z[0]-a[0], z[1]-a[1], z[2]-a[2]))
	}
	return strings.Join(parts, ", ")
}
