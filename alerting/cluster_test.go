package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"fieldhub/alert"
	"fieldhub/alerting"
	"fieldhub/bus"
	"fieldhub/bus/bustest"
	"fieldhub/db"
	dbpostgres "fieldhub/db/postgres"
	"fieldhub/internal/pgtest"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
	telpostgres "fieldhub/telemetry/postgres"
)

// TestWebhooksAcrossInstances: instances sharing a PostgreSQL database
// (each its own store and alerting service, as separate processes would
// have) send each webhook delivery once, and take over the deliveries that
// an instance claimed and died with once its claim ran out. Before claims
// every instance sent every due delivery.
func TestWebhooksAcrossInstances(t *testing.T) {
	testkit.Slow(t, "starts a PostgreSQL server")
	srv := pgtest.Start(t, pgtest.Options{})
	t.Run("EachDeliveryOnce", func(t *testing.T) { testEachDeliveryOnce(t, srv.Database(t)) })
	t.Run("ClaimOfADeadInstanceRunsOut", func(t *testing.T) { testClaimOfADeadInstance(t, srv.Database(t)) })
}

// receiver counts deliveries by their X-Fieldhub-Delivery id.
type receiver struct {
	mu  sync.Mutex
	got map[string]int
}

func newReceiver(t *testing.T) (*receiver, string) {
	r := &receiver{got: map[string]int{}}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got[req.Header.Get("X-Fieldhub-Delivery")]++
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return r, s.URL
}

func (r *receiver) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

// instance opens a store of its own on the database at url.
func instance(t *testing.T, url string) *dbpostgres.Store {
	st, err := dbpostgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func startAlerting(t *testing.T, st *dbpostgres.Store, node string) *alerting.Service {
	svc, err := alerting.New(context.Background(), alerting.Config{Store: st, Webhooks: st, Fleet: st, Audit: st,
		Delivery: alerting.DeliveryOptions{AllowLoopback: true, Claimer: node}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	return svc
}

// queue puts n deliveries into a new hook's outbox to url.
func queue(t *testing.T, st *dbpostgres.Store, url string, n int) db.Webhook {
	ctx := context.Background()
	h, err := st.CreateWebhook(ctx, db.NewWebhook{URL: url, Secret: "0123456789abcdef", Events: []alert.EventType{alert.EventRaised}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev := alert.Event{ID: fmt.Sprintf("event-%d", i), Type: alert.EventRaised}
		payload, _ := json.Marshal(ev)
		if _, err := st.QueueDelivery(ctx, db.Delivery{WebhookID: h.ID, EventID: ev.ID, EventType: ev.Type, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// delivered is how many of a hook's deliveries are recorded delivered.
func delivered(t *testing.T, st *dbpostgres.Store, hook int64) int {
	log, err := st.WebhookDeliveries(context.Background(), hook, db.MaxDeliveriesListed)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range log {
		if d.State == db.DeliveryDelivered {
			n++
		}
	}
	return n
}

// testEachDeliveryOnce: two instances start at once on an outbox of 100
// due deliveries; the receiver gets each once.
func testEachDeliveryOnce(t *testing.T, url string) {
	const n = 100
	recv, u := newReceiver(t)
	a, b := instance(t, url), instance(t, url)
	h := queue(t, a, u, n)
	svcA, svcB := startAlerting(t, a, "a"), startAlerting(t, b, "b")
	testkit.WaitFor(t, "every delivery recorded delivered", func() bool { return delivered(t, a, h.ID) == n })
	// Stopped, neither can still be sending.
	svcA.Close(context.Background())
	svcB.Close(context.Background())
	got := recv.counts()
	if len(got) != n {
		t.Errorf("the receiver got %d distinct deliveries, want %d", len(got), n)
	}
	for id, times := range got {
		if times != 1 {
			t.Errorf("delivery %s arrived %d times, want once", id, times)
		}
	}
}

// testClaimOfADeadInstance: an instance claims a delivery and dies before
// sending it; another sends it once the claim ran out, not before.
func testClaimOfADeadInstance(t *testing.T, url string) {
	ctx := context.Background()
	recv, u := newReceiver(t)
	dead, b := instance(t, url), instance(t, url)
	h := queue(t, dead, u, 1)
	now := time.Now()
	until := now.Add(2 * time.Second)
	claimed, err := dead.ClaimDeliveries(ctx, h.ID, db.Claim{By: "dead", Now: now, Until: until}, 20)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claimed %+v, %v; want the delivery", claimed, err)
	}
	dead.Close() // the instance is gone, its claim stays behind
	startAlerting(t, b, "b")
	testkit.WaitFor(t, "the delivery sent by the other instance", func() bool { return delivered(t, b, h.ID) == 1 })
	if got := recv.counts(); got["event-0"] != 1 || len(got) != 1 {
		t.Errorf("the receiver got %v, want event-0 once", got)
	}
	log, err := b.WebhookDeliveries(ctx, h.ID, 1)
	if err != nil || len(log) != 1 || log[0].Attempts != 1 || log[0].UpdatedAt.Before(until.Truncate(time.Millisecond)) {
		t.Errorf("delivery %+v (%v); want one attempt, made after the dead instance's claim ran out at %v", log, err, until)
	}
}

// clustered starts an alerting service on st joined to the others by a
// bus on the nats-server, as app wires them; rule reloads from the store
// wait an hour, so that only the bus carries rule changes.
func clustered(t *testing.T, st *dbpostgres.Store, nats *bustest.Server, node string) *alerting.Service {
	t.Helper()
	return clusteredWith(t, st, nats, node, func(*alerting.Config) {})
}

func clusteredWith(t *testing.T, st *dbpostgres.Store, nats *bustest.Server, node string, configure func(*alerting.Config)) *alerting.Service {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Config{URLs: []string{nats.URL()}, Node: node, Store: st,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg := alerting.Config{Store: st, Fleet: st, Audit: st, Rules: b, Silence: st.SilenceLock(),
		RuleReload: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	configure(&cfg)
	svc, err := alerting.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	if err := b.OnRules(svc.RuleChanged); err != nil {
		t.Fatal(err)
	}
	return svc
}

// openAlerts lists the open alerts of the shared database.
func openAlerts(t *testing.T, st *dbpostgres.Store) []alert.Alert {
	t.Helper()
	l, err := st.Alerts(context.Background(), db.AlertFilter{State: "open"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRuleChangesAcrossInstances: a rule created through instance A raises
// an alert for a message instance B stored, without B restarting; deleted
// through A, B clears that alert. Before rule changes were announced on
// the bus, B evaluated its messages without the rule until it restarted.
func TestRuleChangesAcrossInstances(t *testing.T) {
	testkit.Slow(t, "starts PostgreSQL and nats-server")
	url := pgtest.Start(t, pgtest.Options{}).Database(t)
	nats := bustest.Start(t)
	ctx := context.Background()
	a, b := instance(t, url), instance(t, url)
	if _, err := a.CreateDevice(ctx, db.NewDevice{DeviceID: "freezer"}); err != nil {
		t.Fatal(err)
	}
	svcA, svcB := clustered(t, a, nats, "a"), clustered(t, b, nats, "b")
	r, err := svcA.CreateRule(ctx, "user:test", alert.Rule{Name: "too warm", Severity: alert.Major, Enabled: true,
		Scope: alert.Scope{Fleet: true}, Condition: alert.Condition{Kind: alert.Threshold, Metric: "temperature", Op: alert.Greater, Value: 30}})
	if err != nil {
		t.Fatal(err)
	}
	// B stores the freezer's messages; each is evaluated as B has the rules then.
	testkit.WaitFor(t, "an alert of the new rule raised by B", func() bool {
		now := time.Now()
		svcB.Committed([]telemetry.Record{{Message: telemetry.Message{DeviceID: "freezer", EnqueuedAt: now, Body: []byte(`{}`)},
			Time: now, Readings: []telemetry.Reading{{Metric: "temperature", Value: 35}}}})
		l := openAlerts(t, b)
		return len(l) == 1 && l[0].RuleID == r.ID && l[0].DeviceID == "freezer"
	})
	if err := svcA.DeleteRule(ctx, "user:test", r.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "B's alert cleared once the rule was deleted through A", func() bool { return len(openAlerts(t, a)) == 0 })
}

// TestSilenceOncePerCluster: instance B holds the cluster's silence lock
// and stores none of the pump's messages, which all go to instance A; B
// raises no silence alert while the pump sends, and one alert in the
// cluster when it stops. Before, B watched the pump by the messages B
// stored, and raised a false silence alert that stayed open. Once B
// stops, A takes the lock over and goes on from the stored activity.
func TestSilenceOncePerCluster(t *testing.T) {
	testkit.Slow(t, "starts PostgreSQL and nats-server")
	url := pgtest.Start(t, pgtest.Options{}).Database(t)
	nats := bustest.Start(t)
	ctx := context.Background()
	a, b := instance(t, url), instance(t, url)
	if _, err := a.CreateDevice(ctx, db.NewDevice{DeviceID: "pump"}); err != nil {
		t.Fatal(err)
	}
	tel := telemetryOf(t, a, "a")
	send := func(svc *alerting.Service) {
		t.Helper()
		now := time.Now()
		rec := telemetry.Record{Message: telemetry.Message{DeviceID: "pump", EnqueuedAt: now, Body: []byte(`{}`)}, Time: now}
		if _, err := tel.Append(ctx, []telemetry.Record{rec}); err != nil {
			t.Fatal(err)
		}
		if svc != nil {
			svc.Committed([]telemetry.Record{rec})
		}
	}
	send(nil) // the pump was heard from before, as both instances read from the store at their start
	fast := func(c *alerting.Config) { c.SilenceSync = 50 * time.Millisecond }
	svcB := clusteredWith(t, b, nats, "b", fast) // first: B takes the silence lock
	svcA := clusteredWith(t, a, nats, "a", fast)
	const silence = 3 * time.Second
	if _, err := svcB.CreateRule(ctx, "user:test", alert.Rule{Name: "pump silent", Severity: alert.Critical, Enabled: true,
		Scope: alert.Scope{DeviceID: "pump"}, Condition: alert.Condition{Kind: alert.Silence, Seconds: int(silence / time.Second)}}); err != nil {
		t.Fatal(err)
	}
	// The pump sends to A every 200 ms for twice the silence.
	for end := time.Now().Add(2 * silence); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		send(svcA)
		if l := openAlerts(t, a); len(l) != 0 {
			t.Fatalf("silence alert %+v raised while the pump sends to instance A", l[0])
		}
	}
	testkit.WaitFor(t, "the pump's silence alert once it stopped", func() bool { return len(openAlerts(t, a)) == 1 })
	all, err := a.Alerts(ctx, db.AlertFilter{})
	if err != nil || len(all) != 1 {
		t.Errorf("alerts %+v (%v); want the one silence alert", all, err)
	}

	// The pump sends to A again: B clears the alert by the stored activity.
	send(svcA)
	testkit.WaitFor(t, "the silence alert cleared", func() bool { return len(openAlerts(t, a)) == 0 })
	// B stops and lets the lock go (as its session would end if it died):
	// A takes over, and goes on from the stored activity and alerts.
	svcB.Close(ctx)
	for end := time.Now().Add(2 * silence); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		send(svcA)
		if l := openAlerts(t, a); len(l) != 0 {
			t.Fatalf("silence alert %+v raised after the takeover while the pump sends", l[0])
		}
	}
	testkit.WaitFor(t, "the silence alert raised by A once the pump stopped", func() bool { return len(openAlerts(t, a)) == 1 })
	if all, err := a.Alerts(ctx, db.AlertFilter{}); err != nil || len(all) != 2 {
		t.Errorf("alerts %+v (%v); want the first silence alert and the one after the takeover", all, err)
	}
}

// telemetryOf is an instance's telemetry in the database of st, as node.
func telemetryOf(t *testing.T, st *dbpostgres.Store, node string) *telemetry.Store {
	t.Helper()
	storage, err := telpostgres.New(context.Background(), st.Pool(), node)
	if err == nil {
		err = storage.Claim(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(storage.Close)
	tel, err := telemetry.Open(context.Background(), storage, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tel
}
