package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/ingest"
	"fieldhub/internal/testkit"
	"fieldhub/storage"
	"fieldhub/telemetry"
)

// ingestHub is the real router, with a real ingest pipeline, over a real database.
type ingestHub struct {
	t      *testing.T
	db     *db.DB
	tel    *telemetry.Store
	srv    *httptest.Server
	server *handlers.Server
	viewer string // bearer token
}

func newIngestHub(t *testing.T, configure func(*handlers.Config)) *ingestHub {
	t.Helper()
	d := dbtest.MustOpen(t)
	tel := dbtest.Telemetry(t, d)
	p := ingest.New(tel, nil, ingest.Options{})
	t.Cleanup(func() { p.Close(context.Background()) })
	r := testkit.NewRouter(t, func(c *handlers.Config) {
		c.Store, c.Ingest, c.Telemetry = d, p, tel
		if configure != nil {
			configure(c)
		}
	})
	return &ingestHub{t: t, db: d, tel: tel, srv: r.HTTP, server: r.Server, viewer: r.Tokens[db.RoleViewer]}
}

func (h *ingestHub) addDevice(id string) db.Device {
	h.t.Helper()
	dev, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: id})
	if err != nil {
		h.t.Fatal(err)
	}
	return dev
}

// token signs a SAS token the way the Azure SDK does.
func token(t testing.TB, deviceID, key string, expiry time.Time) string {
	t.Helper()
	tok, err := auth.SignSAS("hub.test:8443/devices/"+deviceID, key, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) errorText() string {
	var e struct{ Error string }
	_ = json.Unmarshal(r.body, &e)
	return e.Error
}

func (h *ingestHub) post(path, authz string, body io.Reader, length int64, headers map[string]string) result {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.ContentLength = length
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return h.send(req)
}

func (h *ingestHub) get(path string) result {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.srv.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.viewer)
	return h.send(req)
}

func (h *ingestHub) send(req *http.Request) result {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

// event posts one message body, the way the SDK does.
func (h *ingestHub) event(deviceID, authz, body string, headers map[string]string) result {
	h.t.Helper()
	return h.post("/devices/"+deviceID+"/messages/events?api-version=2021-04-12", authz, strings.NewReader(body), int64(len(body)), headers)
}

func (h *ingestHub) messages(deviceID string) []telemetry.Message {
	h.t.Helper()
	msgs, err := h.tel.Messages(context.Background(), deviceID, telemetry.MessageFilter{Limit: 100})
	if err != nil {
		h.t.Fatal(err)
	}
	return msgs
}

func TestDeviceSASAuthentication(t *testing.T) {
	h := newIngestHub(t, nil)
	dev1, dev2 := h.addDevice("dev1"), h.addDevice("dev2")
	off := h.addDevice("off")
	if _, err := h.db.UpdateDevice(context.Background(), "off", db.DeviceUpdate{Enabled: new(bool)}); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	tests := []struct {
		name       string
		device     string
		authz      string
		wantStatus int
		wantError  string // substring of the error message
		wantMethod string // auth method recorded on success
	}{
		{"primary key", "dev1", token(t, "dev1", dev1.PrimaryKey, hour), 204, "", "sas-primary"},
		{"secondary key", "dev1", token(t, "dev1", dev1.SecondaryKey, hour), 204, "", "sas-secondary"},
		{"wrong key", "dev1", token(t, "dev1", dev2.PrimaryKey, hour), 401, "signature does not match", ""},
		{"expired", "dev1", token(t, "dev1", dev1.PrimaryKey, time.Now().Add(-time.Minute)), 401, "expired", ""},
		{"another device's token", "dev1", token(t, "dev2", dev2.PrimaryKey, hour), 401, "not for this device", ""},
		{"disabled device", "off", token(t, "off", off.PrimaryKey, hour), 403, "disabled", ""},
		{"unknown device", "ghost", token(t, "ghost", dev1.PrimaryKey, hour), 404, "not registered", ""},
		{"device id is case-sensitive", "DEV1", token(t, "DEV1", dev1.PrimaryKey, hour), 404, "not registered", ""},
		{"missing header", "dev1", "", 401, "missing Authorization", ""},
		{"malformed token", "dev1", "SharedAccessSignature sr=x", 401, "malformed", ""},
		{"bearer instead of SAS", "dev1", "Bearer abc", 401, "malformed", ""},
		{"signature not base64", "dev1", strings.Replace(token(t, "dev1", dev1.PrimaryKey, hour), "sig=", "sig=%25", 1), 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.messages("dev1"))
			r := h.event(tt.device, tt.authz, `{"t": 1}`, nil)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", r.status, r.body, tt.wantStatus)
			}
			if tt.wantStatus >= 400 && !strings.Contains(r.errorText(), tt.wantError) {
				t.Errorf("error = %q, want it to mention %q", r.errorText(), tt.wantError)
			}
			msgs := h.messages("dev1")
			if tt.wantMethod == "" {
				if len(msgs) != before {
					t.Errorf("a refused request stored a message")
				}
				return
			}
			if len(msgs) != before+1 || msgs[0].AuthMethod != tt.wantMethod || msgs[0].DeviceID != "dev1" {
				t.Errorf("stored %+v, want one more message from dev1 with auth method %s", msgs, tt.wantMethod)
			}
		})
	}
}

func TestDeviceEvents(t *testing.T) {
	h := newIngestHub(t, nil)
	dev := h.addDevice("dev1")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	ctx := context.Background()

	t.Run("size limit", func(t *testing.T) {
		max := `{"pad":"` + strings.Repeat("x", ingest.MaxMessageSize-10) + `"}`
		if r := h.event("dev1", authz, max, nil); r.status != 204 {
			t.Errorf("256 KB body: status %d (%s), want 204", r.status, r.body)
		}
		if r := h.event("dev1", authz, max+" ", nil); r.status != 413 || !strings.Contains(r.errorText(), "larger than") {
			t.Errorf("256 KB + 1 body: status %d (%s), want 413", r.status, r.body)
		}
		// Chunked, no Content-Length: the limit still holds.
		big := strings.NewReader(max + " ")
		if r := h.post("/devices/dev1/messages/events", authz, io.MultiReader(big), -1, nil); r.status != 413 {
			t.Errorf("chunked 256 KB + 1 body: status %d, want 413", r.status)
		}
	})

	t.Run("chunked body without content type", func(t *testing.T) {
		r := h.post("/devices/dev1/messages/events?api-version=2021-04-12", authz,
			io.MultiReader(strings.NewReader(`{"chunked":`), strings.NewReader(`42}`)), -1, nil)
		if r.status != 204 {
			t.Fatalf("status %d (%s), want 204", r.status, r.body)
		}
		if m := h.messages("dev1")[0]; string(m.Body) != `{"chunked":42}` || m.ContentType != "" {
			t.Errorf("stored body %q content type %q, want the joined chunks and no content type", m.Body, m.ContentType)
		}
	})

	t.Run("property headers", func(t *testing.T) {
		r := h.event("dev1", authz, `{"p": 1}`, map[string]string{
			"iothub-app-Color": "blue", "iothub-messageid": "m-1", "iothub-correlationid": "c-1",
			"iothub-contenttype": "application/json", "iothub-contentencoding": "utf-8",
		})
		if r.status != 204 {
			t.Fatalf("status %d (%s)", r.status, r.body)
		}
		m := h.messages("dev1")[0]
		if m.MessageID != "m-1" || m.CorrelationID != "c-1" || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" || m.Properties["color"] != "blue" {
			t.Errorf("stored %+v, want the system properties and color=blue", m)
		}
	})

	t.Run("batch", func(t *testing.T) {
		item := func(body string, props map[string]string) map[string]any {
			return map[string]any{"body": base64.StdEncoding.EncodeToString([]byte(body)), "properties": props}
		}
		batch, _ := json.Marshal([]any{
			item(`{"b": 1}`, map[string]string{"iothub-app-k": "v1", "iothub-messageid": "b-1"}),
			item(`{"b": 2}`, nil),
			map[string]any{"body": `{"b": 3}`, "base64Encoded": false},
		})
		r := h.post("/devices/dev1/messages/events", authz, bytes.NewReader(batch), int64(len(batch)),
			map[string]string{"Content-Type": ingest.BatchContentType + "; charset=utf-8"})
		if r.status != 204 {
			t.Fatalf("status %d (%s), want 204", r.status, r.body)
		}
		msgs := h.messages("dev1")[:3]
		if string(msgs[2].Body) != `{"b": 1}` || msgs[2].MessageID != "b-1" || msgs[2].Properties["k"] != "v1" ||
			string(msgs[1].Body) != `{"b": 2}` || string(msgs[0].Body) != `{"b": 3}` {
			t.Errorf("stored %+v, want the three batch messages in order with their properties", msgs)
		}
		for _, bad := range []string{`{"body":"x"}`, `[]`, `[{"body":"!!!"}]`, `[{"properties":{}}]`} {
			r := h.post("/devices/dev1/messages/events", authz, strings.NewReader(bad), int64(len(bad)),
				map[string]string{"Content-Type": ingest.BatchContentType})
			if r.status != 400 || r.errorText() == "" {
				t.Errorf("batch %s: status %d (%s), want 400 with a reason", bad, r.status, r.body)
			}
		}
	})

	readingsOf := func(metric string) int {
		n := 0
		err := h.tel.RawReadings(ctx, "dev1", metric, time.Now().Add(-48*time.Hour), time.Now().Add(48*time.Hour),
			func(time.Time, float64) error { n++; return nil })
		if errors.Is(err, storage.ErrNotFound) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	bodies := []struct {
		name     string
		body     string
		metric   string
		readings int
	}{
		{"non-JSON body is logged without readings", "plain text \x00\xff", "", 0},
		{"NaN, Infinity and huge numbers are skipped", `{"nan": NaN, "inf": Infinity, "huge": 1e400, "fine": 2.5}`, "fine", 1},
		{"deep nesting is logged without readings", strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40), "", 0},
		{"nested keys flatten with dots", `{"engine": {"temp": 90, "on": true}}`, "engine.on", 1},
		{"timestamp out of range falls back to enqueued time", `{"ts": "1990-01-01T00:00:00Z", "late": 1}`, "late", 1},
	}
	for _, tt := range bodies {
		t.Run(tt.name, func(t *testing.T) {
			if r := h.event("dev1", authz, tt.body, nil); r.status != 204 {
				t.Fatalf("status %d (%s), want 204", r.status, r.body)
			}
			if got := h.messages("dev1")[0].Body; string(got) != tt.body {
				t.Errorf("stored body %q, want %q", got, tt.body)
			}
			if tt.metric != "" {
				if n := readingsOf(tt.metric); n != tt.readings {
					t.Errorf("%d readings of %s, want %d", n, tt.metric, tt.readings)
				}
			}
		})
	}
	for _, skipped := range []string{"nan", "inf", "huge", "a"} {
		if n := readingsOf(skipped); n != 0 {
			t.Errorf("metric %q has %d readings, want none", skipped, n)
		}
	}
}

// refusingIngest is a submitter that always answers with err, or reports a
// full queue when busy is set.
type refusingIngest struct {
	err  error
	busy bool
}

func (r refusingIngest) Submit(context.Context, ...telemetry.Message) error { return r.err }
func (r refusingIngest) Busy() bool                                         { return r.busy }

func TestDeviceEventsOverloaded(t *testing.T) {
	tests := []struct {
		name       string
		ingest     refusingIngest
		wantStatus int
		wantRetry  string
		counted    ingest.Reason // in the metrics' refusals; -1: none
	}{
		{"queue full", refusingIngest{err: ingest.ErrOverloaded}, 503, "1", ingest.ReasonOverloaded},
		{"queue full before reading", refusingIngest{busy: true}, 503, "1", ingest.ReasonOverloaded},
		{"closed", refusingIngest{err: ingest.ErrClosed}, 503, "5", ingest.ReasonOverloaded},
		{"storage fault", refusingIngest{err: fmt.Errorf("store messages: %w: disk on fire", ingest.ErrStorage)}, 503, "10", ingest.ReasonStorageFault},
		{"internal", refusingIngest{err: errors.New("disk on fire")}, 500, "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refusals := &ingest.Refusals{}
			h := newIngestHub(t, func(c *handlers.Config) { c.Ingest, c.Refusals = tt.ingest, refusals })
			dev := h.addDevice("dev1")
			r := h.event("dev1", token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour)), `{}`, nil)
			if r.status != tt.wantStatus || r.header.Get("Retry-After") != tt.wantRetry {
				t.Errorf("status %d Retry-After %q, want %d %q", r.status, r.header.Get("Retry-After"), tt.wantStatus, tt.wantRetry)
			}
			if strings.Contains(string(r.body), "fire") {
				t.Errorf("internal error leaked to the device: %s", r.body)
			}
			for reason := range ingest.NumReasons {
				want := int64(0)
				if reason == tt.counted {
					want = 1
				}
				if n := refusals.Count(ingest.ProtocolHTTPS, reason); n != want {
					t.Errorf("refusals counted as %s: %d, want %d", ingest.Reasons[reason], n, want)
				}
			}
		})
	}
}

func TestDeviceRoutesOnSeparateListener(t *testing.T) {
	h := newIngestHub(t, func(c *handlers.Config) { c.SeparateDeviceListener = true })
	dev := h.addDevice("dev1")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	if r := h.event("dev1", authz, `{}`, nil); r.status == 204 {
		t.Errorf("dashboard router accepted telemetry with SeparateDeviceListener set")
	}
	devSrv := httptest.NewServer(h.server.DeviceRouter())
	defer devSrv.Close()
	req, _ := http.NewRequest("POST", devSrv.URL+"/devices/dev1/messages/events", strings.NewReader(`{"x":1}`))
	req.Header.Set("Authorization", authz)
	if r := h.send(req); r.status != 204 {
		t.Errorf("device router: status %d (%s), want 204", r.status, r.body)
	}
	req, _ = http.NewRequest("GET", devSrv.URL+"/api/v1/devices", nil)
	req.Header.Set("Authorization", "Bearer "+h.viewer)
	if r := h.send(req); r.status != 404 {
		t.Errorf("device router served the operator API: status %d, want 404", r.status)
	}
}

func TestDeviceDisabledThroughAPIIsRefusedAtOnce(t *testing.T) {
	h := newIngestHub(t, nil)
	dev := h.addDevice("dev1")
	admin := auth.NewAPIToken()
	if _, err := h.db.CreateAPIToken(context.Background(), "admin", db.RoleAdmin, admin); err != nil {
		t.Fatal(err)
	}
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	if r := h.event("dev1", authz, `{}`, nil); r.status != 204 {
		t.Fatalf("enabled: status %d", r.status)
	}
	req, _ := http.NewRequest("PATCH", h.srv.URL+"/api/v1/devices/dev1", strings.NewReader(`{"enabled": false}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	if r := h.send(req); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if r := h.event("dev1", authz, `{}`, nil); r.status != 403 {
		t.Errorf("right after disabling: status %d, want 403", r.status)
	}
}

func TestDeviceEventsEncodedDeviceID(t *testing.T) {
	// Device ids may hold characters that the SDKs percent-encode in the path.
	const id = "pump#7?x=1%"
	for _, separate := range []bool{false, true} {
		h := newIngestHub(t, func(c *handlers.Config) { c.SeparateDeviceListener = separate })
		base := h.srv.URL
		if separate {
			devSrv := httptest.NewServer(h.server.DeviceRouter())
			defer devSrv.Close()
			base = devSrv.URL
		}
		dev := h.addDevice(id)
		req, _ := http.NewRequest("POST", base+"/devices/pump%237%3Fx%3D1%25/messages/events", strings.NewReader(`{"v":1}`))
		req.Header.Set("Authorization", token(t, id, dev.PrimaryKey, time.Now().Add(time.Hour)))
		if r := h.send(req); r.status != 204 {
			t.Fatalf("separate listener %v: status %d (%s), want 204", separate, r.status, r.body)
		}
		if msgs := h.messages(id); len(msgs) != 1 {
			t.Errorf("separate listener %v: %d messages stored for %q, want 1", separate, len(msgs), id)
		}
	}
}

// TestDeviceEventShorterThanContentLength: a single message's body is read
// to its Content-Length; one that ends before it is a 400 saying so, and
// nothing is stored.
func TestDeviceEventShorterThanContentLength(t *testing.T) {
	h := newIngestHub(t, nil)
	dev := h.addDevice("dev1")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"temperature":21.5}`
	fmt.Fprintf(conn, "POST /devices/dev1/messages/events?api-version=2021-04-12 HTTP/1.1\r\nHost: hub.test\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		authz, len(body)+10, body)
	conn.(*net.TCPConn).CloseWrite() // the body ends 10 bytes early
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(got), "could not read the request body") {
		t.Errorf("status %d, body %s; want 400 saying the body could not be read", resp.StatusCode, got)
	}
	if msgs := h.messages("dev1"); len(msgs) != 0 {
		t.Errorf("stored %d messages, want none", len(msgs))
	}
}

// TestOverloadLoggedOnce: messages refused for a full queue are logged as
// one warning, not an error line each (a flood of them is when the hub is
// shortest of CPU).
func TestOverloadLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	h := newIngestHub(t, func(c *handlers.Config) {
		c.Ingest = refusingIngest{err: ingest.ErrOverloaded}
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	dev := h.addDevice("dev1")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))
	for range 3 {
		if r := h.event("dev1", authz, `{}`, nil); r.status != 503 {
			t.Fatalf("status %d, want 503", r.status)
		}
	}
	if n := strings.Count(logs.String(), "the ingest queue is full"); n != 1 {
		t.Errorf("%d full-queue warnings for 3 refused messages, want 1; log:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("refused messages logged as errors:\n%s", logs.String())
	}
}

// TestDeviceBatchesWaitForTheBodyBudget: batch uploads are read only within
// the bytes the hub reads at once. A batch that finds the budget taken
// waits and is then refused with 503 and Retry-After, storing nothing; once
// the budget is free again, batches are stored.
func TestDeviceBatchesWaitForTheBodyBudget(t *testing.T) {
	const budget = 1024
	h := newIngestHub(t, func(c *handlers.Config) {
		c.BatchBodyBudget, c.BatchBudgetWait = budget, 50*time.Millisecond
	})
	dev1, dev2 := h.addDevice("dev1"), h.addDevice("dev2")
	batchOf := func(n int) string {
		var items []string
		for i := range n {
			items = append(items, fmt.Sprintf(`{"body":%q,"base64Encoded":false}`, fmt.Sprintf(`{"n":%d}`, i)))
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	batchHeaders := map[string]string{"Content-Type": ingest.BatchContentType}

	// dev1 announces a body of the whole budget and holds it: Go's server
	// answers 100 Continue when the handler starts reading the body, which
	// it does only with the budget taken.
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /devices/dev1/messages/events HTTP/1.1\r\nHost: hub.test\r\nAuthorization: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		token(t, "dev1", dev1.PrimaryKey, time.Now().Add(time.Hour)), ingest.BatchContentType, budget)
	br := bufio.NewReader(conn)
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue once the batch is being read: %v %v", cont, err)
	}

	authz2 := token(t, "dev2", dev2.PrimaryKey, time.Now().Add(time.Hour))
	small := batchOf(3)
	r := h.post("/devices/dev2/messages/events", authz2, strings.NewReader(small), int64(len(small)), batchHeaders)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("batch while the budget is taken: status %d Retry-After %q (%s), want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	if msgs := h.messages("dev2"); len(msgs) != 0 {
		t.Errorf("the refused batch stored %d messages, want none", len(msgs))
	}

	// dev1's body, padded with JSON whitespace to what it announced.
	body := batchOf(5)
	body += strings.Repeat(" ", budget-len(body))
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(h.messages("dev1")) != 5 {
		t.Errorf("the batch that held the budget: status %d, %d messages stored; want 204 and 5", resp.StatusCode, len(h.messages("dev1")))
	}
	// The budget is free again, also after a batch that fails to decode.
	if r := h.post("/devices/dev2/messages/events", authz2, strings.NewReader(`[{"body":"!!!"}]`), 16, batchHeaders); r.status != http.StatusBadRequest {
		t.Errorf("a bad batch: status %d, want 400", r.status)
	}
	if r := h.post("/devices/dev2/messages/events", authz2, strings.NewReader(small), int64(len(small)), batchHeaders); r.status != http.StatusNoContent {
		t.Errorf("batch once the budget is free: status %d (%s), want 204", r.status, r.body)
	}
	if msgs := h.messages("dev2"); len(msgs) != 3 {
		t.Errorf("dev2 has %d messages, want the 3 of its second batch", len(msgs))
	}
}

// TestBatchBudgetHoldsUnderAThousandUploads: 1,000 batch uploads at once
// (20 from each of 50 devices) are read no more than the budget's worth at
// a time, and every one is stored once its turn comes. The bodies are
// watched as the device router reads them: a body counts from its first
// read to its end, which lie within the time its batch holds the budget.
// The first readers wait until the budget is full and every upload has
// reached the router, so that all of them contend for the budget while
// it is taken: a budget that let more in would show.
func TestBatchBudgetHoldsUnderAThousandUploads(t *testing.T) {
	const (
		devices, uploads = 50, 20
		perBatch         = 3
		bodySize         = 512
		fits             = 8 // batches the budget holds at once
	)
	h := newIngestHub(t, func(c *handlers.Config) {
		// Long enough that no upload is refused for waiting: the test is
		// about the bound, not the timeout.
		c.BatchBodyBudget, c.BatchBudgetWait = fits*bodySize, time.Minute
	})
	watch := &bodyWatch{fits: fits, uploads: devices * uploads, full: make(chan struct{})}
	srv := httptest.NewServer(watch.wrap(h.server.DeviceRouter()))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	defer client.CloseIdleConnections()

	var items []string
	for i := range perBatch {
		items = append(items, fmt.Sprintf(`{"body":%q,"base64Encoded":false}`, fmt.Sprintf(`{"n":%d}`, i)))
	}
	body := "[" + strings.Join(items, ",") + "]"
	body += strings.Repeat(" ", bodySize-len(body)) // every batch weighs the same

	statuses := make(chan int, devices*uploads)
	var wg sync.WaitGroup
	for d := range devices {
		id := fmt.Sprintf("dev%02d", d)
		dev := h.addDevice(id)
		authz := token(t, id, dev.PrimaryKey, time.Now().Add(time.Hour))
		for range uploads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest("POST", srv.URL+"/devices/"+id+"/messages/events", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Authorization", authz)
				req.Header.Set("Content-Type", ingest.BatchContentType)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
	}
	wg.Wait()
	close(statuses)
	for status := range statuses {
		if status != http.StatusNoContent {
			t.Errorf("an upload answered %d, want 204", status)
		}
	}
	if most := watch.most.Load(); most > fits {
		t.Errorf("%d batch bodies were read at once, the budget holds %d", most, fits)
	}
	for d := range devices {
		if msgs := h.messages(fmt.Sprintf("dev%02d", d)); len(msgs) != uploads*perBatch {
			t.Errorf("dev%02d has %d messages, want %d", d, len(msgs), uploads*perBatch)
		}
	}
}

// bodyWatch counts the request bodies being read at once (most: the
// highest count seen). The first reads wait until fits bodies are being
// read together and all uploads have arrived.
type bodyWatch struct {
	reading, most, arrived atomic.Int64
	fits, uploads          int64
	full                   chan struct{}
	fullOnce               sync.Once
}

func (w *bodyWatch) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		r.Body = &watchedBody{ReadCloser: r.Body, watch: w}
		w.arrived.Add(1)
		w.open()
		next.ServeHTTP(rw, r)
	})
}

func (w *bodyWatch) enter() {
	n := w.reading.Add(1)
	for m := w.most.Load(); n > m && !w.most.CompareAndSwap(m, n); m = w.most.Load() {
	}
	w.open()
	<-w.full
}

// open lets the readers go on once the budget is full and every upload
// has arrived.
func (w *bodyWatch) open() {
	if w.reading.Load() >= w.fits && w.arrived.Load() >= w.uploads {
		w.fullOnce.Do(func() { close(w.full) })
	}
}

// watchedBody is a request body that tells its watch when its reading
// begins and ends (at its end or error, or when closed before).
type watchedBody struct {
	io.ReadCloser
	watch          *bodyWatch
	started, ended bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		b.watch.enter()
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *watchedBody) Close() error {
	if b.started {
		b.end()
	}
	return b.ReadCloser.Close()
}

func (b *watchedBody) end() {
	if !b.ended {
		b.ended = true
		b.watch.reading.Add(-1)
	}
}
