package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/internal/testkit"
)

// fuzzAPI is the real router over a real database, called in-process (no
// sockets) so that fuzzing runs many inputs a second.
type fuzzAPI struct {
	db     *db.DB
	router *echo.Echo
	admin  string // bearer token; admins may do everything fuzzed here
}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	f.Helper()
	r := testkit.NewRouter(f)
	r.Device(f, "dev1")
	return &fuzzAPI{db: r.DB, router: r.Echo, admin: r.Tokens[db.RoleAdmin]}
}

// call sends body and checks what every answer must be: no panic (the
// recover middleware would answer 500), no 5xx, and a 4xx carries an error
// message. It returns the status and the decoded answer.
func (a *fuzzAPI) call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.admin)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	a.router.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	switch {
	case rec.Code >= 500:
		t.Fatalf("%s %s %q: status %d %s", method, path, body, rec.Code, rec.Body.Bytes())
	case rec.Code >= 400:
		if msg, _ := out["error"].(string); msg == "" {
			t.Fatalf("%s %s %q: status %d without an error message: %s", method, path, body, rec.Code, rec.Body.Bytes())
		}
	}
	return rec.Code, out
}

// number reads a top-level numeric field of a JSON body as the client sent
// it, if it is one.
func number(body, field string) (float64, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &m) != nil {
		return 0, false
	}
	var v float64
	if raw, ok := m[field]; !ok || json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	return v, true
}

// FuzzCloudMessageBody: POST …/cloud-messages. A message that is queued has
// a time to live within 1 minute to 2 days, whatever ttlSeconds said.
func FuzzCloudMessageBody(f *testing.F) {
	for _, s := range []string{
		`{"body":"x","ttlSeconds":18446747674}`, `{"body":"x","ttlSeconds":1000000000000}`, `{"body":"x","ttlSeconds":-1}`,
		`{"body":"x","ttlSeconds":60}`, `{"body":"x","ttlSeconds":172800}`, `{"body":"x","ttlSeconds":1e2}`,
		`{"body":{"a":[1,2]},"properties":{"k":"v"},"messageId":"m","correlationId":"c"}`, `{"ttlSeconds":null}`,
		`{"body":"x","properties":{"":"v"}}`, `[]`, `{}`, ``, `{"body":"x"}{}`,
	} {
		f.Add(s)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body string) {
		status, out := a.call(t, "POST", "/api/v1/devices/dev1/cloud-messages", body)
		if status != http.StatusCreated {
			return
		}
		enq, err1 := time.Parse(time.RFC3339Nano, out["enqueuedAt"].(string))
		exp, err2 := time.Parse(time.RFC3339Nano, out["expiresAt"].(string))
		if err1 != nil || err2 != nil {
			t.Fatalf("queued message without times: %v", out)
		}
		if ttl := exp.Sub(enq); ttl < commands.MinCloudTTL-time.Second || ttl > commands.MaxCloudTTL+time.Second {
			t.Fatalf("%q queued with a time to live of %s, outside 1 min – 2 days", body, ttl)
		}
		if v, ok := number(body, "ttlSeconds"); ok && v != 0 && exp.Sub(enq).Round(time.Second) != time.Duration(v)*time.Second {
			t.Fatalf("%q queued with a time to live of %s", body, exp.Sub(enq))
		}
		// Keep the queue from filling, which would refuse every later input.
		a.call(t, "DELETE", "/api/v1/devices/dev1/cloud-messages", "")
	})
}

// FuzzMethodBody: POST …/methods/{name} to a device that does not exist, so
// a body that passes validation ends in 404 without waiting; such a body's
// timeouts are within their documented ranges.
func FuzzMethodBody(f *testing.F) {
	for _, s := range []string{
		`{"responseTimeoutInSeconds":18446747674}`, `{"responseTimeoutInSeconds":-1}`, `{"responseTimeoutInSeconds":5}`,
		`{"connectTimeoutInSeconds":1000000000000}`, `{"connectTimeoutInSeconds":300,"responseTimeoutInSeconds":300}`,
		`{"payload":{"x":1}}`, `{"payload":x}`, `{"responseTimeoutInSeconds":3e1}`, `{}`, `null`,
	} {
		f.Add(s)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body string) {
		status, _ := a.call(t, "POST", "/api/v1/devices/ghost/methods/reboot", body)
		if status != http.StatusNotFound {
			return
		}
		if v, ok := number(body, "responseTimeoutInSeconds"); ok && (v < 5 || v > 300) {
			t.Fatalf("%q passed with responseTimeoutInSeconds %v, outside 5–300", body, v)
		}
		if v, ok := number(body, "connectTimeoutInSeconds"); ok && (v < 0 || v > 300) {
			t.Fatalf("%q passed with connectTimeoutInSeconds %v, outside 0–300", body, v)
		}
	})
}

// FuzzTwinPatch: PATCH …/twin. An accepted patch leaves desired properties
// within 32 KB of JSON.
func FuzzTwinPatch(f *testing.F) {
	for _, s := range []string{
		`{"interval":30}`, `{"led":{"color":"red"}}`, `{"led":{"color":null}}`, `{"$version":18446747674}`,
		`{"n":1e400}`, `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":1}}}}}}}}}}}`, `[]`, `"x"`, `{"":1}`,
	} {
		f.Add(s)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body string) {
		status, out := a.call(t, "PATCH", "/api/v1/devices/dev1/twin", body)
		if status != http.StatusOK {
			return
		}
		props, _ := out["properties"].(map[string]any)
		desired, _ := json.Marshal(props["desired"])
		if len(desired) > commands.MaxTwinSection+64 { // + $version
			t.Fatalf("%q accepted; desired properties now %d bytes", body, len(desired))
		}
	})
}

// FuzzDeviceBodies: POST /api/v1/devices and PATCH /api/v1/devices/{id}. A
// created device has a valid id, never "." or "..".
func FuzzDeviceBodies(f *testing.F) {
	for _, s := range []string{
		`{"id":"pump-1","name":"Pump","tags":{"site":"north"}}`, `{"id":"."}`, `{"id":".."}`, `{"id":"a/b"}`,
		`{"id":"x","tags":{"k":1}}`, `{"name":18446747674}`, `{"enabled":"yes"}`, `{"enabled":false}`, `{"tags":null}`,
	} {
		f.Add(s)
	}
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body string) {
		status, out := a.call(t, "POST", "/api/v1/devices", body)
		if status == http.StatusCreated {
			id, _ := out["id"].(string)
			if err := db.ValidateDeviceID(id); err != nil || id == "." || id == ".." {
				t.Fatalf("%q created device %q", body, id)
			}
			a.call(t, "DELETE", "/api/v1/devices/"+url.PathEscape(id), "")
		}
		a.call(t, "PATCH", "/api/v1/devices/dev1", body)
	})
}
