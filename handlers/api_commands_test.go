package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
)

// commandsHub is the real router over a real database, with the command
// services configurable and bearer tokens for every role.
type commandsHub struct {
	t      *testing.T
	db     *db.DB
	srv    *httptest.Server
	tokens map[string]string
}

func newCommandsHub(t *testing.T, configure func(*handlers.Config)) *commandsHub {
	t.Helper()
	var configs []func(*handlers.Config)
	if configure != nil {
		configs = append(configs, configure)
	}
	r := testkit.NewRouter(t, configs...)
	r.Device(t, "dev1")
	return &commandsHub{t: t, db: r.DB, srv: r.HTTP, tokens: r.Tokens}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %s", r.status, r.body)
	}
	return m
}

// call makes a request as role ("" = anonymous) with extra headers as "Name: value".
func (h *commandsHub) call(role, method, path, body string, headers ...string) response {
	h.t.Helper()
	r, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if role != "" {
		r.Header.Set("Authorization", "Bearer "+h.tokens[role])
	}
	for _, hv := range headers {
		k, v, _ := strings.Cut(hv, ":")
		r.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func TestCommandsAPIRoles(t *testing.T) {
	h := newCommandsHub(t, nil)
	tests := []struct {
		name, method, path, body string
		want                     map[string]int
	}{
		{"list messages", "GET", "/api/v1/devices/dev1/cloud-messages", "", map[string]int{"": 401, "viewer": 200, "operator": 200, "admin": 200}},
		{"send message", "POST", "/api/v1/devices/dev1/cloud-messages", `{"body":"hi"}`, map[string]int{"": 401, "viewer": 403, "operator": 201, "admin": 201}},
		{"purge", "DELETE", "/api/v1/devices/dev1/cloud-messages", "", map[string]int{"": 401, "viewer": 403, "operator": 200, "admin": 200}},
		{"method", "POST", "/api/v1/devices/dev1/methods/reboot", `{}`, map[string]int{"": 401, "viewer": 403, "operator": 404, "admin": 404}},
		{"show twin", "GET", "/api/v1/devices/dev1/twin", "", map[string]int{"": 401, "viewer": 200, "operator": 200, "admin": 200}},
		{"patch twin", "PATCH", "/api/v1/devices/dev1/twin", `{"a":1}`, map[string]int{"": 401, "viewer": 403, "operator": 200, "admin": 200}},
		{"audit", "GET", "/api/v1/audit", "", map[string]int{"": 401, "viewer": 403, "operator": 403, "admin": 200}},
	}
	for _, tt := range tests {
		for _, role := range []string{"", "viewer", "operator", "admin"} {
			t.Run(tt.name+"/"+role, func(t *testing.T) {
				got := h.call(role, tt.method, tt.path, tt.body)
				if want := tt.want[role]; got.status != want {
					t.Errorf("status = %d, want %d (%s)", got.status, want, got.body)
				}
			})
		}
	}
}

func TestSendCloudMessageAPI(t *testing.T) {
	h := newCommandsHub(t, nil)
	r := h.call("operator", "POST", "/api/v1/devices/dev1/cloud-messages",
		`{"body":"hello","properties":{"kind":"greeting"},"ttlSeconds":120,"messageId":"m-1","correlationId":"c-1"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["id"] == nil || m["state"] != "queued" || m["messageId"] != "m-1" || m["correlationId"] != "c-1" || m["body"] != "hello" ||
		m["sender"] != "token:operator-token" {
		t.Errorf("created message = %v", m)
	}
	// A JSON value other than a string is sent as its JSON text.
	r = h.call("operator", "POST", "/api/v1/devices/dev1/cloud-messages", `{"body":{"on":true}}`)
	if r.status != http.StatusCreated || r.json(t)["body"] != `{"on":true}` {
		t.Errorf("JSON body: %d %s", r.status, r.body)
	}

	tests := []struct {
		name, path, body string
		status           int
		says             string
	}{
		{"ttl too short", "/api/v1/devices/dev1/cloud-messages", `{"body":"x","ttlSeconds":30}`, 422, "ttlSeconds"},
		{"ttl too long", "/api/v1/devices/dev1/cloud-messages", `{"body":"x","ttlSeconds":172801}`, 422, "ttlSeconds"},
		{"body too large", "/api/v1/devices/dev1/cloud-messages", `{"body":"` + strings.Repeat("x", 65537) + `"}`, 413, "65536"},
		{"bad property name", "/api/v1/devices/dev1/cloud-messages", `{"body":"x","properties":{"a b":"c"}}`, 422, "property name"},
		{"unknown field", "/api/v1/devices/dev1/cloud-messages", `{"text":"x"}`, 400, "unknown field"},
		{"unknown device", "/api/v1/devices/nope/cloud-messages", `{"body":"x"}`, 404, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.call("operator", "POST", tt.path, tt.body)
			if r.status != tt.status || !strings.Contains(fmt.Sprint(r.json(t)["error"]), tt.says) {
				t.Errorf("got %d %s, want %d saying %q", r.status, r.body, tt.status, tt.says)
			}
		})
	}

	t.Run("queue full at the 51st", func(t *testing.T) {
		for i := 2; i < commands.MaxCloudQueue; i++ {
			if r := h.call("operator", "POST", "/api/v1/devices/dev1/cloud-messages", `{"body":"x"}`); r.status != http.StatusCreated {
				t.Fatalf("message %d: %d %s", i+1, r.status, r.body)
			}
		}
		r := h.call("operator", "POST", "/api/v1/devices/dev1/cloud-messages", `{"body":"x"}`)
		if r.status != http.StatusForbidden || !strings.Contains(fmt.Sprint(r.json(t)["error"]), "full") {
			t.Errorf("51st: %d %s, want 403 saying the queue is full", r.status, r.body)
		}
	})

	t.Run("history and purge", func(t *testing.T) {
		r := h.call("viewer", "GET", "/api/v1/devices/dev1/cloud-messages?limit=1000", "")
		var hist struct {
			Messages []map[string]any `json:"messages"`
		}
		if err := json.Unmarshal(r.body, &hist); err != nil || len(hist.Messages) != commands.MaxCloudQueue {
			t.Fatalf("history: %d messages, %v; want %d", len(hist.Messages), err, commands.MaxCloudQueue)
		}
		for _, k := range []string{"id", "state", "enqueuedAt", "updatedAt", "expiresAt", "deliveryCount"} {
			if _, ok := hist.Messages[0][k]; !ok {
				t.Errorf("history item lacks %q: %v", k, hist.Messages[0])
			}
		}
		r = h.call("operator", "DELETE", "/api/v1/devices/dev1/cloud-messages", "")
		if r.status != http.StatusOK || r.json(t)["purged"] != float64(commands.MaxCloudQueue) {
			t.Errorf("purge: %d %s", r.status, r.body)
		}
		r = h.call("viewer", "GET", "/api/v1/devices/dev1/cloud-messages?limit=1", "")
		if err := json.Unmarshal(r.body, &hist); err != nil || len(hist.Messages) != 1 || hist.Messages[0]["state"] != "purged" {
			t.Errorf("after purge: %s", r.body)
		}
		entries, _ := h.db.AuditEntries(context.Background(), db.AuditFilter{Action: "c2d.purge"})
		if len(entries) != 1 || entries[0].Actor != "token:operator-token" {
			t.Errorf("purge audit = %+v", entries)
		}
	})
}

// methodTransport answers direct methods from a function.
type methodTransport func(deviceID, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error)

func (f methodTransport) InvokeMethod(_ context.Context, deviceID, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
	return f(deviceID, name, payload, timeout)
}

func TestInvokeMethodAPI(t *testing.T) {
	var gotTimeout atomic.Int64 // set by the server's goroutine
	h := newCommandsHub(t, func(cfg *handlers.Config) {
		inv := commands.NewInvoker(commands.InvokerConfig{Store: cfg.Store, Transport: methodTransport(
			func(dev, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
				gotTimeout.Store(int64(timeout))
				switch name {
				case "echo":
					return 200, payload, nil
				case "slow":
					return 0, nil, commands.ErrTimeout
				case "elsewhere": // connected to an instance the bus cannot reach
					return 0, nil, fmt.Errorf("instance a: %w", commands.ErrInstanceUnreachable)
				}
				return 0, nil, commands.ErrDeviceNotConnected
			})})
		cfg.Methods = inv
	})
	r := h.call("operator", "POST", "/api/v1/devices/dev1/methods/echo", `{"payload":{"x":[1,2]},"responseTimeoutInSeconds":7}`)
	if r.status != 200 || string(r.body) != `{"status":200,"payload":{"x":[1,2]}}`+"\n" || time.Duration(gotTimeout.Load()) != 7*time.Second {
		t.Errorf("echo: %d %s (timeout %v)", r.status, r.body, time.Duration(gotTimeout.Load()))
	}
	tests := []struct {
		name, path, body string
		status           int
		says             string
	}{
		{"not connected", "/api/v1/devices/dev1/methods/other", `{}`, 404, "device not connected"},
		{"timeout", "/api/v1/devices/dev1/methods/slow", `{"payload":null}`, 504, "timed out"},
		{"instance unreachable", "/api/v1/devices/dev1/methods/elsewhere", `{}`, 503, "another instance of the hub, which cannot be reached now"},
		{"response timeout range", "/api/v1/devices/dev1/methods/echo", `{"responseTimeoutInSeconds":4}`, 422, "5 to 300"},
		{"connect timeout range", "/api/v1/devices/dev1/methods/echo", `{"connectTimeoutInSeconds":301}`, 422, "0 to 300"},
		{"payload not JSON", "/api/v1/devices/dev1/methods/echo", `{"payload":x}`, 400, "invalid JSON"},
		{"payload too large", "/api/v1/devices/dev1/methods/echo", `{"payload":"` + strings.Repeat("x", 128*1024) + `"}`, 413, "131072"},
		{"unknown device", "/api/v1/devices/nope/methods/echo", `{}`, 404, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.call("operator", "POST", tt.path, tt.body)
			if r.status != tt.status || !strings.Contains(fmt.Sprint(r.json(t)["error"]), tt.says) {
				t.Errorf("got %d %s, want %d saying %q", r.status, r.body, tt.status, tt.says)
			}
		})
	}
	entries, _ := h.db.AuditEntries(context.Background(), db.AuditFilter{Action: "method.invoke"})
	if len(entries) != 4 {
		t.Errorf("%d method audit entries, want 4 (echo, not connected, timeout, unreachable)", len(entries))
	}
}

func TestTwinAPI(t *testing.T) {
	h := newCommandsHub(t, nil)
	r := h.call("viewer", "GET", "/api/v1/devices/dev1/twin", "")
	if r.status != 200 || r.header.Get("ETag") != `"1"` {
		t.Fatalf("get twin: %d etag %q %s", r.status, r.header.Get("ETag"), r.body)
	}
	r = h.call("operator", "PATCH", "/api/v1/devices/dev1/twin", `{"fan":{"speed":3,"mode":"auto"}}`, `If-Match: "1"`)
	if r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("patch: %d etag %q %s", r.status, r.header.Get("ETag"), r.body)
	}
	r = h.call("operator", "PATCH", "/api/v1/devices/dev1/twin", `{"fan":{"mode":null}}`, `If-Match: "2"`)
	var tw struct {
		ETag       string `json:"etag"`
		Properties struct {
			Desired  map[string]any `json:"desired"`
			Reported map[string]any `json:"reported"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(r.body, &tw); err != nil {
		t.Fatal(err)
	}
	desired, _ := json.Marshal(tw.Properties.Desired)
	if want := `{"$version":3,"fan":{"speed":3}}`; string(desired) != want || tw.ETag != `"3"` {
		t.Errorf("after merge: %s etag %s, want %s etag \"3\"", desired, tw.ETag, want)
	}
	tests := []struct {
		name, body, ifMatch string
		status              int
		says                string
	}{
		{"stale etag", `{"a":1}`, `"2"`, 412, "changed since"},
		{"bad etag", `{"a":1}`, `"abc"`, 400, "If-Match"},
		{"not an object", `[1]`, `*`, 400, "JSON object"},
		{"reserved name", `{"$a":1}`, ``, 400, "not allowed"},
		{"too large", `{"big":"` + strings.Repeat("x", 33*1024) + `"}`, ``, 413, "32768"},
		{"empty", ``, ``, 400, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.ifMatch != "" {
				hdr = append(hdr, "If-Match: "+tt.ifMatch)
			}
			r := h.call("operator", "PATCH", "/api/v1/devices/dev1/twin", tt.body, hdr...)
			if r.status != tt.status || !strings.Contains(fmt.Sprint(r.json(t)["error"]), tt.says) {
				t.Errorf("got %d %s, want %d saying %q", r.status, r.body, tt.status, tt.says)
			}
		})
	}
	entries, _ := h.db.AuditEntries(context.Background(), db.AuditFilter{Action: "twin.desired"})
	if len(entries) != 2 {
		t.Errorf("%d twin audit entries, want 2", len(entries))
	}
}

func TestAuditAPI(t *testing.T) {
	h := newCommandsHub(t, nil)
	h.call("operator", "POST", "/api/v1/devices/dev1/cloud-messages", `{"body":"x"}`)
	h.call("admin", "PATCH", "/api/v1/devices/dev1/twin", `{"a":1}`)
	r := h.call("admin", "GET", "/api/v1/audit?action=c2d.&target=dev1", "")
	var out struct {
		Entries []struct {
			Actor, Action, Target, Outcome string
		} `json:"entries"`
		NextBefore int64 `json:"nextBefore"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Entries) != 1 || out.Entries[0].Action != "c2d.send" || out.Entries[0].Actor != "token:operator-token" || out.NextBefore != 0 {
		t.Errorf("filtered audit = %s", r.body)
	}
	r = h.call("admin", "GET", "/api/v1/audit?actor=token:admin-token&limit=1", "")
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Entries) != 1 || out.Entries[0].Action != "twin.desired" || out.NextBefore == 0 {
		t.Errorf("actor filter with limit 1 = %s", r.body)
	}
	if r := h.call("admin", "GET", "/api/v1/audit?before=x", ""); r.status != 400 {
		t.Errorf("bad before: %d", r.status)
	}
}

func TestDevicePageCommandsSection(t *testing.T) {
	h := newTestHub(t)
	ctx := context.Background()
	if _, err := h.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.EnqueueCloudMessage(ctx, db.NewCloudMessage{DeviceID: "dev1", Body: []byte("<b>hi</b>"),
		TTL: commands.DefaultCloudTTL, MaxDeliveryCount: commands.DefaultMaxDeliveryCount}, commands.MaxCloudQueue); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.PatchTwin(ctx, "dev1", db.TwinDesired, map[string]any{"fan": json.Number("3")}, 0, commands.MaxTwinSection); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		role       string
		canCommand bool
	}{{db.RoleViewer, false}, {db.RoleOperator, true}} {
		t.Run(tt.role, func(t *testing.T) {
			cookie, _ := h.session(tt.role)
			r, _ := http.NewRequest("GET", h.srv.URL+"/devices/dev1", nil)
			r.AddCookie(&http.Cookie{Name: "fieldhub_session", Value: cookie})
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			page := string(b)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, page)
			}
			for _, want := range []string{`data-commands`, fmt.Sprintf(`data-can-command="%v"`, tt.canCommand),
				`data-state="queued"`, `&lt;b&gt;hi&lt;/b&gt;`, `id="twin-data"`, `data-key="fan"`, `data-differs="true"`} {
				if !strings.Contains(page, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			if got := strings.Contains(page, `<fieldset disabled`); got == tt.canCommand {
				t.Errorf("send controls disabled = %v, want %v", got, !tt.canCommand)
			}
			checkFormLimits(t, page)
		})
	}
}

// checkFormLimits: the Commands section's forms hold input to the limits of
// package commands, which web/commands.js reads from these attributes.
func checkFormLimits(t *testing.T, page string) {
	t.Helper()
	attrs := func(testID string) map[string]string {
		tag := regexp.MustCompile(`<(?:input|textarea)[^>]*data-testid="` + testID + `"[^>]*>`).FindString(page)
		out := map[string]string{}
		for _, m := range regexp.MustCompile(`([a-z-]+)="([^"]*)"`).FindAllStringSubmatch(tag, -1) {
			out[m[1]] = html.UnescapeString(m[2])
		}
		return out
	}
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	for testID, want := range map[string]map[string]string{
		"method-name":    {"maxlength": strconv.Itoa(commands.MaxMethodName), "pattern": commands.MethodNamePattern, "title": commands.MethodNameRule},
		"method-timeout": {"min": secs(commands.MinResponseTimeout), "max": secs(commands.MaxResponseTimeout), "value": secs(commands.DefaultResponseTimeout)},
		"c2d-ttl":        {"min": secs(commands.MinCloudTTL), "max": secs(commands.MaxCloudTTL), "value": secs(commands.DefaultCloudTTL)},
		"c2d-body":       {"data-max-bytes": strconv.Itoa(commands.MaxCloudBody)},
	} {
		got := attrs(testID)
		for name, value := range want {
			if got[name] != value {
				t.Errorf("%s %s = %q, want %q", testID, name, got[name], value)
			}
		}
	}
}

// TestMethodNamesAPI: the API refuses exactly the method names the one rule
// refuses (400), and hands every other name to the device unchanged.
func TestMethodNamesAPI(t *testing.T) {
	h := newCommandsHub(t, func(cfg *handlers.Config) {
		cfg.Methods = commands.NewInvoker(commands.InvokerConfig{Store: cfg.Store, Transport: methodTransport(
			func(_, name string, _ json.RawMessage, _ time.Duration) (int, json.RawMessage, error) {
				answer, _ := json.Marshal(name)
				return 200, answer, nil
			})})
	})
	for _, tt := range testkit.MethodNames {
		if tt.Name == "" {
			continue // a path cannot carry an empty segment
		}
		r := h.call("operator", "POST", "/api/v1/devices/dev1/methods/"+url.PathEscape(tt.Name), `{}`)
		answer, _ := json.Marshal(commands.MethodResult{Status: 200, Payload: mustJSONValue(tt.Name)})
		switch {
		case tt.OK && (r.status != 200 || strings.TrimSpace(string(r.body)) != string(answer)):
			t.Errorf("method %q: %d %s, want 200 %s", tt.Name, r.status, r.body, answer)
		case !tt.OK && (r.status != 400 || !strings.Contains(string(r.body), "method name")):
			t.Errorf("method %q: %d %s, want 400 saying what a method name is", tt.Name, r.status, r.body)
		}
	}
}

func TestAuditPage(t *testing.T) {
	h := newTestHub(t)
	ctx := context.Background()
	for _, e := range []db.AuditEntry{
		{Actor: "user:alice", Action: "c2d.send", Target: "dev1"},
		{Actor: "user:bob", Action: "twin.desired", Target: "dev2", Detail: "version 2, keys <fan>"},
	} {
		if err := h.db.RecordAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	get := func(role, path string) (int, string) {
		cookie, _ := h.session(role)
		r, _ := http.NewRequest("GET", h.srv.URL+path, nil)
		r.AddCookie(&http.Cookie{Name: "fieldhub_session", Value: cookie})
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, page := get(db.RoleAdmin, "/audit?action=twin.")
	if status != 200 || !strings.Contains(page, `data-action="twin.desired"`) || strings.Contains(page, `data-action="c2d.send"`) {
		t.Errorf("filtered audit page: %d, twin row %v, c2d row %v", status,
			strings.Contains(page, `data-action="twin.desired"`), strings.Contains(page, `data-action="c2d.send"`))
	}
	if !strings.Contains(page, "keys &lt;fan&gt;") || !strings.Contains(page, `value="twin."`) {
		t.Error("audit page does not show the escaped detail and the filter as typed")
	}
	if status, _ := get(db.RoleOperator, "/audit"); status != http.StatusForbidden {
		t.Errorf("operator: %d, want 403", status)
	}
}

func mustJSONValue(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
