package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"fieldhub/db"
	"fieldhub/docs"
	"fieldhub/internal/testkit"
)

// apiPrefix is the operator API, which docs/openapi.json describes.
const apiPrefix = "/api/v1"

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPIMatchesRouter: every /api/v1 route of the real router is in
// docs/openapi.json, and the document describes no route the router lacks.
func TestOpenAPIMatchesRouter(t *testing.T) {
	r := testkit.NewRouter(t)
	served := map[string]bool{}
	for _, rt := range r.Echo.Routes() {
		if !strings.HasPrefix(rt.Path, apiPrefix+"/") || !slices.Contains(httpMethods, strings.ToLower(rt.Method)) {
			continue // other listeners' routes; Echo's own not-found routes of groups
		}
		served[strings.ToUpper(rt.Method)+" "+echoParam.ReplaceAllString(rt.Path, "{$1}")] = true
	}
	documented := documentedOperations(t)
	for op := range served {
		if !documented[op] {
			t.Errorf("route %s is served but not in docs/openapi.json: add its path and operation", op)
		}
	}
	for op := range documented {
		if !served[op] {
			t.Errorf("docs/openapi.json documents %s, which the router does not serve: remove it or add the route", op)
		}
	}
	if len(served) < 20 {
		t.Errorf("only %d /api/v1 routes found; the walk of the router is broken", len(served))
	}
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// documentedOperations are "METHOD /path" of every operation in the document.
func documentedOperations(t *testing.T) map[string]bool {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(docs.OpenAPI, &doc); err != nil {
		t.Fatalf("docs/openapi.json: %v", err)
	}
	ops := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			if slices.Contains(httpMethods, method) {
				ops[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	return ops
}

func newAPIValidator(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(docs.OpenAPI)
	if err != nil {
		t.Fatalf("docs/openapi.json: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("docs/openapi.json: %v", errs)
	}
	return v
}

// TestOpenAPIDocumentIsValid validates the document against the OpenAPI 3.1
// specification's schema (libopenapi-validator).
func TestOpenAPIDocumentIsValid(t *testing.T) {
	v := newAPIValidator(t)
	if ok, errs := v.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("docs/openapi.json is not valid OpenAPI: %s: %s (line %d)", e.Message, e.Reason, e.SpecLine)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s: %s", se.FieldPath+" "+se.KeywordLocation, se.Reason)
			}
		}
	}
	var head struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(docs.OpenAPI, &head); err != nil || !strings.HasPrefix(head.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, %v; want 3.1.x", head.OpenAPI, err)
	}
}

// TestOpenAPIAnswersMatch sends real requests through the real router and
// checks each answer, success or error, against its schema in the document.
func TestOpenAPIAnswersMatch(t *testing.T) {
	r := testkit.NewRouter(t)
	v := newAPIValidator(t)
	r.Device(t, "d1")
	x509, _ := json.Marshal(map[string]any{"id": "cam-1", "authentication": map[string]any{"type": "selfSigned",
		"x509Thumbprint": map[string]any{"primaryThumbprint": strings.Repeat("AB", 32)}}})

	for _, tt := range []struct {
		role, method, path, body string
		want                     int
	}{
		{db.RoleViewer, "GET", "/api/v1/devices", "", 200},
		{db.RoleAdmin, "GET", "/api/v1/devices?status=offline&limit=5", "", 200},
		{db.RoleAdmin, "POST", "/api/v1/devices", `{"id":"d2","name":"Two","tags":{"site":"north"}}`, 201},
		{db.RoleAdmin, "POST", "/api/v1/devices", string(x509), 201},
		{db.RoleAdmin, "POST", "/api/v1/devices", `{"id":"d2"}`, 409},
		{db.RoleAdmin, "POST", "/api/v1/devices", `{"id":"d3","color":"red"}`, 400},
		{db.RoleViewer, "GET", "/api/v1/devices/d1", "", 200},
		{db.RoleAdmin, "GET", "/api/v1/devices/cam-1", "", 200},
		{db.RoleViewer, "GET", "/api/v1/devices/nope", "", 404},
		{db.RoleViewer, "PATCH", "/api/v1/devices/d1", `{"name":"x"}`, 403},
		{db.RoleAdmin, "PATCH", "/api/v1/devices/d1", `{"enabled":false}`, 200},
		{db.RoleAdmin, "POST", "/api/v1/devices/d1/keys/rotate", `{"key":"secondary"}`, 200},
		{db.RoleViewer, "GET", "/api/v1/cas", "", 200},
		{db.RoleAdmin, "POST", "/api/v1/cas", `{"name":"root","certificate":"not a pem"}`, 422},
		{db.RoleViewer, "GET", "/api/v1/devices/d1/metrics", "", 200},
		{db.RoleViewer, "GET", "/api/v1/devices/d1/readings?metric=nope", "", 404},
		{db.RoleViewer, "GET", "/api/v1/devices/d1/messages?limit=10", "", 200},
		{db.RoleViewer, "GET", "/api/v1/devices/d1/messages?limit=0", "", 400},
		{db.RoleOperator, "POST", "/api/v1/devices/d2/cloud-messages", `{"body":"hello","properties":{"a":"b"},"ttlSeconds":600}`, 201},
		{db.RoleOperator, "POST", "/api/v1/devices/d2/cloud-messages", `{"ttlSeconds":5}`, 422},
		{db.RoleViewer, "GET", "/api/v1/devices/d2/cloud-messages", "", 200},
		{db.RoleOperator, "DELETE", "/api/v1/devices/d2/cloud-messages", "", 200},
		{db.RoleOperator, "POST", "/api/v1/devices/d2/methods/reboot", `{"responseTimeoutInSeconds":5}`, 404},
		{db.RoleViewer, "GET", "/api/v1/devices/d2/twin", "", 200},
		{db.RoleOperator, "PATCH", "/api/v1/devices/d2/twin", `{"interval":30}`, 200},
		{db.RoleAdmin, "GET", "/api/v1/audit?limit=3", "", 200},
		{db.RoleOperator, "GET", "/api/v1/audit", "", 403},
		{"", "GET", "/api/v1/devices", "", 401},
		{"", "GET", "/api/v1/openapi.json", "", 200},
		{db.RoleAdmin, "DELETE", "/api/v1/devices/d2", "", 204},
	} {
		name := fmt.Sprintf("%s %s as %q", tt.method, tt.path, tt.role)
		req, err := http.NewRequest(tt.method, r.URL+tt.path, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if tt.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tt.role != "" {
			req.Header.Set("Authorization", "Bearer "+r.Tokens[tt.role])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s = %d, want %d: %s", name, resp.StatusCode, tt.want, body)
			continue
		}
		// The validator matches the request against the document's paths
		// (servers: "/"), so it gets the path without the test server's host.
		vreq, _ := http.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		vreq.Header = req.Header
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if ok, errs := v.ValidateHttpResponse(vreq, resp); !ok {
			for _, e := range errs {
				t.Errorf("%s: answer %d does not match docs/openapi.json: %s: %s", name, resp.StatusCode, e.Message, e.Reason)
				for _, se := range e.SchemaValidationErrors {
					t.Errorf("  %s: %s", se.FieldPath+" "+se.KeywordLocation, se.Reason)
				}
			}
		}
	}
}
