package handlers_test

import (
	"bufio"

	"context"
	"encoding/json"
	"fmt"
	"github.com/prometheus/common/expfmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldhub/alert"
	"fieldhub/alerting"
	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/live"
	"fieldhub/metrics"
	"fieldhub/registry"
	"fieldhub/telemetry"
	"fieldhub/views"
)

// alertHub is the real router with ingest, the live hub and alerting wired
// as serve wires them.
type alertHub struct {
	t   *testing.T
	r   *testkit.Router
	db  *db.DB
	svc *alerting.Service
}

// fanout hands committed batches to the live hub and to alerting, as
// package app does.
type fanout struct {
	hub    *live.Hub
	alerts *alerting.Service
}

func (f fanout) Committed(b []telemetry.Record) { f.hub.Committed(b); f.alerts.Committed(b) }

func newAlertHub(t *testing.T, configure ...func(*alerting.Config)) *alertHub {
	t.Helper()
	d := dbtest.MustOpen(t)
	tel := dbtest.Telemetry(t, d)
	hub := live.New(live.Options{})
	t.Cleanup(hub.Close)
	svc := testkit.Alerting(t, d, hub, tel, configure...)
	p := ingest.New(tel, fanout{hub, svc}, ingest.Options{})
	t.Cleanup(func() { p.Close(context.Background()) })
	r := testkit.NewRouter(t, func(c *handlers.Config) {
		c.Store, c.Ingest, c.Telemetry, c.Live, c.Alerts = d, p, tel, hub, svc
		c.Devices = registry.New(registry.Config{Store: d, Audit: d, Live: hub, Watcher: svc})
		c.Metrics = metrics.Handler(metrics.Sources{Ingest: p, Live: hub, Alerts: svc, Fleet: d})
	})
	return &alertHub{t: t, r: r, db: d, svc: svc}
}

// call sends a JSON request with the role's token and decodes the answer
// into out (when not nil); it returns the status and the raw body.
func (h *alertHub) call(role, method, path, body string, out any) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.r.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.r.Tokens[role])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// device creates a device with tags through the API and returns its key.
func (h *alertHub) device(id, tags string) string {
	h.t.Helper()
	if st, body := h.call(db.RoleAdmin, "POST", "/api/v1/devices", `{"id":"`+id+`","tags":`+tags+`}`, nil); st != http.StatusCreated {
		h.t.Fatalf("create device: %d %s", st, body)
	}
	d, err := h.db.Device(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return d.PrimaryKey
}

// send posts a device-to-cloud message over the HTTPS device API.
func (h *alertHub) send(id, key, body string) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.r.URL+"/devices/"+id+"/messages/events?api-version=2021-04-12", strings.NewReader(body))
	req.Header.Set("Authorization", token(h.t, id, key, time.Now().Add(time.Hour)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		h.t.Fatalf("send %s: %d", body, resp.StatusCode)
	}
}

type alertList struct {
	Alerts []struct {
		alert.Alert
		RuleName string `json:"ruleName"`
	} `json:"alerts"`
	Open map[alert.Severity]int `json:"open"`
}

func (h *alertHub) alerts(query string) alertList {
	h.t.Helper()
	var l alertList
	if st, body := h.call(db.RoleViewer, "GET", "/api/v1/alerts"+query, "", &l); st != http.StatusOK {
		h.t.Fatalf("list alerts: %d %s", st, body)
	}
	return l
}

// receiver is a webhook receiver that verifies every delivery.
type receiver struct {
	mu     sync.Mutex
	events []alert.Event
	errs   []error
	srv    *httptest.Server
}

func newReceiver(t *testing.T, secret string) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := alert.Verify([]byte(secret), body, r.Header.Get(alert.SignatureHeader), time.Now(), time.Minute)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err == nil && r.Header.Get(alert.TimestampHeader) != alert.FormatTimestamp(ev.SentAt) {
			err = fmt.Errorf("timestamp header %q, sentAt %s", r.Header.Get(alert.TimestampHeader), ev.SentAt)
		}
		if err != nil {
			rc.errs = append(rc.errs, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc.events = append(rc.events, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() ([]alert.Event, []error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]alert.Event(nil), rc.events...), append([]error(nil), rc.errs...)
}

// sseEvents reads the named events of a stream into a channel.
func sseEvents(t *testing.T, url, token, want string) <-chan string {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	out := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		typ := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && typ == want:
				select {
				case out <- strings.TrimPrefix(line, "data: "):
				default:
				}
			}
		}
	}()
	return out
}

func nextEvent(t *testing.T, ch <-chan string, what string) live.AlertEvent {
	t.Helper()
	select {
	case data := <-ch:
		var ev live.AlertEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("%s: %v in %s", what, err, data)
		}
		return ev
	case <-time.After(testkit.Wait):
		t.Fatalf("gave up waiting for %s", what)
	}
	return live.AlertEvent{}
}

// TestAlertEndToEnd is the scenario: a device over HTTPS crosses a
// threshold → the alert is active in the API and on the fleet and device
// streams → a webhook receiver gets a correctly signed POST → an operator
// acknowledges it (audited) → it clears when the value returns.
func TestAlertEndToEnd(t *testing.T) {
	h := newAlertHub(t)
	const secret = "a-secret-of-16-bytes-or-more"
	rc := newReceiver(t, secret)
	var hook struct{ ID int64 }
	if st, body := h.call(db.RoleAdmin, "POST", "/api/v1/webhooks",
		`{"url":"`+rc.srv.URL+`/hook","secret":"`+secret+`","events":["alert.raised","alert.acknowledged","alert.cleared"]}`, &hook); st != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", st, body)
	}
	key := h.device("freezer-1", `{"site":"berlin"}`)
	otherKey := h.device("freezer-2", `{"site":"paris"}`)
	var rule alert.Rule
	if st, body := h.call(db.RoleOperator, "POST", "/api/v1/alert-rules",
		`{"name":"Too warm","severity":"major","scope":{"tags":{"site":"berlin"}},"condition":{"kind":"threshold","metric":"temperature","op":">","value":30,"forSeconds":0}}`, &rule); st != http.StatusCreated {
		t.Fatalf("create rule: %d %s", st, body)
	}
	fleet := sseEvents(t, h.r.URL+"/api/v1/events", h.r.Tokens[db.RoleViewer], "alert")
	dev := sseEvents(t, h.r.URL+"/api/v1/devices/freezer-1/events", h.r.Tokens[db.RoleViewer], "alert")

	h.send("freezer-2", otherKey, `{"temperature":40}`) // out of scope
	h.send("freezer-1", key, `{"temperature":31.5}`)

	for _, ch := range []<-chan string{fleet, dev} {
		ev := nextEvent(t, ch, "the raise on the stream")
		if ev.Alert.State != alert.StateActive || ev.Alert.DeviceID != "freezer-1" || ev.RuleName != "Too warm" || ev.Open[alert.Major] != 1 {
			t.Errorf("raise event = %+v", ev)
		}
	}
	l := h.alerts("?state=active")
	if len(l.Alerts) != 1 || l.Alerts[0].DeviceID != "freezer-1" || l.Alerts[0].Value != 31.5 || l.Alerts[0].RuleID != rule.ID ||
		l.Alerts[0].Severity != alert.Major || l.Alerts[0].Count != 1 || l.Open[alert.Major] != 1 {
		t.Fatalf("active alerts = %+v", l)
	}
	id := l.Alerts[0].ID
	testkit.WaitFor(t, "the signed raise at the webhook receiver", func() bool { evs, _ := rc.received(); return len(evs) == 1 })

	if st, body := h.call(db.RoleViewer, "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", id), `{}`, nil); st != http.StatusForbidden {
		t.Errorf("viewer ack: %d %s; want 403", st, body)
	}
	var a struct{ alert.Alert }
	if st, body := h.call(db.RoleOperator, "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", id), `{"comment":"opening the door less"}`, &a); st != http.StatusOK ||
		a.State != alert.StateAcknowledged || a.AcknowledgedBy != "token:operator-token" || a.AckComment != "opening the door less" {
		t.Fatalf("ack: %d %s", st, body)
	}
	if st, _ := h.call(db.RoleOperator, "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", id), ``, nil); st != http.StatusConflict {
		t.Errorf("second ack: %d; want 409", st)
	}
	if ev := nextEvent(t, fleet, "the acknowledgement on the stream"); ev.Alert.State != alert.StateAcknowledged {
		t.Errorf("ack event = %+v", ev)
	}
	entries, _ := h.db.AuditEntries(context.Background(), db.AuditFilter{})
	if len(entries) == 0 || entries[0].Action != alerting.ActionAcknowledge || entries[0].Detail != "opening the door less" || !strings.Contains(entries[0].Target, "freezer-1") {
		t.Errorf("latest audit entry = %+v; want the acknowledgement", entries[0])
	}

	h.send("freezer-1", key, `{"temperature":33}`) // still warm: the same alert, no new one
	h.send("freezer-1", key, `{"temperature":20}`)
	if ev := nextEvent(t, fleet, "the clear on the stream"); ev.Alert.State != alert.StateCleared || ev.Alert.ClearReason != alert.ReasonCondition || ev.Open[alert.Major] != 0 {
		t.Errorf("clear event = %+v", ev)
	}
	all := h.alerts("")
	if len(all.Alerts) != 1 || all.Alerts[0].State != alert.StateCleared || all.Alerts[0].Value != 33.0 || all.Alerts[0].AckComment != "opening the door less" {
		t.Errorf("after the clear: %+v", all)
	}
	testkit.WaitFor(t, "three signed deliveries", func() bool { evs, _ := rc.received(); return len(evs) == 3 })
	evs, errs := rc.received()
	if len(errs) > 0 {
		t.Errorf("receiver refused deliveries: %v", errs)
	}
	for i, want := range []alert.EventType{alert.EventRaised, alert.EventAcknowledged, alert.EventCleared} {
		if want == alert.EventCleared && evs[i].Value != 20.0 {
			t.Errorf("cleared delivery's value = %v; want the reading that cleared, 20", evs[i].Value)
		}
		if evs[i].Type != want || evs[i].Alert.ID != id || evs[i].Rule.Name != "Too warm" || evs[i].Device.ID != "freezer-1" {
			t.Errorf("delivery %d = %+v; want %s of alert %d", i, evs[i], want, id)
		}
	}
	var shown struct {
		Deliveries []struct {
			State  string `json:"state"`
			Status int    `json:"status"`
		} `json:"deliveries"`
		Secret string `json:"secret"`
	}
	testkit.WaitFor(t, "three deliveries logged as delivered", func() bool {
		st, body := h.call(db.RoleAdmin, "GET", fmt.Sprintf("/api/v1/webhooks/%d", hook.ID), "", &shown)
		if st != http.StatusOK || shown.Secret != "" || strings.Contains(body, secret) {
			t.Fatalf("webhook shown: %d %s (never its secret)", st, body)
		}
		for _, d := range shown.Deliveries {
			if d.State != db.DeliveryDelivered || d.Status != 204 {
				return false
			}
		}
		return len(shown.Deliveries) == 3
	})
}

// TestAlertRulesAPI: roles, validation that names the field, edit as a
// merge patch, delete, preview, and the bounds of rules.
func TestAlertRulesAPI(t *testing.T) {
	h := newAlertHub(t)
	warm := `{"name":"Too warm","severity":"major","scope":{"fleet":true},"condition":{"kind":"threshold","metric":"temperature","op":">","value":30}}`
	if st, _ := h.call(db.RoleViewer, "POST", "/api/v1/alert-rules", warm, nil); st != http.StatusForbidden {
		t.Errorf("viewer creates a rule: %d; want 403", st)
	}
	for _, tc := range []struct {
		body   string
		status int
		says   string
	}{
		{`{"name":`, http.StatusBadRequest, "not valid JSON"},
		{``, http.StatusBadRequest, "empty"},
		{`{"name":"x","severity":"fatal","scope":{"fleet":true},"condition":{"kind":"silence","seconds":60}}`, http.StatusUnprocessableEntity, "severity"},
		{`{"name":"` + strings.Repeat("n", 200) + `","severity":"info","scope":{"fleet":true},"condition":{"kind":"silence","seconds":60}}`, http.StatusUnprocessableEntity, "name: is 200 characters"},
		{`{"name":"x","severity":"info","scope":{"fleet":true},"condition":{"kind":"silence","seconds":60,"metric":"t"}}`, http.StatusUnprocessableEntity, "condition.metric"},
		{`{"name":"x","severity":"info","scope":{"fleet":true},"condition":{"kind":"threshold","metric":"` + strings.Repeat("m", 300) + `","op":">","value":1}}`, http.StatusUnprocessableEntity, "condition.metric"},
		{`{"name":"` + strings.Repeat("n", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, "larger than"},
	} {
		st, body := h.call(db.RoleOperator, "POST", "/api/v1/alert-rules", tc.body, nil)
		if st != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("POST %.40q: %d %s; want %d saying %q", tc.body, st, body, tc.status, tc.says)
		}
	}
	var r alert.Rule
	if st, body := h.call(db.RoleOperator, "POST", "/api/v1/alert-rules", warm, &r); st != http.StatusCreated || r.ID == 0 || !r.Enabled {
		t.Fatalf("create: %d %s", st, body)
	}
	path := fmt.Sprintf("/api/v1/alert-rules/%d", r.ID)
	var patched alert.Rule
	if st, body := h.call(db.RoleOperator, "PATCH", path, `{"name":"Hot","enabled":false}`, &patched); st != http.StatusOK ||
		patched.Name != "Hot" || patched.Enabled || patched.Condition.Metric != "temperature" || patched.Severity != alert.Major {
		t.Errorf("patch: %d %s", st, body)
	}
	if st, body := h.call(db.RoleOperator, "PATCH", path, `{"condition":{"kind":"silence"}}`, nil); st != http.StatusUnprocessableEntity || !strings.Contains(body, "condition.seconds") {
		t.Errorf("bad patch: %d %s", st, body)
	}
	if st, _ := h.call(db.RoleOperator, "PATCH", path, `{"id":77}`, nil); st != http.StatusUnprocessableEntity {
		t.Errorf("patching the id: %d; want 422", st)
	}
	var list struct{ Rules []alert.Rule }
	if h.call(db.RoleViewer, "GET", "/api/v1/alert-rules", "", &list); len(list.Rules) != 1 || list.Rules[0].Name != "Hot" {
		t.Errorf("list = %+v", list)
	}
	if st, _ := h.call(db.RoleViewer, "DELETE", path, "", nil); st != http.StatusForbidden {
		t.Errorf("viewer deletes: %d", st)
	}
	if st, _ := h.call(db.RoleOperator, "DELETE", path, "", nil); st != http.StatusNoContent {
		t.Errorf("delete: %d", st)
	}
	if st, _ := h.call(db.RoleViewer, "GET", path, "", nil); st != http.StatusNotFound {
		t.Errorf("deleted rule: %d; want 404", st)
	}
	if st, _ := h.call(db.RoleViewer, "GET", "/api/v1/alert-rules/x", "", nil); st != http.StatusNotFound {
		t.Errorf("rule x: %d; want 404", st)
	}
	for _, q := range []string{"?state=open-ish", "?severity=fatal", "?rule=-1", "?limit=100000", "?device=" + strings.Repeat("d", 200)} {
		if st, _ := h.call(db.RoleViewer, "GET", "/api/v1/alerts"+q, "", nil); st != http.StatusBadRequest {
			t.Errorf("alerts%s: %d; want 400", q, st)
		}
	}
}

// TestAlertRulePreview: "would be active now on N devices" from the last
// values, only in scope.
func TestAlertRulePreview(t *testing.T) {
	h := newAlertHub(t)
	for i, v := range []float64{25, 31, 35} {
		id := fmt.Sprint("p-", i)
		key := h.device(id, `{"site":"berlin"}`)
		h.send(id, key, fmt.Sprintf(`{"temperature":%g}`, v))
	}
	key := h.device("elsewhere", `{"site":"paris"}`)
	h.send("elsewhere", key, `{"temperature":50}`)
	testkit.WaitFor(t, "the readings", func() bool {
		var out struct{ ActiveDevices int }
		h.call(db.RoleOperator, "POST", "/api/v1/alert-rules/preview", `{"name":"p","severity":"info","scope":{"fleet":true},"condition":{"kind":"threshold","metric":"temperature","op":">","value":0}}`, &out)
		return out.ActiveDevices == 4
	})
	var out struct{ ActiveDevices int }
	if st, body := h.call(db.RoleOperator, "POST", "/api/v1/alert-rules/preview",
		`{"name":"p","severity":"info","scope":{"tags":{"site":"berlin"}},"condition":{"kind":"threshold","metric":"temperature","op":">","value":30}}`, &out); st != http.StatusOK || out.ActiveDevices != 2 {
		t.Errorf("preview: %d %s; want 2 devices", st, body)
	}
	if rules, _ := h.db.AlertRules(context.Background()); len(rules) != 0 {
		t.Errorf("preview stored %d rules", len(rules))
	}
}

// TestAlertRulesBoundAttack: with db.MaxAlertRules rules, the API refuses
// the next one (a client trying 10,000 gets 422 from the 1,001st on).
func TestAlertRulesBoundAttack(t *testing.T) {
	h := newAlertHub(t)
	ctx := context.Background()
	for i := range db.MaxAlertRules {
		r := alert.Rule{Name: fmt.Sprint("r", i), Severity: alert.Info, Enabled: true, Scope: alert.Scope{Fleet: true}, Condition: alert.Condition{Kind: alert.Silence, Seconds: 60}}
		if _, err := h.db.CreateAlertRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		st, body := h.call(db.RoleOperator, "POST", "/api/v1/alert-rules", `{"name":"one more","severity":"info","scope":{"fleet":true},"condition":{"kind":"silence","seconds":60}}`, nil)
		if st != http.StatusUnprocessableEntity || !strings.Contains(body, "at most 1000") {
			t.Fatalf("rule beyond the bound: %d %s", st, body)
		}
	}
}

// TestAlertClearedByOperator: several alerts cleared at once from the
// list; a cleared alert cannot be acknowledged; a persisting problem does
// not raise again at once.
func TestAlertClearedByOperator(t *testing.T) {
	h := newAlertHub(t)
	var keys []string
	for i := range 3 {
		keys = append(keys, h.device(fmt.Sprint("d", i), `{}`))
	}
	if st, body := h.call(db.RoleAdmin, "POST", "/api/v1/alert-rules", `{"name":"high","severity":"critical","scope":{"fleet":true},"condition":{"kind":"threshold","metric":"p","op":">=","value":5}}`, nil); st != http.StatusCreated {
		t.Fatal(st, body)
	}
	for i, k := range keys {
		h.send(fmt.Sprint("d", i), k, `{"p":9}`)
	}
	testkit.WaitFor(t, "three alerts", func() bool { return len(h.alerts("?state=open").Alerts) == 3 })
	for _, a := range h.alerts("?state=open").Alerts {
		if st, body := h.call(db.RoleOperator, "POST", fmt.Sprintf("/api/v1/alerts/%d/clear", a.ID), `{"comment":"known"}`, nil); st != http.StatusOK {
			t.Fatalf("clear: %d %s", st, body)
		}
		if st, _ := h.call(db.RoleOperator, "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", a.ID), ``, nil); st != http.StatusConflict {
			t.Errorf("ack after clear: %d; want 409", st)
		}
	}
	h.send("d0", keys[0], `{"p":10}`) // still high: suppressed until it clears on its own
	h.send("d0", keys[0], `{"p":1}`)
	h.send("d0", keys[0], `{"p":7}`) // a new crossing raises again
	testkit.WaitFor(t, "a new alert after the condition cleared", func() bool { return len(h.alerts("?state=active").Alerts) == 1 })
	if l := h.alerts(""); len(l.Alerts) != 4 || l.Open[alert.Critical] != 1 {
		t.Errorf("alerts = %d, open %v; want 4 rows, 1 open", len(l.Alerts), l.Open)
	}
}

// TestMetricsScrape: /metrics answers any role (and nobody without a
// token), and Prometheus's own text parser reads it: ingest, alerts by
// severity, devices, SSE and Go's runtime.
func TestMetricsScrape(t *testing.T) {
	h := newAlertHub(t)
	key := h.device("m-1", `{}`)
	if st, body := h.call(db.RoleOperator, "POST", "/api/v1/alert-rules", `{"name":"hot","severity":"critical","scope":{"fleet":true},"condition":{"kind":"threshold","metric":"t","op":">","value":1}}`, nil); st != http.StatusCreated {
		t.Fatal(st, body)
	}
	h.send("m-1", key, `{"t":5}`)
	h.send("m-1", key, `{"t":6}`)
	testkit.WaitFor(t, "the alert", func() bool { return len(h.alerts("?state=open").Alerts) == 1 })

	req, _ := http.NewRequest("GET", h.r.URL+"/metrics", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %v %v", resp.StatusCode, err)
	}
	req.Header.Set("Authorization", "Bearer "+h.r.Tokens[db.RoleViewer])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %v %v", resp, err)
	}
	defer resp.Body.Close()
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := families[name]
		if f == nil {
			t.Fatalf("no metric %s", name)
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	if v := value("fieldhub_messages_committed_total", nil); v != 2 {
		t.Errorf("committed = %v; want 2", v)
	}
	if v := value("fieldhub_alerts_open", map[string]string{"severity": "critical"}); v != 1 {
		t.Errorf("open critical alerts = %v; want 1", v)
	}
	if v := value("fieldhub_devices", map[string]string{"status": "online"}); v != 1 {
		t.Errorf("online devices = %v; want 1", v)
	}
	for _, name := range []string{"fieldhub_commit_batches_total", "fieldhub_ingest_queue_messages", "fieldhub_sse_subscribers",
		"fieldhub_webhook_deliveries_total", "fieldhub_alert_evaluation_dropped_total", "go_goroutines", "process_resident_memory_bytes"} {
		if families[name] == nil {
			t.Errorf("no metric %s", name)
		}
	}
}

// TestDevicePageChartMarks: the device page hands its charts the threshold
// of each enabled threshold rule that applies to the device, the alerts
// raised on a metric and each applying rule's metric; a device out of the
// rule's scope gets none.
func TestDevicePageChartMarks(t *testing.T) {
	h := newAlertHub(t)
	key := h.device("freezer-1", `{"site":"berlin"}`)
	h.device("freezer-2", `{"site":"paris"}`)
	var rule alert.Rule
	if st, body := h.call(db.RoleOperator, "POST", "/api/v1/alert-rules",
		`{"name":"Too warm","severity":"major","scope":{"tags":{"site":"berlin"}},"condition":{"kind":"threshold","metric":"temperature","op":">","value":30,"forSeconds":0}}`, &rule); st != http.StatusCreated {
		t.Fatalf("create rule: %d %s", st, body)
	}
	h.send("freezer-1", key, `{"temperature":31.5}`)
	testkit.WaitFor(t, "the alert", func() bool { return len(h.alerts("?state=active").Alerts) == 1 })
	raised := h.alerts("?state=active").Alerts[0]

	u, err := h.db.CreateUser(context.Background(), "vic", "x", db.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	cookie := auth.RandomToken(32)
	if err := h.db.CreateSession(context.Background(), cookie, u.ID, auth.RandomToken(16), time.Hour); err != nil {
		t.Fatal(err)
	}
	marksOf := func(device string) views.ChartMarks {
		req, _ := http.NewRequest("GET", h.r.URL+"/devices/"+device, nil)
		req.AddCookie(&http.Cookie{Name: "fieldhub_session", Value: cookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		page, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`data-chart-marks="([^"]*)"`).FindSubmatch(page)
		if resp.StatusCode != http.StatusOK || m == nil {
			t.Fatalf("device page of %s: %d, chart marks found: %v", device, resp.StatusCode, m != nil)
		}
		var marks views.ChartMarks
		if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &marks); err != nil {
			t.Fatal(err)
		}
		return marks
	}
	got := marksOf("freezer-1")
	wantTh := []views.ChartThreshold{{Metric: "temperature", Op: ">", Value: 30, Severity: "major", Rule: "Too warm"}}
	wantAl := []views.ChartAlert{{Metric: "temperature", T: raised.FirstAt.UnixMilli(), Severity: "major", Rule: "Too warm"}}
	if !reflect.DeepEqual(got.Thresholds, wantTh) || !reflect.DeepEqual(got.Alerts, wantAl) || got.RuleMetrics[rule.ID] != "temperature" {
		t.Errorf("freezer-1's chart marks = %+v\nwant thresholds %+v, alerts %+v, rule %d on temperature", got, wantTh, wantAl, rule.ID)
	}
	if other := marksOf("freezer-2"); len(other.Thresholds) != 0 || len(other.Alerts) != 0 || len(other.RuleMetrics) != 0 {
		t.Errorf("freezer-2, out of the rule's scope, has chart marks %+v", other)
	}
}
