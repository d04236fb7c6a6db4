package alerting_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/alert"
	"fieldhub/alerting"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// fixture is a database with devices, its telemetry store and a clock;
// start runs an alerting service over them, as a (re)start of the hub.
type fixture struct {
	t   *testing.T
	db  *db.DB
	tel *telemetry.Store
	clk *testkit.Clock
}

func newFixture(t *testing.T, devices ...string) *fixture {
	d := dbtest.MustOpen(t)
	clk := testkit.NewClock(t0)
	d.Now = clk.Now
	for _, id := range devices {
		if _, err := d.CreateDevice(context.Background(), db.NewDevice{DeviceID: id, Tags: map[string]string{"site": "berlin"}}); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{t: t, db: d, tel: dbtest.Telemetry(t, d), clk: clk}
}

func (f *fixture) start(configure ...func(*alerting.Config)) *alerting.Service {
	f.t.Helper()
	cfg := alerting.Config{Store: f.db, Webhooks: f.db, Fleet: f.db, Audit: f.db, Latest: f.tel, Now: f.clk.Now,
		Delivery: alerting.DeliveryOptions{AllowLoopback: true}}
	for _, c := range configure {
		c(&cfg)
	}
	svc, err := alerting.New(context.Background(), cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { svc.Close(context.Background()) })
	return svc
}

// send commits a message at the clock's time and hands it to svc, as the
// ingest pipeline does.
func (f *fixture) send(svc *alerting.Service, device string, metric string, v float64) {
	f.t.Helper()
	rec := telemetry.Record{Message: telemetry.Message{DeviceID: device, EnqueuedAt: f.clk.Now(), Body: []byte(`{}`)}, Time: f.clk.Now(),
		Readings: []telemetry.Reading{{Metric: metric, Value: v}}}
	if _, err := f.tel.Append(context.Background(), []telemetry.Record{rec}); err != nil {
		f.t.Fatal(err)
	}
	svc.Committed([]telemetry.Record{rec})
}

func (f *fixture) rule(svc *alerting.Service, r alert.Rule) alert.Rule {
	f.t.Helper()
	r.Enabled = true
	r, err := svc.CreateRule(context.Background(), "user:test", r)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) open() []alert.Alert {
	f.t.Helper()
	l, err := f.db.Alerts(context.Background(), db.AlertFilter{State: "open"})
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// TestRecoveryAfterRestart: a forSeconds timer and a silence timer that
// run out while the hub is down raise at their own time when it starts
// again; an open alert survives the restart and clears on the next reading.
func TestRecoveryAfterRestart(t *testing.T) {
	f := newFixture(t, "freezer", "pump")
	svc := f.start()
	f.rule(svc, alert.Rule{Name: "warm for 2 min", Severity: alert.Major, Scope: alert.Scope{Tags: map[string]string{"site": "berlin"}},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "temperature", Op: alert.Greater, Value: 30, ForSeconds: 120}})
	f.rule(svc, alert.Rule{Name: "pump silent", Severity: alert.Critical, Scope: alert.Scope{DeviceID: "pump"},
		Condition: alert.Condition{Kind: alert.Silence, Seconds: 600}})
	high := f.rule(svc, alert.Rule{Name: "pressure", Severity: alert.Minor, Scope: alert.Scope{Fleet: true},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "pressure", Op: alert.Greater, Value: 5}})
	f.send(svc, "pump", "pressure", 9)
	f.send(svc, "freezer", "temperature", 35) // pending for 120 s
	testkit.WaitFor(t, "the pressure alert", func() bool { return len(f.open()) == 1 })
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	f.clk.Advance(time.Hour) // down for an hour
	svc = f.start()
	open := f.open()
	byRule := map[string]alert.Alert{}
	for _, a := range open {
		byRule[svc.RuleName(a.RuleID)] = a
	}
	if len(open) != 3 {
		t.Fatalf("open after the restart = %+v; want pressure, warm and silent", open)
	}
	if a := byRule["warm for 2 min"]; !a.FirstAt.Equal(t0.Add(120*time.Second)) || a.DeviceID != "freezer" || a.Value != 35.0 {
		t.Errorf("warm = %+v; want raised at t0+120s, when its time was up", a)
	}
	if a := byRule["pump silent"]; !a.FirstAt.Equal(t0.Add(600*time.Second)) || a.DeviceID != "pump" {
		t.Errorf("silent = %+v; want raised at t0+600s", a)
	}
	pressure := byRule["pressure"]
	if pressure.RuleID != high.ID || !pressure.FirstAt.Equal(t0) {
		t.Errorf("pressure = %+v; want the alert from before the restart", pressure)
	}
	if c := svc.OpenCounts(); c[alert.Critical] != 1 || c[alert.Major] != 1 || c[alert.Minor] != 1 {
		t.Errorf("open counts = %v", c)
	}
	f.send(svc, "pump", "pressure", 1)
	testkit.WaitFor(t, "pressure and silence cleared by the pump's message", func() bool { return len(f.open()) == 1 })
	got, _ := f.db.Alert(context.Background(), pressure.ID)
	if got.State != alert.StateCleared || got.ClearReason != alert.ReasonCondition {
		t.Errorf("pressure after the clearing reading = %+v", got)
	}
}

// TestRestartClearsAlertsOfDeletedRules: an alert open when its rule was
// deleted behind the hub's back (another process, a restore) clears at
// start with that reason instead of staying open forever.
func TestRestartClearsAlertsOfDeletedRules(t *testing.T) {
	f := newFixture(t, "d1")
	svc := f.start()
	r := f.rule(svc, alert.Rule{Name: "any", Severity: alert.Info, Scope: alert.Scope{Fleet: true},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "x", Op: alert.Greater, Value: 0}})
	f.send(svc, "d1", "x", 1)
	testkit.WaitFor(t, "the alert", func() bool { return len(f.open()) == 1 })
	svc.Close(context.Background())
	if err := f.db.DeleteAlertRule(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	f.start()
	l, _ := f.db.Alerts(context.Background(), db.AlertFilter{})
	if len(l) != 1 || l[0].State != alert.StateCleared || l[0].ClearReason != alert.ReasonRuleDeleted {
		t.Errorf("alerts = %+v; want cleared as ruleDeleted", l)
	}
}

// TestSlowWebhookBlocksNothing: a receiver that never answers holds only
// its own hook: another hook gets every delivery, and alerts keep being
// raised and stored.
func TestSlowWebhookBlocksNothing(t *testing.T) {
	f := newFixture(t, "d1", "d2", "d3", "d4", "d5")
	release := make(chan struct{})
	var hung atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		<-release
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	var mu sync.Mutex
	var got []string
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	t.Cleanup(fast.Close)
	svc := f.start(func(c *alerting.Config) { c.Delivery.Timeout = time.Minute })
	for _, u := range []string{slow.URL, fast.URL} {
		if _, err := svc.CreateWebhook(context.Background(), "user:admin", db.NewWebhook{URL: u, Secret: "0123456789abcdef", Events: []alert.EventType{alert.EventRaised}}); err != nil {
			t.Fatal(err)
		}
	}
	f.rule(svc, alert.Rule{Name: "any", Severity: alert.Info, Scope: alert.Scope{Fleet: true},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "x", Op: alert.Greater, Value: 0}})
	for _, d := range []string{"d1", "d2", "d3", "d4", "d5"} {
		f.send(svc, d, "x", 1)
	}
	testkit.WaitFor(t, "five deliveries at the fast receiver while the slow one hangs", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 5 && hung.Load() == 1
	})
	if n := len(f.open()); n != 5 {
		t.Errorf("open alerts = %d; want 5", n)
	}
}

// TestWebhookAddressGuard: without AllowLoopback a hook on a loopback
// address is never dialled; the attempt fails saying why, and is retried
// later like any failure.
func TestWebhookAddressGuard(t *testing.T) {
	f := newFixture(t, "d1")
	var hits atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(recv.Close)
	svc := f.start(func(c *alerting.Config) { c.Delivery.AllowLoopback = false })
	h, err := svc.CreateWebhook(context.Background(), "user:admin", db.NewWebhook{URL: recv.URL, Secret: "0123456789abcdef", Events: []alert.EventType{alert.EventRaised}})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := svc.CreateWebhook(context.Background(), "user:admin", db.NewWebhook{URL: "http://169.254.169.254/latest/meta-data/", Secret: "0123456789abcdef", Events: []alert.EventType{alert.EventRaised}})
	if err != nil {
		t.Fatal(err)
	}
	f.rule(svc, alert.Rule{Name: "any", Severity: alert.Info, Scope: alert.Scope{Fleet: true},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "x", Op: alert.Greater, Value: 0}})
	f.send(svc, "d1", "x", 1)
	for _, id := range []int64{h.ID, meta.ID} {
		testkit.WaitFor(t, "the refused attempt in the log", func() bool {
			_, log, err := svc.Webhook(context.Background(), id, 10)
			return err == nil && len(log) == 1 && log[0].Attempts == 1
		})
		_, log, _ := svc.Webhook(context.Background(), id, 10)
		if log[0].State != db.DeliveryPending || !strings.Contains(log[0].LastError, "not allowed") {
			t.Errorf("hook %d: %+v; want a refused attempt, retried later", id, log[0])
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the loopback receiver was reached %d times", hits.Load())
	}
}

// TestFailingWebhookIsDisabled: a hook whose deliveries fail past the
// policy's DisableAfter is disabled with the reason, in the audit log.
func TestFailingWebhookIsDisabled(t *testing.T) {
	f := newFixture(t, "d1", "d2")
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(recv.Close)
	policy := alert.DefaultRetryPolicy()
	svc := f.start(func(c *alerting.Config) { c.Delivery.Policy = policy })
	h, _ := svc.CreateWebhook(context.Background(), "user:admin", db.NewWebhook{URL: recv.URL, Secret: "0123456789abcdef", Events: []alert.EventType{alert.EventRaised}})
	f.rule(svc, alert.Rule{Name: "any", Severity: alert.Info, Scope: alert.Scope{Fleet: true},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "x", Op: alert.Greater, Value: 0}})
	f.send(svc, "d1", "x", 1)
	testkit.WaitFor(t, "the first failure", func() bool {
		w, _, _ := svc.Webhook(context.Background(), h.ID, 1)
		return !w.FailingSince.IsZero()
	})
	f.clk.Advance(policy.DisableAfter)
	f.send(svc, "d2", "x", 1) // a new delivery, due now, fails a day after the first failure
	testkit.WaitFor(t, "the hook disabled", func() bool {
		w, _, _ := svc.Webhook(context.Background(), h.ID, 1)
		return !w.Enabled
	})
	w, _, _ := svc.Webhook(context.Background(), h.ID, 1)
	if !strings.Contains(w.DisabledReason, "502") {
		t.Errorf("reason = %q; want the failure", w.DisabledReason)
	}
	testkit.WaitFor(t, "the disable in the audit log", func() bool {
		entries, _ := f.db.AuditEntries(context.Background(), db.AuditFilter{})
		return len(entries) > 0 && entries[0].Action == alerting.ActionHookDisable && entries[0].Actor == "hub"
	})
}

// TestDeviceAddedByAnotherProcess: a device the registry did not announce
// (added by the CLI while the hub runs) is read on its first message, so
// rules scoped by its tags watch it; tags changed behind the hub's back are
// picked up by the periodic comparison.
func TestDeviceAddedByAnotherProcess(t *testing.T) {
	f := newFixture(t)
	svc := f.start()
	f.rule(svc, alert.Rule{Name: "berlin", Severity: alert.Major, Scope: alert.Scope{Tags: map[string]string{"site": "berlin"}},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "x", Op: alert.Greater, Value: 0}})
	if _, err := f.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: "late", Tags: map[string]string{"site": "berlin"}}); err != nil {
		t.Fatal(err)
	}
	f.send(svc, "late", "x", 1)
	testkit.WaitFor(t, "the alert of a device added behind the registry's back", func() bool { return len(f.open()) == 1 })
}

// TestRulesReloadedPeriodically: a rule created behind the service's back
// (another instance whose announcement was lost) is evaluated after the
// next periodic reload, and its deletion clears its alert.
func TestRulesReloadedPeriodically(t *testing.T) {
	f := newFixture(t, "freezer")
	other := f.start()
	svc := f.start(func(c *alerting.Config) { c.RuleReload = 10 * time.Millisecond })
	r := f.rule(other, alert.Rule{Name: "too warm", Severity: alert.Major, Scope: alert.Scope{Fleet: true},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "temperature", Op: alert.Greater, Value: 30}})
	testkit.WaitFor(t, "the rule reloaded and an alert raised", func() bool {
		f.send(svc, "freezer", "temperature", 35)
		return len(f.open()) == 1
	})
	if err := f.db.DeleteAlertRule(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the deletion reloaded and the alert cleared", func() bool { return len(f.open()) == 0 })
}

// TestEvaluatorStatePerInstance: two instances of a cluster on one store
// each save their own evaluator state. A has the freezer's forSeconds
// timer pending; B, stopping after A, has none. When A starts again its
// timer fires at its own time. With one shared setting B's empty state
// overwrote A's and the alert was never raised.
func TestEvaluatorStatePerInstance(t *testing.T) {
	f := newFixture(t, "freezer")
	node := func(name string) func(*alerting.Config) { return func(c *alerting.Config) { c.Node = name } }
	a := f.start(node("a"))
	f.rule(a, alert.Rule{Name: "warm for 2 min", Severity: alert.Major, Scope: alert.Scope{DeviceID: "freezer"},
		Condition: alert.Condition{Kind: alert.Threshold, Metric: "temperature", Op: alert.Greater, Value: 30, ForSeconds: 120}})
	b := f.start(node("b"))
	f.send(a, "freezer", "temperature", 35) // pending on A for 120 s (Close evaluates it first)
	for _, svc := range []*alerting.Service{a, b} {
		if err := svc.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	f.clk.Advance(time.Hour)
	f.start(node("a"))
	open := f.open()
	if len(open) != 1 || open[0].DeviceID != "freezer" || !open[0].FirstAt.Equal(t0.Add(120*time.Second)) {
		t.Fatalf("open after A's restart = %+v; want the freezer's alert raised at t0+120s", open)
	}
}
