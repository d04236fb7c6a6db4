package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"fieldhub/alert"
	"fieldhub/alerting"
	"fieldhub/db"
	dbpostgres "fieldhub/db/postgres"
	"fieldhub/internal/pgtest"
	"fieldhub/internal/testkit"
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
