package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"fieldhub/alert"
	"fieldhub/db"
	"fieldhub/storage"
)

// RunAlerts tests alert rules, alerts with their history, webhooks and
// their delivery outbox.
func RunAlerts(t *testing.T, b Backend) {
	cases(t, b,
		test{"RulesRoundTrip", testRulesRoundTrip},
		test{"RulesRefused", testRulesRefused},
		test{"RulesBound", testRulesBound},
		test{"OneOpenAlertPerRuleAndDevice", testOneOpenAlert},
		test{"ClearedIsFinal", testClearedIsFinal},
		test{"SaveAlertsBatch", testSaveAlerts},
		test{"AlertFiltersAndCounts", testAlertFilters},
		test{"AlertHistoryRetention", testAlertRetention},
		test{"Webhooks", testWebhooks},
		test{"DeliveryOutbox", testDeliveryOutbox},
		test{"DeliveryClaims", testDeliveryClaims},
		test{"OutboxBound", testOutboxBound},
	)
}

func sampleRules() []alert.Rule {
	return []alert.Rule{
		{Name: "Too warm", Severity: alert.Major, Enabled: true, Scope: alert.Scope{Tags: map[string]string{"site": "berlin"}},
			Condition: alert.Condition{Kind: alert.Threshold, Metric: "temperature", Op: alert.Greater, Value: 30, ForSeconds: 120, Hysteresis: 2}},
		{Name: "Quiet pump", Severity: alert.Critical, Enabled: false, Scope: alert.Scope{DeviceID: "pump-1"},
			Condition: alert.Condition{Kind: alert.Silence, Seconds: 300}},
		{Name: "Firmware", Severity: alert.Info, Enabled: true, Scope: alert.Scope{Fleet: true},
			Condition: alert.Condition{Kind: alert.Changed, Property: "firmware"}},
		{Name: "Cold «é»", Severity: alert.Warning, Enabled: true, Scope: alert.Scope{Fleet: true},
			Condition: alert.Condition{Kind: alert.Threshold, Metric: "engine.temp", Op: alert.Less, Value: -5.5, Clear: &alert.Comparison{Op: alert.GreaterEqual, Value: 0}}},
	}
}

// testRulesRoundTrip: every kind of rule reads back as written, edits and
// deletes take, and rules survive a restart.
func testRulesRoundTrip(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	var ids []int64
	for _, r := range sampleRules() {
		got, err := s.CreateAlertRule(ctx, r)
		if err != nil {
			t.Fatalf("create %q: %v", r.Name, err)
		}
		if got.ID <= 0 {
			t.Fatalf("create %q: id %d", r.Name, got.ID)
		}
		ids = append(ids, got.ID)
	}
	s = b.Reopen(t, s, clk.Now)
	rules, err := s.AlertRules(ctx)
	if err != nil || len(rules) != len(ids) {
		t.Fatalf("rules = %d, %v; want %d", len(rules), err, len(ids))
	}
	for i, want := range sampleRules() {
		want.ID = ids[i]
		if got := rules[i]; fmt.Sprint(got) != fmt.Sprint(want) || got.Condition.String() != want.Condition.String() {
			t.Errorf("rule %d = %+v; want %+v", i, got, want)
		}
		if one, err := s.AlertRule(ctx, ids[i]); err != nil || one.Name != want.Name {
			t.Errorf("AlertRule(%d) = %+v, %v", ids[i], one, err)
		}
	}
	edit := rules[0]
	edit.Name, edit.Enabled, edit.Condition.Value = "Hot", false, 35
	if _, err := s.UpdateAlertRule(ctx, edit); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.AlertRule(ctx, edit.ID); got.Name != "Hot" || got.Enabled || got.Condition.Value != 35 {
		t.Errorf("after edit: %+v", got)
	}
	if err := s.DeleteAlertRule(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AlertRule(ctx, ids[1]); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted rule: %v; want ErrNotFound", err)
	}
	if err := s.DeleteAlertRule(ctx, ids[1]); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("delete again: %v; want ErrNotFound", err)
	}
	edit.ID = 9999
	if _, err := s.UpdateAlertRule(ctx, edit); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("update unknown: %v; want ErrNotFound", err)
	}
}

// testRulesRefused: a rule with a bad field is refused naming the field,
// before it costs a row.
func testRulesRefused(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	good := sampleRules()[0]
	for _, tc := range []struct {
		field string
		edit  func(r *alert.Rule)
	}{
		{"name", func(r *alert.Rule) { r.Name = strings.Repeat("n", 1<<20) }},
		{"name", func(r *alert.Rule) { r.Name = " " }},
		{"severity", func(r *alert.Rule) { r.Severity = "bad" }},
		{"condition.metric", func(r *alert.Rule) { r.Condition.Metric = strings.Repeat("m", 10000) }},
		{"scope", func(r *alert.Rule) { r.Scope = alert.Scope{} }},
	} {
		r := good
		tc.edit(&r)
		_, err := s.CreateAlertRule(ctx, r)
		var inv *storage.InvalidError
		if !errors.As(err, &inv) || inv.Field != tc.field {
			t.Errorf("%s: err = %v; want an InvalidError on %s", tc.field, err, tc.field)
		}
	}
	if rules, _ := s.AlertRules(ctx); len(rules) != 0 {
		t.Errorf("%d rules stored; want none", len(rules))
	}
}

// testRulesBound: beyond db.MaxAlertRules, a new rule is refused.
func testRulesBound(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	r := sampleRules()[2]
	for i := range db.MaxAlertRules {
		r.Name = fmt.Sprintf("rule %d", i)
		if _, err := s.CreateAlertRule(ctx, r); err != nil {
			t.Fatalf("rule %d: %v", i, err)
		}
	}
	_, err := s.CreateAlertRule(ctx, r)
	var inv *storage.InvalidError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), fmt.Sprint(db.MaxAlertRules)) {
		t.Errorf("rule %d: %v; want refused naming the bound", db.MaxAlertRules+1, err)
	}
}

func openAlert(ruleID int64, device string, sev alert.Severity, at time.Time) alert.Alert {
	return alert.Alert{RuleID: ruleID, DeviceID: device, Severity: sev, State: alert.StateActive, Count: 1, FirstAt: at, LastAt: at, Value: 31.5}
}

// testOneOpenAlert: one open alert per (rule, device); repeats update it;
// once cleared, a new one can open; all of it survives a restart.
func testOneOpenAlert(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	a, err := s.InsertAlert(ctx, openAlert(1, "pump-1", alert.Major, T0))
	if err != nil || a.ID <= 0 {
		t.Fatalf("insert: %+v, %v", a, err)
	}
	if _, err := s.InsertAlert(ctx, openAlert(1, "pump-1", alert.Major, T0)); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second open alert: %v; want ErrConflict", err)
	}
	if _, err := s.InsertAlert(ctx, openAlert(2, "pump-1", alert.Major, T0)); err != nil {
		t.Fatalf("other rule: %v", err)
	}
	a.Count, a.LastAt, a.Value = 3, T0.Add(time.Minute), 33.25
	if err := s.UpdateAlert(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := a.Acknowledge("user:ops", "on it\nline two", T0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAlert(ctx, a); err != nil {
		t.Fatal(err)
	}
	s = b.Reopen(t, s, clk.Now)
	got, err := s.Alert(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 3 || !got.LastAt.Equal(a.LastAt) || got.Value != 33.25 || got.State != alert.StateAcknowledged ||
		got.AcknowledgedBy != "user:ops" || got.AckComment != "on it\nline two" || !got.AcknowledgedAt.Equal(T0.Add(2*time.Minute)) {
		t.Errorf("after restart: %+v", got)
	}
	if err := got.Clear("user:ops", "fixed", T0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAlert(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := s.InsertAlert(ctx, openAlert(1, "pump-1", alert.Major, T0.Add(4*time.Minute)))
	if err != nil || again.ID == a.ID {
		t.Fatalf("new alert after the clear: %+v, %v", again, err)
	}
	if _, err := s.Alert(ctx, 99999); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown alert: %v; want ErrNotFound", err)
	}
}

// testClearedIsFinal: writing a cleared alert again is a conflict, so an
// acknowledgement racing a clear cannot reopen it.
func testClearedIsFinal(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	a, err := s.InsertAlert(ctx, openAlert(1, "d", alert.Minor, T0))
	if err != nil {
		t.Fatal(err)
	}
	cleared := a
	if err := cleared.Clear("user:a", "", T0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAlert(ctx, cleared); err != nil {
		t.Fatal(err)
	}
	if err := a.Acknowledge("user:b", "", T0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAlert(ctx, a); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("acknowledging a cleared alert: %v; want ErrConflict", err)
	}
	if got, _ := s.Alert(ctx, a.ID); got.State != alert.StateCleared || got.ClearedBy != "user:a" || got.ClearReason != alert.ReasonOperator {
		t.Errorf("stored: %+v", got)
	}
	if _, err := s.InsertAlert(ctx, cleared); err == nil {
		t.Error("inserting a cleared alert was accepted")
	}
}

// testAlertFilters: state (open means active or acknowledged), severity,
// device, rule, paging newest first, and the open counts by severity.
func testAlertFilters(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	var ids []int64
	for i, sev := range []alert.Severity{alert.Critical, alert.Major, alert.Major, alert.Info} {
		a, err := s.InsertAlert(ctx, openAlert(int64(i%2+1), fmt.Sprintf("dev-%d", i), sev, T0))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	acked, _ := s.Alert(ctx, ids[1])
	_ = acked.Acknowledge("user:x", "", T0)
	cleared, _ := s.Alert(ctx, ids[3])
	_ = cleared.Clear("user:x", "", T0)
	for _, a := range []alert.Alert{acked, cleared} {
		if err := s.UpdateAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		f    db.AlertFilter
		want []int64
	}{
		{"all", db.AlertFilter{}, []int64{ids[3], ids[2], ids[1], ids[0]}},
		{"open", db.AlertFilter{State: "open"}, []int64{ids[2], ids[1], ids[0]}},
		{"active", db.AlertFilter{State: "active"}, []int64{ids[2], ids[0]}},
		{"acknowledged", db.AlertFilter{State: "acknowledged"}, []int64{ids[1]}},
		{"cleared", db.AlertFilter{State: "cleared"}, []int64{ids[3]}},
		{"major", db.AlertFilter{Severity: "major"}, []int64{ids[2], ids[1]}},
		{"device", db.AlertFilter{DeviceID: "dev-2"}, []int64{ids[2]}},
		{"rule", db.AlertFilter{RuleID: 2}, []int64{ids[3], ids[1]}},
		{"page", db.AlertFilter{BeforeID: ids[2], Limit: 1}, []int64{ids[1]}},
	} {
		got, err := s.Alerts(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var gotIDs []int64
		for _, a := range got {
			gotIDs = append(gotIDs, a.ID)
		}
		if fmt.Sprint(gotIDs) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, gotIDs, tc.want)
		}
	}
	counts, err := s.OpenAlertCounts(ctx)
	if err != nil || counts[alert.Critical] != 1 || counts[alert.Major] != 2 || counts[alert.Info] != 0 {
		t.Errorf("open counts = %v, %v; want critical 1, major 2", counts, err)
	}
}

// testAlertRetention: pruning deletes alerts cleared before the cutoff, in
// steps of at most limit, never an open one however old.
func testAlertRetention(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	old, _ := s.InsertAlert(ctx, openAlert(1, "a", alert.Major, T0))
	for i := range 3 {
		a, _ := s.InsertAlert(ctx, openAlert(2, fmt.Sprint("c", i), alert.Major, T0))
		_ = a.Clear("user:x", "", T0.Add(time.Duration(i)*time.Hour))
		if err := s.UpdateAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneAlerts(ctx, T0.Add(90*time.Minute), 1)
	if err != nil || n != 1 {
		t.Fatalf("first step: %d, %v; want 1", n, err)
	}
	n, err = s.PruneAlerts(ctx, T0.Add(90*time.Minute), 10)
	if err != nil || n != 1 {
		t.Fatalf("second step: %d, %v; want 1", n, err)
	}
	left, _ := s.Alerts(ctx, db.AlertFilter{})
	if len(left) != 2 || left[1].ID != old.ID || left[0].DeviceID != "c2" {
		t.Errorf("left: %+v; want the open alert and the one cleared after the cutoff", left)
	}
}

func newHook(url string) db.NewWebhook {
	return db.NewWebhook{URL: url, Secret: "0123456789abcdef", Events: []alert.EventType{alert.EventRaised, alert.EventCleared}}
}

// testWebhooks: fields are checked, the number of hooks bounded, and
// enabling, disabling and deleting take.
func testWebhooks(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	for _, tc := range []struct {
		field string
		edit  func(n *db.NewWebhook)
	}{
		{"url", func(n *db.NewWebhook) { n.URL = "ftp://example.com/x" }},
		{"url", func(n *db.NewWebhook) { n.URL = "https://" + strings.Repeat("a", db.MaxWebhookURL) }},
		{"url", func(n *db.NewWebhook) { n.URL = "https://user:pw@example.com/" }},
		{"url", func(n *db.NewWebhook) { n.URL = "/relative" }},
		{"secret", func(n *db.NewWebhook) { n.Secret = "short" }},
		{"events", func(n *db.NewWebhook) { n.Events = nil }},
		{"events", func(n *db.NewWebhook) { n.Events = []alert.EventType{"alert.exploded"} }},
		{"format", func(n *db.NewWebhook) { n.Format = "xml" }},
	} {
		n := newHook("https://example.com/hook")
		tc.edit(&n)
		_, err := s.CreateWebhook(ctx, n)
		var inv *storage.InvalidError
		if !errors.As(err, &inv) || inv.Field != tc.field {
			t.Errorf("%s: %v; want an InvalidError on %s", tc.field, err, tc.field)
		}
	}
	w, err := s.CreateWebhook(ctx, newHook("https://example.com/hook"))
	if err != nil || !w.Enabled || w.Format != db.WebhookJSON {
		t.Fatalf("create: %+v, %v", w, err)
	}
	s = b.Reopen(t, s, clk.Now)
	got, err := s.Webhook(ctx, w.ID)
	if err != nil || got.URL != w.URL || got.Secret != w.Secret || !got.Wants(alert.EventCleared) || got.Wants(alert.EventAcknowledged) {
		t.Errorf("read back: %+v, %v", got, err)
	}
	if got, err = s.SetWebhookEnabled(ctx, w.ID, false, "failing"); err != nil || got.Enabled || got.DisabledReason != "failing" {
		t.Errorf("disable: %+v, %v", got, err)
	}
	if got, err = s.SetWebhookEnabled(ctx, w.ID, true, "ignored"); err != nil || !got.Enabled || got.DisabledReason != "" {
		t.Errorf("enable: %+v, %v", got, err)
	}
	for i := 1; i < db.MaxWebhooks; i++ {
		if _, err := s.CreateWebhook(ctx, newHook(fmt.Sprintf("https://example.com/%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateWebhook(ctx, newHook("https://example.com/over")); err == nil {
		t.Errorf("hook %d accepted", db.MaxWebhooks+1)
	}
	if err := s.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Webhook(ctx, w.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted hook: %v", err)
	}
}

// testDeliveryOutbox: a delivery waits until due, a failure schedules the
// next attempt and starts the hook's failure streak, a success ends it, a
// give-up fails it, disabling the hook fails what waits; it all survives a
// restart.
func testDeliveryOutbox(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	w, _ := s.CreateWebhook(ctx, newHook("https://example.com/hook"))
	payload := []byte(`{"id":"1-alert.raised-1","type":"alert.raised"}`)
	d1, err := s.QueueDelivery(ctx, db.Delivery{WebhookID: w.ID, EventID: "e1", EventType: alert.EventRaised, AlertID: 7, Payload: payload})
	if err != nil || d1.State != db.DeliveryPending {
		t.Fatalf("queue: %+v, %v", d1, err)
	}
	d2, _ := s.QueueDelivery(ctx, db.Delivery{WebhookID: w.ID, EventID: "e2", EventType: alert.EventCleared, AlertID: 7, Payload: payload})
	s = b.Reopen(t, s, clk.Now)
	// Due now; once claimed, due for other claimers when the claim runs
	// out (testDeliveryClaims).
	if next, ok, err := s.NextDeliveryAt(ctx); err != nil || !ok || !next.Equal(clk.Now()) {
		t.Errorf("next = %v %v %v", next, ok, err)
	}
	claim := func() db.Claim { return db.Claim{By: "a", Now: clk.Now(), Until: clk.Now().Add(time.Minute)} }
	due, err := s.ClaimDeliveries(ctx, w.ID, claim(), 10)
	if err != nil || len(due) != 2 || due[0].ID != d1.ID || string(due[0].Payload) != string(payload) || due[0].AlertID != 7 {
		t.Fatalf("due = %+v, %v", due, err)
	}
	retry := clk.Now().Add(10 * time.Second)
	hook, err := s.RecordAttempt(ctx, db.Attempt{DeliveryID: d1.ID, By: "a", At: clk.Now(), Status: 500, Err: "the receiver answered 500", NextAt: retry})
	if err != nil || !hook.FailingSince.Equal(clk.Now()) {
		t.Fatalf("failure: %+v, %v", hook, err)
	}
	// A claimer's own claims do not stand in its way.
	if due, _ := s.ClaimDeliveries(ctx, w.ID, claim(), 10); len(due) != 1 || due[0].ID != d2.ID {
		t.Errorf("due after a failure = %+v; want only the second", due)
	}
	clk.Advance(10 * time.Second)
	due, _ = s.ClaimDeliveries(ctx, w.ID, claim(), 10)
	if len(due) != 2 || due[0].Attempts != 1 || due[0].LastStatus != 500 || !due[0].FirstFailureAt.Equal(T0) {
		t.Fatalf("due at the retry = %+v", due)
	}
	if hook, err = s.RecordAttempt(ctx, db.Attempt{DeliveryID: d1.ID, By: "a", At: clk.Now(), Status: 204}); err != nil || !hook.FailingSince.IsZero() {
		t.Errorf("success: %+v, %v; want the streak ended", hook, err)
	}
	if _, err = s.RecordAttempt(ctx, db.Attempt{DeliveryID: d2.ID, By: "a", At: clk.Now(), Err: "timeout"}); err != nil {
		t.Fatal(err)
	}
	log, err := s.WebhookDeliveries(ctx, w.ID, 10)
	if err != nil || len(log) != 2 || log[0].State != db.DeliveryFailed || log[0].LastError != "timeout" || log[1].State != db.DeliveryDelivered || log[1].Attempts != 2 {
		t.Errorf("log = %+v, %v", log, err)
	}
	d3, _ := s.QueueDelivery(ctx, db.Delivery{WebhookID: w.ID, EventID: "e3", EventType: alert.EventRaised, AlertID: 8, Payload: payload})
	if _, err := s.SetWebhookEnabled(ctx, w.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.NextDeliveryAt(ctx); ok {
		t.Error("a disabled hook has a delivery due")
	}
	if log, _ := s.WebhookDeliveries(ctx, w.ID, 1); len(log) != 1 || log[0].ID != d3.ID || log[0].State != db.DeliveryFailed {
		t.Errorf("pending delivery of a disabled hook: %+v; want failed", log)
	}
	clk.Advance(time.Hour)
	if n, err := s.PruneDeliveries(ctx, clk.Now(), 100); err != nil || n != 3 {
		t.Errorf("prune = %d, %v; want 3", n, err)
	}
}

// testDeliveryClaims: instances sharing a store send each delivery once.
// While one claimer holds a claim on a hook's pending deliveries another
// gets none of that hook's (the hook's order is kept), and gets them once
// the claim was released or ran out (its instance died); the attempt of a
// claimer whose claim was taken over is refused, and a recorded attempt
// ends the claim.
func testDeliveryClaims(t *testing.T, b Backend) {
	ctx := context.Background()
	s, clk := open(t, b)
	w, _ := s.CreateWebhook(ctx, newHook("https://example.com/hook"))
	other, _ := s.CreateWebhook(ctx, newHook("https://example.com/other"))
	var queued []int64
	for i := range 3 {
		d, err := s.QueueDelivery(ctx, db.Delivery{WebhookID: w.ID, EventID: fmt.Sprint(i), EventType: alert.EventRaised, Payload: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, d.ID)
	}
	od, _ := s.QueueDelivery(ctx, db.Delivery{WebhookID: other.ID, EventID: "o", EventType: alert.EventRaised, Payload: []byte("{}")})
	claim := func(by string, hook int64, limit int) []int64 {
		t.Helper()
		due, err := s.ClaimDeliveries(ctx, hook, db.Claim{By: by, Now: clk.Now(), Until: clk.Now().Add(time.Minute)}, limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, d := range due {
			ids = append(ids, d.ID)
		}
		return ids
	}
	if got := claim("a", w.ID, 2); !slices.Equal(got, queued[:2]) {
		t.Fatalf("a claimed %v, want %v", got, queued[:2])
	}
	if got := claim("b", w.ID, 10); len(got) != 0 {
		t.Errorf("b claimed %v while a holds a claim on the hook, want none", got)
	}
	if got := claim("b", other.ID, 10); !slices.Equal(got, []int64{od.ID}) {
		t.Errorf("b claimed %v of another hook, want %v", got, []int64{od.ID})
	}
	// a sends the first, then stops: its claims go, b takes the rest.
	if _, err := s.RecordAttempt(ctx, db.Attempt{DeliveryID: queued[0], By: "a", At: clk.Now(), Status: 204}); err != nil {
		t.Fatal(err)
	}
	if got := claim("b", w.ID, 10); len(got) != 0 {
		t.Errorf("b claimed %v while a holds a claim on the hook, want none", got)
	}
	if err := s.ReleaseDeliveries(ctx, w.ID, "a"); err != nil {
		t.Fatal(err)
	}
	if got := claim("b", w.ID, 10); !slices.Equal(got, queued[1:]) {
		t.Fatalf("b claimed %v after a released, want %v", got, queued[1:])
	}
	// b dies holding them; once its claim ran out, a takes them over, and
	// b's late attempt is refused.
	clk.Advance(time.Minute - time.Millisecond)
	if got := claim("a", w.ID, 10); len(got) != 0 {
		t.Errorf("a claimed %v before b's claim ran out, want none", got)
	}
	clk.Advance(time.Millisecond)
	if next, ok, err := s.NextDeliveryAt(ctx); err != nil || !ok || !next.Equal(clk.Now()) {
		t.Errorf("next delivery at %v %v %v, want when b's claim ran out, %v", next, ok, err, clk.Now())
	}
	if got := claim("a", w.ID, 10); !slices.Equal(got, queued[1:]) {
		t.Fatalf("a claimed %v after b's claim ran out, want %v", got, queued[1:])
	}
	if _, err := s.RecordAttempt(ctx, db.Attempt{DeliveryID: queued[1], By: "b", At: clk.Now(), Status: 204}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("b recorded an attempt on a delivery a claimed: %v, want storage.ErrConflict", err)
	}
	if log, _ := s.WebhookDeliveries(ctx, w.ID, 10); len(log) != 3 || log[1].State != db.DeliveryPending || log[1].Attempts != 0 {
		t.Errorf("log after b's refused attempt = %+v; want the delivery pending, never attempted", log)
	}
}

// testOutboxBound: a hook's outbox holds db.MaxPendingDeliveries; beyond,
// deliveries are recorded as dropped.
func testOutboxBound(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	w, _ := s.CreateWebhook(ctx, newHook("https://example.com/hook"))
	for i := range db.MaxPendingDeliveries {
		if _, err := s.QueueDelivery(ctx, db.Delivery{WebhookID: w.ID, EventID: fmt.Sprint(i), EventType: alert.EventRaised, Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.QueueDelivery(ctx, db.Delivery{WebhookID: w.ID, EventID: "over", EventType: alert.EventRaised, Payload: []byte("{}")})
	if err != nil || d.State != db.DeliveryDropped || !strings.Contains(d.LastError, "outbox") {
		t.Errorf("delivery beyond the bound: %+v, %v; want dropped", d, err)
	}
}

// testSaveAlerts: a batch inserts new alerts (also one that rose and
// cleared within the batch), updates others, and reports a conflict per
// item without losing the rest.
func testSaveAlerts(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := open(t, b)
	existing, _ := s.InsertAlert(ctx, openAlert(1, "a", alert.Major, T0))
	gone, _ := s.InsertAlert(ctx, openAlert(3, "c", alert.Minor, T0))
	_ = gone.Clear("user:x", "", T0)
	if err := s.UpdateAlert(ctx, gone); err != nil {
		t.Fatal(err)
	}
	flapped := openAlert(2, "b", alert.Info, T0)
	flapped.State, flapped.ClearedAt, flapped.ClearReason = alert.StateCleared, T0.Add(time.Second), alert.ReasonCondition
	repeat := existing
	repeat.Count, repeat.LastAt = 2, T0.Add(time.Minute)
	stale := gone
	stale.State = alert.StateAcknowledged
	batch := []alert.Alert{openAlert(1, "b", alert.Major, T0), flapped, repeat, openAlert(1, "a", alert.Major, T0), stale}
	saved, errs, err := s.SaveAlerts(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, nil, nil, storage.ErrConflict, storage.ErrConflict} {
		if (want == nil) != (errs[i] == nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Errorf("item %d: %v; want %v", i, errs[i], want)
		}
	}
	if saved[0].ID == 0 || saved[1].ID == 0 || saved[2].ID != existing.ID {
		t.Errorf("saved ids = %d %d %d", saved[0].ID, saved[1].ID, saved[2].ID)
	}
	if got, _ := s.Alert(ctx, saved[1].ID); got.State != alert.StateCleared || got.ClearReason != alert.ReasonCondition {
		t.Errorf("flapped = %+v; want stored cleared", got)
	}
	if got, _ := s.Alert(ctx, existing.ID); got.Count != 2 {
		t.Errorf("repeat = %+v; want count 2", got)
	}
	if got, _ := s.Alert(ctx, gone.ID); got.State != alert.StateCleared {
		t.Errorf("a cleared alert was reopened: %+v", got)
	}
}
