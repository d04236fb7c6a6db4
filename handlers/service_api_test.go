package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
)

const apiVersion = "2021-04-12"

// serviceHub is the device listener's router (the service API) over a real
// database, with a policy per set of rights.
type serviceHub struct {
	t    *testing.T
	r    *testkit.Router
	url  string
	keys map[string]string // policy name → primary key
}

var testPolicies = map[string]db.Rights{
	"owner":   db.RightRegistryWrite | db.RightServiceConnect | db.RightDeviceConnect,
	"reader":  db.RightRegistryRead,
	"writer":  db.RightRegistryWrite,
	"service": db.RightServiceConnect,
	"device":  db.RightDeviceConnect,
}

func newServiceHub(t *testing.T, configure ...func(*handlers.Config)) *serviceHub {
	t.Helper()
	r := testkit.NewRouter(t, configure...)
	srv := httptest.NewServer(r.Server.DeviceRouter())
	t.Cleanup(srv.Close)
	h := &serviceHub{t: t, r: r, url: srv.URL, keys: map[string]string{}}
	for name, rights := range testPolicies {
		p, err := r.Config.Policies.Create(context.Background(), "test", name, rights)
		if err != nil {
			t.Fatal(err)
		}
		h.keys[name] = p.PrimaryKey
	}
	return h
}

// token is a service token of policy, as the SDKs sign it.
func (h *serviceHub) token(policy string) string {
	h.t.Helper()
	tok, err := auth.SignServiceSAS("hub.test", policy, h.keys[policy], time.Now().Add(time.Hour))
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

type svcResult struct {
	status int
	header http.Header
	body   []byte
}

func (r svcResult) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// errorCode is the code of an IoT Hub error body, checking its shape.
func (r svcResult) errorCode(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	msg, _ := m["Message"].(string)
	ex, _ := m["ExceptionMessage"].(string)
	code, text, ok := strings.Cut(strings.TrimPrefix(msg, "ErrorCode:"), ";")
	if !strings.HasPrefix(msg, "ErrorCode:") || !ok || text == "" || !strings.HasPrefix(ex, "Tracking ID:") || len(m) != 2 {
		t.Fatalf("error body %s is not IoT Hub's", r.body)
	}
	if r.header.Get("iothub-errorcode") != code {
		t.Errorf("iothub-errorcode header %q, body says %q", r.header.Get("iothub-errorcode"), code)
	}
	return code
}

// call sends a request with policy's token (none for ""), adding the
// api-version unless the path has one.
func (h *serviceHub) call(policy, method, path, body string, headers ...string) svcResult {
	h.t.Helper()
	if !strings.Contains(path, "api-version=") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "api-version=" + apiVersion
	}
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if policy != "" {
		req.Header.Set("Authorization", h.token(policy))
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return svcResult{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *serviceHub) auditActions(actor string) []string {
	h.t.Helper()
	entries, err := h.r.DB.AuditEntries(context.Background(), db.AuditFilter{Actor: actor, Limit: 100})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Action+" "+entries[i].Target)
	}
	return out
}

// TestServiceRegistry: create, read, replace with etags, list, statistics
// and delete a device through the service API, in IoT Hub's shapes, each
// change audited as the policy.
func TestServiceRegistry(t *testing.T) {
	h := newServiceHub(t)
	r := h.call("owner", "PUT", "/devices/dev1", `{"deviceId":"dev1","status":"enabled","authentication":{"symmetricKey":{"primaryKey":"","secondaryKey":""}}}`)
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	dev := r.json(t)
	keys, _ := dev["authentication"].(map[string]any)["symmetricKey"].(map[string]any)
	if dev["deviceId"] != "dev1" || dev["status"] != "enabled" || dev["connectionState"] != "Disconnected" || dev["etag"] == "" ||
		dev["generationId"] == "" || keys["primaryKey"] == nil || keys["primaryKey"] == keys["secondaryKey"] || dev["cloudToDeviceMessageCount"] != 0.0 {
		t.Errorf("created device = %s", r.body)
	}
	etag := dev["etag"].(string)

	if r := h.call("owner", "PUT", "/devices/dev1", `{"deviceId":"dev1"}`); r.status != 409 || r.errorCode(t) != "DeviceAlreadyExists" {
		t.Errorf("create twice: %d %s", r.status, r.body)
	}
	if r := h.call("owner", "PUT", "/devices/dev1", `{"deviceId":"dev2"}`); r.status != 400 || r.errorCode(t) != "ArgumentInvalid" {
		t.Errorf("other id in the body: %d %s", r.status, r.body)
	}
	r = h.call("reader", "GET", "/devices/dev1", "")
	if r.status != 200 || r.json(t)["etag"] != etag {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	if _, err := h.r.Config.CloudMessages.Send(context.Background(), "test", "dev1", commands.Message{Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if r := h.call("reader", "GET", "/devices/dev1", ""); r.json(t)["cloudToDeviceMessageCount"] != 1.0 {
		t.Errorf("cloudToDeviceMessageCount after one send: %s", r.body)
	}

	// Replace: a stale etag is refused, the current one or * admitted.
	const chosen = "c2Vjb25kYXJ5IGtleSBvZiB0aGUgcG9saWN5IGhlcmU="
	disable := `{"deviceId":"dev1","status":"disabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"` + chosen + `","secondaryKey":""}}}`
	if r := h.call("owner", "PUT", "/devices/dev1", disable, "If-Match", `"stale"`); r.status != 412 || r.errorCode(t) != "PreconditionFailed" {
		t.Errorf("stale etag: %d %s", r.status, r.body)
	}
	r = h.call("owner", "PUT", "/devices/dev1", disable, "If-Match", `"`+etag+`"`)
	if r.status != 200 {
		t.Fatalf("replace: %d %s", r.status, r.body)
	}
	upd := r.json(t)
	if upd["status"] != "disabled" || upd["etag"] == etag || upd["generationId"] != dev["generationId"] ||
		upd["authentication"].(map[string]any)["symmetricKey"].(map[string]any)["primaryKey"] != chosen {
		t.Errorf("replaced device = %s", r.body)
	}
	if r := h.call("owner", "PUT", "/devices/dev1", `{"deviceId":"dev1","status":"enabled"}`, "If-Match", "*"); r.status != 200 || r.json(t)["status"] != "enabled" {
		t.Errorf("replace with *: %d %s", r.status, r.body)
	}
	if r := h.call("owner", "PUT", "/devices/nope", `{}`, "If-Match", "*"); r.status != 404 || r.errorCode(t) != "DeviceNotFound" {
		t.Errorf("replace a missing device: %d %s", r.status, r.body)
	}
	if r := h.call("owner", "PUT", "/devices/dev1", `{"authentication":{"symmetricKey":{"primaryKey":"c2hvcnQ="}}}`, "If-Match", "*"); r.status != 400 || !strings.Contains(string(r.body), "16 to 64 bytes") {
		t.Errorf("a short key: %d %s", r.status, r.body)
	}

	for _, id := range []string{"dev2", "dev3"} {
		if r := h.call("writer", "PUT", "/devices/"+id, `{}`); r.status != 200 {
			t.Fatalf("create %s: %d %s", id, r.status, r.body)
		}
	}
	var list []map[string]any
	r = h.call("reader", "GET", "/devices?top=2", "")
	if err := json.Unmarshal(r.body, &list); r.status != 200 || err != nil || len(list) != 2 || list[0]["deviceId"] != "dev1" || list[1]["deviceId"] != "dev2" {
		t.Errorf("list top=2: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/devices", "/devices/"} { // the Node SDK asks the second
		r = h.call("reader", "GET", path, "")
		if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 3 {
			t.Errorf("list %s: %d %s", path, r.status, r.body)
		}
	}
	for _, top := range []string{"0", "1001", "1000000", "x"} {
		if r := h.call("reader", "GET", "/devices?top="+top, ""); r.status != 400 || r.errorCode(t) != "ArgumentInvalid" {
			t.Errorf("top=%s: %d %s", top, r.status, r.body)
		}
	}
	if _, err := h.r.Config.Devices.SetEnabled(context.Background(), "test", "dev3", false); err != nil {
		t.Fatal(err)
	}
	if r := h.call("reader", "GET", "/statistics/devices", ""); r.status != 200 || string(r.body) != `{"disabledDeviceCount":1,"enabledDeviceCount":2,"totalDeviceCount":3}`+"\n" {
		t.Errorf("device statistics: %d %s", r.status, r.body)
	}
	if r := h.call("service", "GET", "/statistics/service", ""); r.status != 200 || string(r.body) != `{"connectedDeviceCount":0}`+"\n" {
		t.Errorf("service statistics: %d %s", r.status, r.body)
	}

	if r := h.call("writer", "DELETE", "/devices/dev2", "", "If-Match", `"stale"`); r.status != 412 {
		t.Errorf("delete with a stale etag: %d %s", r.status, r.body)
	}
	if r := h.call("writer", "DELETE", "/devices/dev2", "", "If-Match", "*"); r.status != 204 {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r := h.call("reader", "GET", "/devices/dev2", ""); r.status != 404 || r.errorCode(t) != "DeviceNotFound" {
		t.Errorf("get deleted: %d %s", r.status, r.body)
	}
	if r := h.call("writer", "DELETE", "/devices/dev2", ""); r.status != 404 {
		t.Errorf("delete twice: %d %s", r.status, r.body)
	}
	got := strings.Join(h.auditActions("policy:owner"), "|")
	want := "device.create dev1|device.update dev1|device.update dev1"
	if got != want {
		t.Errorf("audit of policy:owner = %q, want %q", got, want)
	}
	if got := strings.Join(h.auditActions("policy:writer"), "|"); got != "device.create dev2|device.create dev3|device.delete dev2" {
		t.Errorf("audit of policy:writer = %q", got)
	}
}

// TestServiceBulk: up to 100 devices created, updated and deleted in one
// call, each on its own; a failing one is named in errors (400), the
// others done; 101 or 10,000 devices and huge bodies are refused whole.
func TestServiceBulk(t *testing.T) {
	h := newServiceHub(t)
	if r := h.call("owner", "PUT", "/devices/old", `{}`); r.status != 200 {
		t.Fatal(r.status)
	}
	r := h.call("writer", "POST", "/devices", `[{"id":"b1","importMode":"create"},{"id":"b2","importMode":"create","status":"disabled"},{"id":"old","importMode":"create"},{"id":"old","importMode":"delete"}]`)
	if r.status != 400 || !strings.Contains(string(r.body), "appears twice") {
		t.Errorf("an id twice: %d %s", r.status, r.body)
	}
	r = h.call("writer", "POST", "/devices", `[{"id":"b1","importMode":"create"},{"id":"b2","importMode":"create","status":"disabled"},{"id":"old","importMode":"create"},{"id":"gone","importMode":"delete"},{"id":"b3","importMode":"updateIfMatchETag","eTag":"x"}]`)
	var res struct {
		IsSuccessful bool `json:"isSuccessful"`
		Errors       []struct {
			DeviceID, ErrorCode, ErrorStatus, Operation string
		} `json:"errors"`
		Warnings []any `json:"warnings"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil || r.status != 400 || res.IsSuccessful || res.Warnings == nil {
		t.Fatalf("bulk with failures: %d %s", r.status, r.body)
	}
	got := fmt.Sprint(res.Errors)
	want := "[{old DeviceAlreadyExists a device with this id exists already create} {gone DeviceNotFound device not found delete} {b3 DeviceNotFound device not found updateIfMatchETag}]"
	if got != want {
		t.Errorf("errors = %s\nwant %s", got, want)
	}
	if r := h.call("reader", "GET", "/devices/b2", ""); r.status != 200 || r.json(t)["status"] != "disabled" {
		t.Errorf("b2 after bulk: %d %s", r.status, r.body)
	}
	etag := h.call("reader", "GET", "/devices/b1", "").json(t)["etag"].(string)
	r = h.call("writer", "POST", "/devices", `[{"id":"b1","importMode":"UpdateIfMatchETag","eTag":"`+etag+`","status":"disabled"},{"id":"b2","importMode":"Delete"}]`)
	if r.status != 200 || string(r.body) != `{"isSuccessful":true,"errors":[],"warnings":[]}`+"\n" {
		t.Errorf("bulk: %d %s", r.status, r.body)
	}
	if r := h.call("reader", "GET", "/devices/b2", ""); r.status != 404 {
		t.Errorf("b2 not deleted: %d", r.status)
	}

	array := func(n int) string {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"id":"m%d","importMode":"create"}`, i)
		}
		b.WriteString("]")
		return b.String()
	}
	for _, tt := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"10,000 devices", array(10_000), 400, "TooManyDevices"},
		{"101 devices", array(101), 400, "TooManyDevices"},
		{"huge body", `[{"id":"a","importMode":"create","statusReason":"` + strings.Repeat("z", 1<<20) + `"}]`, 413, "MessageTooLarge"},
	} {
		r := h.call("writer", "POST", "/devices", tt.body)
		if r.status != tt.status || r.errorCode(t) != tt.code {
			t.Errorf("%s: %d %s", tt.name, r.status, r.body)
		}
	}
	if r := h.call("reader", "GET", "/statistics/devices", ""); r.json(t)["totalDeviceCount"] != 2.0 {
		t.Errorf("a refused bulk call created devices: %s", r.body)
	}
}

// TestServiceTwins: read, patch and replace tags and desired properties
// with etags, in IoT Hub's twin shape.
func TestServiceTwins(t *testing.T) {
	h := newServiceHub(t)
	h.r.Device(t, "dev1")
	r := h.call("service", "GET", "/twins/dev1", "")
	tw := r.json(t)
	props := tw["properties"].(map[string]any)
	if r.status != 200 || tw["deviceId"] != "dev1" || tw["etag"] == "" || tw["status"] != "enabled" || tw["connectionState"] != "Disconnected" ||
		props["desired"].(map[string]any)["$version"] != 1.0 || props["reported"].(map[string]any)["$metadata"] == nil {
		t.Fatalf("twin = %d %s", r.status, r.body)
	}
	etag := tw["etag"].(string)
	patch := `{"tags":{"site":"north"},"properties":{"desired":{"rate":5,"cfg":{"a":1,"b":2}}}}`
	if r := h.call("service", "PATCH", "/twins/dev1", patch, "If-Match", `"AAAAAAAAAAE="`); r.status != 412 || r.errorCode(t) != "PreconditionFailed" {
		t.Errorf("stale etag: %d %s", r.status, r.body)
	}
	r = h.call("service", "PATCH", "/twins/dev1", patch, "If-Match", `"`+etag+`"`)
	tw = r.json(t)
	desired := tw["properties"].(map[string]any)["desired"].(map[string]any)
	if r.status != 200 || tw["etag"] == etag || tw["tags"].(map[string]any)["site"] != "north" || desired["rate"] != 5.0 || desired["$version"] != 2.0 {
		t.Fatalf("patched twin = %d %s", r.status, r.body)
	}
	if r := h.call("service", "PATCH", "/twins/dev1", patch, "If-Match", `"`+etag+`"`); r.status != 412 {
		t.Errorf("the old etag after a change: %d %s", r.status, r.body)
	}
	r = h.call("service", "PUT", "/twins/dev1", `{"tags":{"line":"2"},"properties":{"desired":{"cfg":{"a":1}}}}`, "If-Match", "*")
	tw = r.json(t)
	desired = tw["properties"].(map[string]any)["desired"].(map[string]any)
	if r.status != 200 || fmt.Sprint(tw["tags"]) != "map[line:2]" || desired["rate"] != nil || fmt.Sprint(desired["cfg"]) != "map[a:1]" {
		t.Errorf("replaced twin = %d %s", r.status, r.body)
	}
	for name, tt := range map[string]struct {
		method, body string
		status       int
		says         string
	}{
		"number tag":  {"PATCH", `{"tags":{"n":5}}`, 400, "not a string"},
		"reported":    {"PATCH", `{"properties":{"reported":{"x":1}}}`, 400, "belong to the device"},
		"not JSON":    {"PATCH", `{`, 400, "not the JSON"},
		"huge":        {"PATCH", `{"properties":{"desired":{"x":"` + strings.Repeat("z", 2<<20) + `"}}}`, 413, "larger than"},
		"no body":     {"PUT", ``, 400, "empty"},
		"missing dev": {"PATCH", `{}`, 404, "not found"},
	} {
		path := "/twins/dev1"
		if name == "missing dev" {
			path = "/twins/nope"
		}
		r := h.call("service", tt.method, path, tt.body)
		if r.status != tt.status || !strings.Contains(r.json(t)["Message"].(string), tt.says) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if got := strings.Join(h.auditActions("policy:service"), "|"); got != "device.update dev1|twin.desired dev1|device.update dev1|twin.desired dev1" {
		t.Errorf("audit = %q", got)
	}
}

// TestServiceMethods: a direct method answers {"status","payload"}; a
// device without a connection is IoT Hub's 404 DeviceNotOnline.
func TestServiceMethods(t *testing.T) {
	h := newServiceHub(t, func(cfg *handlers.Config) {
		cfg.Methods = commands.NewInvoker(commands.InvokerConfig{Store: cfg.Store, Transport: methodTransport(
			func(dev, name string, payload json.RawMessage, timeout time.Duration) (int, json.RawMessage, error) {
				switch name {
				case "echo":
					return 201, payload, nil
				case "slow":
					return 0, nil, commands.ErrTimeout
				}
				return 0, nil, commands.ErrDeviceNotConnected
			})})
	})
	h.r.Device(t, "dev1")
	r := h.call("service", "POST", "/twins/dev1/methods", `{"methodName":"echo","payload":{"x":[1,2]},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":0}`)
	if r.status != 200 || string(r.body) != `{"status":201,"payload":{"x":[1,2]}}`+"\n" {
		t.Errorf("echo: %d %s", r.status, r.body)
	}
	for name, tt := range map[string]struct {
		path, body string
		status     int
		code       string
	}{
		"offline":         {"/twins/dev1/methods", `{"methodName":"reboot"}`, 404, "DeviceNotOnline"},
		"timeout":         {"/twins/dev1/methods", `{"methodName":"slow","responseTimeoutInSeconds":5}`, 504, "GatewayTimeout"},
		"unknown device":  {"/twins/nope/methods", `{"methodName":"echo"}`, 404, "DeviceNotFound"},
		"no name":         {"/twins/dev1/methods", `{"payload":1}`, 400, "ArgumentInvalid"},
		"bad name":        {"/twins/dev1/methods", `{"methodName":"a b"}`, 400, "ArgumentInvalid"},
		"timeout range":   {"/twins/dev1/methods", `{"methodName":"echo","responseTimeoutInSeconds":4}`, 400, "ArgumentInvalid"},
		"payload too big": {"/twins/dev1/methods", `{"methodName":"echo","payload":"` + strings.Repeat("x", 140*1024) + `"}`, 413, "MessageTooLarge"},
	} {
		r := h.call("service", "POST", tt.path, tt.body)
		if r.status != tt.status || r.errorCode(t) != tt.code {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

// TestServiceQuery: device queries in the fleet query language, paged with
// x-ms-max-item-count and x-ms-continuation; twins for SELECT *, raw rows
// otherwise; mistakes and huge queries refused.
func TestServiceQuery(t *testing.T) {
	h := newServiceHub(t)
	for i := range 5 {
		d, err := h.r.DB.CreateDevice(context.Background(), db.NewDevice{DeviceID: fmt.Sprintf("q%d", i), Tags: map[string]string{"site": []string{"north", "south"}[i%2]}})
		if err != nil {
			t.Fatal(err)
		}
		_ = d
	}
	var ids []string
	cont := ""
	for page := 0; ; page++ {
		hdr := []string{"x-ms-max-item-count", "2"}
		if cont != "" {
			hdr = append(hdr, "x-ms-continuation", cont)
		}
		r := h.call("reader", "POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE tags.site = 'north'"}`, hdr...)
		var twins []map[string]any
		if err := json.Unmarshal(r.body, &twins); r.status != 200 || err != nil || r.header.Get("x-ms-item-type") != "twin" {
			t.Fatalf("page %d: %d %s %v", page, r.status, r.body, r.header)
		}
		for _, tw := range twins {
			ids = append(ids, tw["deviceId"].(string))
			if tw["etag"] == "" || tw["properties"] == nil {
				t.Errorf("not a twin: %v", tw)
			}
		}
		if cont = r.header.Get("x-ms-continuation"); cont == "" {
			break
		}
		if page > 5 {
			t.Fatal("the pages do not end")
		}
	}
	if strings.Join(ids, ",") != "q0,q2,q4" {
		t.Errorf("queried %v, want q0,q2,q4", ids)
	}
	r := h.call("service", "POST", "/devices/query", `{"query":"SELECT COUNT() AS n FROM devices"}`)
	if r.status != 200 || r.header.Get("x-ms-item-type") != "raw" || string(r.body) != `[{"n":5}]`+"\n" {
		t.Errorf("count: %d %s", r.status, r.body)
	}
	for name, tt := range map[string]struct {
		body    string
		headers []string
		status  int
		code    string
	}{
		"mistake":      {`{"query":"SELECT * FROM devices WHERE"}`, nil, 400, "ArgumentInvalid"},
		"empty":        {`{"query":""}`, nil, 400, "ArgumentInvalid"},
		"huge query":   {`{"query":"SELECT * FROM devices WHERE deviceId = '` + strings.Repeat("a", 1<<20) + `'"}`, nil, 413, "MessageTooLarge"},
		"long query":   {`{"query":"SELECT * FROM devices WHERE deviceId = '` + strings.Repeat("a", 9000) + `'"}`, nil, 400, "ArgumentInvalid"},
		"page size":    {`{"query":"SELECT * FROM devices"}`, []string{"x-ms-max-item-count", "1000000"}, 400, "ArgumentInvalid"},
		"forged token": {`{"query":"SELECT * FROM devices"}`, []string{"x-ms-continuation", "abc.def"}, 400, "ArgumentInvalid"},
		"long token":   {`{"query":"SELECT * FROM devices"}`, []string{"x-ms-continuation", strings.Repeat("a", 2000)}, 400, "ArgumentInvalid"},
	} {
		r := h.call("reader", "POST", "/devices/query", tt.body, tt.headers...)
		if r.status != tt.status || r.errorCode(t) != tt.code {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

// TestServiceJobs: jobs v2 create Fieldhub jobs (they show on the Jobs
// page), read back in IoT Hub's shape, cancelled and listed page by page.
func TestServiceJobs(t *testing.T) {
	h := newServiceHub(t)
	h.r.Device(t, "j-dev1")
	h.r.Device(t, "j-dev2")
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := h.call("service", "PUT", "/jobs/v2/twin1", `{"jobId":"twin1","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","properties":{"desired":{"rate":7}}},"queryCondition":"deviceId IN ['j-dev1','j-dev2']","maxExecutionTimeInSeconds":3600}`)
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	job := r.json(t)
	if job["jobId"] != "twin1" || job["type"] != "scheduleUpdateTwin" || job["queryCondition"] != "deviceId IN ['j-dev1','j-dev2']" {
		t.Errorf("job = %s", r.body)
	}
	testkit.WaitFor(t, "the twin job to complete", func() bool {
		r := h.call("reader", "GET", "/jobs/v2/twin1", "")
		return r.status == 200 && r.json(t)["status"] == "completed"
	})
	r = h.call("reader", "GET", "/jobs/v2/twin1", "")
	stats := r.json(t)["deviceJobStatistics"].(map[string]any)
	if stats["deviceCount"] != 2.0 || stats["succeededCount"] != 2.0 || r.json(t)["endTime"] == nil {
		t.Errorf("finished job = %s", r.body)
	}
	tw, err := h.r.Config.Twins.Get(context.Background(), "j-dev2")
	if err != nil || fmt.Sprint(tw.Desired["rate"]) != "7" {
		t.Errorf("desired of j-dev2 = %v, %v", tw.Desired, err)
	}
	if j, err := h.r.Config.Jobs.Job(context.Background(), "twin1"); err != nil || j.Actor != "policy:service" {
		t.Errorf("stored job = %+v, %v", j, err)
	}

	r = h.call("service", "PUT", "/jobs/v2/later", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30},"queryCondition":"deviceId = 'j-dev1'","startTime":"`+start+`"}`)
	if r.status != 200 || r.json(t)["status"] != "scheduled" || r.json(t)["cloudToDeviceMethod"].(map[string]any)["methodName"] != "reboot" {
		t.Fatalf("scheduled: %d %s", r.status, r.body)
	}
	if r := h.call("service", "PUT", "/jobs/v2/later", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot"},"queryCondition":"deviceId = 'j-dev1'","startTime":"`+start+`"}`); r.status != 409 || r.errorCode(t) != "JobAlreadyExists" {
		t.Errorf("same id again: %d %s", r.status, r.body)
	}
	if r := h.call("service", "POST", "/jobs/v2/later/cancel", ""); r.status != 200 || r.json(t)["status"] != "cancelled" {
		t.Errorf("cancel: %d %s", r.status, r.body)
	}
	if r := h.call("reader", "GET", "/jobs/v2/nope", ""); r.status != 404 || r.errorCode(t) != "JobNotFound" {
		t.Errorf("missing job: %d %s", r.status, r.body)
	}
	if r := h.call("service", "PUT", "/jobs/v2/bad", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"SELECT * FROM"}`); r.status != 400 || r.errorCode(t) != "ArgumentInvalid" {
		t.Errorf("bad query: %d %s", r.status, r.body)
	}

	// The list, one job a page, newest first, filtered by type.
	var ids []string
	cont := ""
	for range 5 {
		hdr := []string{"x-ms-max-item-count", "1"}
		if cont != "" {
			hdr = append(hdr, "x-ms-continuation", cont)
		}
		r := h.call("reader", "GET", "/jobs/v2/query", "", hdr...)
		var list []map[string]any
		if err := json.Unmarshal(r.body, &list); r.status != 200 || err != nil || r.header.Get("x-ms-item-type") != "jobResponse" {
			t.Fatalf("query: %d %s", r.status, r.body)
		}
		for _, j := range list {
			ids = append(ids, j["jobId"].(string))
		}
		if cont = r.header.Get("x-ms-continuation"); cont == "" {
			break
		}
	}
	if strings.Join(ids, ",") != "later,twin1" {
		t.Errorf("listed %v", ids)
	}
	r = h.call("reader", "GET", "/jobs/v2/query?jobType=scheduleUpdateTwin&jobStatus=completed", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"jobId":"twin1"`) || strings.Contains(string(r.body), "later") {
		t.Errorf("filtered: %d %s", r.status, r.body)
	}
	for name, hdr := range map[string][]string{
		"bad token":  {"x-ms-continuation", "forged"},
		"bad filter": nil,
	} {
		path := "/jobs/v2/query"
		if name == "bad filter" {
			path += "?jobStatus=paused"
		}
		if r := h.call("reader", "GET", path, "", hdr...); r.status != 400 || r.errorCode(t) != "ArgumentInvalid" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

// TestServiceRights: every endpoint refuses (403, IoT Hub's body) a policy
// without the right it needs, and admits one with it.
func TestServiceRights(t *testing.T) {
	h := newServiceHub(t)
	h.r.Device(t, "dev1")
	tests := []struct {
		method, path, body string
		allowed            []string // of reader, writer, service, device
	}{
		{"GET", "/devices", "", []string{"reader", "writer"}},
		{"POST", "/devices", `[{"id":"bulk","importMode":"create"}]`, []string{"writer"}},
		{"POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, []string{"reader", "writer", "service"}},
		{"GET", "/devices/dev1", "", []string{"reader", "writer"}},
		{"PUT", "/devices/new1", `{}`, []string{"writer"}},
		{"DELETE", "/devices/missing", "", []string{"writer"}},
		{"GET", "/statistics/devices", "", []string{"reader", "writer"}},
		{"GET", "/statistics/service", "", []string{"service"}},
		{"GET", "/twins/dev1", "", []string{"reader", "writer", "service"}},
		{"PATCH", "/twins/dev1", `{}`, []string{"service"}},
		{"PUT", "/twins/dev1", `{}`, []string{"service"}},
		{"POST", "/twins/dev1/methods", `{"methodName":"m"}`, []string{"service"}},
		{"GET", "/jobs/v2/query", "", []string{"reader", "writer", "service"}},
		{"PUT", "/jobs/v2/j9", `{"type":"scheduleUpdateTwin","updateTwin":{"properties":{"desired":{"a":1}}},"queryCondition":"deviceId = 'none'"}`, []string{"service"}},
		{"GET", "/jobs/v2/j9", "", []string{"reader", "writer", "service"}},
		{"POST", "/jobs/v2/j9/cancel", "", []string{"service"}},
	}
	for _, tt := range tests {
		for _, p := range []string{"reader", "writer", "service", "device"} {
			allowed := false
			for _, a := range tt.allowed {
				allowed = allowed || a == p
			}
			r := h.call(p, tt.method, tt.path, tt.body)
			if allowed == (r.status == 403) {
				t.Errorf("%s %s as %s: %d %s (allowed %v)", tt.method, tt.path, p, r.status, r.body, allowed)
			}
			if !allowed && (r.errorCode(t) != "IotHubUnauthorizedAccess" || !strings.Contains(string(r.body), `policy \"`+p+`\" lacks`)) {
				t.Errorf("%s %s as %s: %s", tt.method, tt.path, p, r.body)
			}
		}
	}
}

// TestServiceAuthentication: tokens are checked like device tokens (401
// with IoT Hub's body), api-version is required, failed attempts from one
// address are throttled while a verified token keeps working, and a
// policy with deviceConnect acts for a device on the device endpoints.
func TestServiceAuthentication(t *testing.T) {
	h := newServiceHub(t)
	h.r.Device(t, "dev1")
	send := func(authz, path string) svcResult {
		req, _ := http.NewRequest("GET", h.url+path, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return svcResult{resp.StatusCode, resp.Header, b}
	}
	sign := func(resource, name, key string, exp time.Time) string {
		tok, err := auth.SignServiceSAS(resource, name, key, exp)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	const path = "/devices/dev1?api-version=" + apiVersion
	good := h.token("reader")
	if r := send(good, path); r.status != 200 {
		t.Fatalf("good token: %d %s", r.status, r.body)
	}
	for name, tt := range map[string]struct {
		authz, path string
		status      int
		code, says  string
	}{
		"no header":      {"", path, 401, "IotHubUnauthorizedAccess", "missing Authorization"},
		"no api-version": {good, "/devices/dev1", 400, "InvalidProtocolVersion", "api-version"},
		"old version":    {good, "/devices/dev1?api-version=2018-06-30", 400, "InvalidProtocolVersion", "older than 2020-09-30"},
		"unknown policy": {sign("hub.test", "ghost", h.keys["reader"], time.Now().Add(time.Hour)), path, 401, "IotHubUnauthorizedAccess", "signature does not match"},
		"wrong key":      {sign("hub.test", "reader", h.keys["writer"], time.Now().Add(time.Hour)), path, 401, "IotHubUnauthorizedAccess", "signature does not match"},
		"expired":        {sign("hub.test", "reader", h.keys["reader"], time.Now().Add(-time.Minute)), path, 401, "IotHubUnauthorizedAccess", "expired"},
		"device token":   {strings.TrimSuffix(sign("hub.test", "reader", h.keys["reader"], time.Now().Add(time.Hour)), "&skn=reader"), path, 401, "IotHubUnauthorizedAccess", "skn"},
		"huge header":    {"SharedAccessSignature sr=" + strings.Repeat("a", 4000) + "&sig=x&se=1&skn=reader", path, 401, "IotHubUnauthorizedAccess", "longer than"},
		"other scope":    {sign("hub.test/devices/dev2", "reader", h.keys["reader"], time.Now().Add(time.Hour)), path, 401, "IotHubUnauthorizedAccess", "does not cover"},
	} {
		r := send(tt.authz, tt.path)
		if r.status != tt.status || r.errorCode(t) != tt.code || !strings.Contains(string(r.body), tt.says) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}

	// deviceConnect: a policy-signed device token on the device endpoints.
	devTok := func(policy string) string {
		return sign("hub.test/devices/dev1", policy, h.keys[policy], time.Now().Add(time.Hour))
	}
	for _, tt := range []struct {
		policy string
		status int
	}{{"device", 204}, {"owner", 204}, {"service", 403}} {
		if r := send(devTok(tt.policy), "/devices/dev1/messages/deviceBound?api-version=2020-09-30"); r.status != tt.status {
			t.Errorf("device endpoint with policy %s: %d %s", tt.policy, r.status, r.body)
		}
	}
	if r := send(sign("hub.test/devices/dev1", "ghost", h.keys["device"], time.Now().Add(time.Hour)), "/devices/dev1/messages/deviceBound"); r.status != 401 {
		t.Errorf("device endpoint with an unknown policy: %d %s", r.status, r.body)
	}

	// Throttling: 20 failures from this address within the window, then 429
	// for new tokens, while the token that verified before still works.
	bad := sign("hub.test", "reader", h.keys["writer"], time.Now().Add(time.Hour))
	for range 20 {
		send(bad, path)
	}
	if r := send(bad, path); r.status != 429 || r.header.Get("Retry-After") == "" || r.errorCode(t) != "ThrottlingException" {
		t.Errorf("after 20 failures: %d %s", r.status, r.body)
	}
	if r := send(h.token("writer"), path); r.status != 429 {
		t.Errorf("a new token from a throttled address: %d", r.status)
	}
	if r := send(good, path); r.status != 200 {
		t.Errorf("a verified token from a throttled address: %d %s", r.status, r.body)
	}
}

// TestServiceAPIOnDeviceListenerOnly: the service paths are not served by
// the dashboard's router, where /devices/{id} is a page.
func TestServiceAPIOnDeviceListenerOnly(t *testing.T) {
	h := newServiceHub(t)
	h.r.Device(t, "dev1")
	req, _ := http.NewRequest("GET", h.r.URL+"/devices/dev1?api-version="+apiVersion, nil)
	req.Header.Set("Authorization", h.token("reader"))
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("dashboard GET /devices/dev1 with a service token: %d, want the sign-in redirect", resp.StatusCode)
	}
}
