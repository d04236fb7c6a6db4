package metrics

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/internal/testkit"
)

// TestDashboardNamesExist holds deploy/grafana-fieldhub.json to the
// metrics the hub exposes: a renamed metric must not leave a panel empty.
func TestDashboardNamesExist(t *testing.T) {
	ch := make(chan *prometheus.Desc, 64)
	(&collector{}).Describe(ch)
	close(ch)
	described := map[string]bool{}
	name := regexp.MustCompile(`fqName: "([a-z0-9_]+)"`)
	for d := range ch {
		m := name.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		described[m[1]] = true
	}
	b, err := os.ReadFile("../deploy/grafana-fieldhub.json")
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`fieldhub_[a-z0-9_]+`).FindAllString(string(b), -1)
	if len(used) == 0 {
		t.Fatal("the dashboard uses no fieldhub_ metric")
	}
	for _, n := range used {
		// A histogram's series are its name with these suffixes.
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !described[n] && !described[base] {
			t.Errorf("the dashboard uses %s, which the hub does not expose", n)
		}
	}
}

// TestCloudCountsAtMostEveryFewSeconds: C2D messages are counted in the
// store at scrape time, but a scrape within storeEvery of the last count
// shows that count instead of scanning again.
func TestCloudCountsAtMostEveryFewSeconds(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	clk := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := &collector{src: Sources{Store: d}, now: clk.Now}
	queued := func() float64 {
		t.Helper()
		ch := make(chan prometheus.Metric, 64)
		c.Collect(ch)
		close(ch)
		for m := range ch {
			var pb dto.Metric
			if err := m.Write(&pb); err != nil {
				t.Fatal(err)
			}
			if m.Desc() == c2dMessages && len(pb.GetLabel()) == 1 && pb.GetLabel()[0].GetValue() == db.CloudQueued {
				return pb.GetGauge().GetValue()
			}
		}
		t.Fatal("no fieldhub_c2d_messages{state=queued}")
		return 0
	}
	enqueue := func() {
		t.Helper()
		if _, err := d.EnqueueCloudMessage(ctx, db.NewCloudMessage{DeviceID: "dev1", Body: []byte("x"), TTL: time.Hour, MaxDeliveryCount: 10}, 50); err != nil {
			t.Fatal(err)
		}
	}
	if n := queued(); n != 0 {
		t.Fatalf("queued = %g before any message", n)
	}
	enqueue()
	if n := queued(); n != 0 {
		t.Errorf("queued = %g right after the last count, want the count of then (0)", n)
	}
	clk.Advance(storeEvery)
	if n := queued(); n != 1 {
		t.Errorf("queued = %g once the count is %s old, want 1", n, storeEvery)
	}
}
