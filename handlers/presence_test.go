package handlers_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
	"fieldhub/telemetry/sqlite"
)

// TestHTTPSRightAfterHangUpShowsOnline: a device that sends over HTTPS
// within a second of its MQTT connection closing is shown online on the
// fleet and device pages at once, although its activity writes are
// throttled (telemetry.ActivityStep): the broker tells telemetry of the
// hang-up (mqtt.TestMessageRightAfterHangUpIsOnline drives the real broker;
// here the store records the connection as the broker does).
func TestHTTPSRightAfterHangUpShowsOnline(t *testing.T) {
	clk := testkit.NewClock(time.Now())
	d := dbtest.MustOpen(t)
	d.Now = clk.Now
	tel, err := telemetry.Open(context.Background(), sqlite.New(d), telemetry.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := ingest.New(tel, nil, ingest.Options{Now: clk.Now})
	t.Cleanup(func() { p.Close(context.Background()) })
	r := testkit.NewRouter(t, func(c *handlers.Config) { c.Store, c.Telemetry, c.Ingest, c.Now = d, tel, p, clk.Now })
	h := &ingestHub{t: t, db: d, tel: tel, srv: r.HTTP, server: r.Server, viewer: r.Tokens[db.RoleViewer]}
	dev := h.addDevice("dev1")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	send := func(when string) {
		t.Helper()
		if res := h.event("dev1", authz, `{"t":1}`, nil); res.status != 204 {
			t.Fatalf("%s: status %d (%s), want 204", when, res.status, res.body)
		}
	}
	ctx := context.Background()
	send("before connecting")
	if _, err := d.SetDeviceConnection(ctx, "dev1", "local", true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(200 * time.Millisecond)
	if _, err := d.SetDeviceConnection(ctx, "dev1", "local", false); err != nil {
		t.Fatal(err)
	}
	if err := p.HungUp(ctx, "dev1"); err != nil {
		t.Fatal(err)
	}
	status := regexp.MustCompile(`data-status="(\w+)"`)
	pageStatus := func(path string) string {
		t.Helper()
		res := h.get(path)
		if res.status != 200 {
			t.Fatalf("GET %s: status %d", path, res.status)
		}
		m := status.FindStringSubmatch(string(res.body))
		if m == nil {
			t.Fatalf("GET %s: no status badge in %s", path, strings.TrimSpace(string(res.body)))
		}
		return m[1]
	}
	if got := pageStatus("/devices/dev1"); got != db.StatusOffline {
		t.Fatalf("after hanging up, the device page shows %s, want offline", got)
	}

	clk.Advance(300 * time.Millisecond)
	send("300 ms after hanging up")
	for _, path := range []string{"/devices", "/devices/dev1"} {
		if got := pageStatus(path); got != db.StatusOnline {
			t.Errorf("GET %s shows %s after a message 300 ms after hanging up, want online", path, got)
		}
	}
}
