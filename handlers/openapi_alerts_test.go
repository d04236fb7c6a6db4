package handlers_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"fieldhub/db"
	"fieldhub/internal/testkit"
)

// TestOpenAPIAlertAnswersMatch sends alert, rule and webhook requests
// through the real router (with the real alerting service) and checks each
// answer against its schema in docs/openapi.json.
func TestOpenAPIAlertAnswersMatch(t *testing.T) {
	r := testkit.NewRouter(t)
	v := newAPIValidator(t)
	r.Device(t, "d1")
	rule := `{"name":"hot","severity":"major","scope":{"deviceId":"d1"},"condition":{"kind":"threshold","metric":"temp","op":">","value":30,"forSeconds":0,"hysteresis":1}}`
	for _, tt := range []struct {
		role, method, path, body string
		want                     int
	}{
		{db.RoleViewer, "GET", "/api/v1/alert-rules", "", 200},
		{db.RoleOperator, "POST", "/api/v1/alert-rules", rule, 201},
		{db.RoleOperator, "POST", "/api/v1/alert-rules", `{"name":"x","severity":"major","scope":{"fleet":true},"condition":{"kind":"silence"}}`, 422},
		{db.RoleOperator, "POST", "/api/v1/alert-rules", `{"name":`, 400},
		{db.RoleViewer, "POST", "/api/v1/alert-rules", rule, 403},
		{db.RoleOperator, "POST", "/api/v1/alert-rules/preview", rule, 200},
		{db.RoleViewer, "GET", "/api/v1/alert-rules/1", "", 200},
		{db.RoleViewer, "GET", "/api/v1/alert-rules/999", "", 404},
		{db.RoleOperator, "PATCH", "/api/v1/alert-rules/1", `{"severity":"critical","enabled":false}`, 200},
		{db.RoleViewer, "GET", "/api/v1/alerts?state=open&limit=5", "", 200},
		{db.RoleViewer, "GET", "/api/v1/alerts?state=bogus", "", 400},
		{db.RoleViewer, "GET", "/api/v1/alerts/7", "", 404},
		{db.RoleOperator, "POST", "/api/v1/alerts/7/ack", `{"comment":"on it"}`, 404},
		{db.RoleOperator, "POST", "/api/v1/alerts/7/clear", "", 404},
		{db.RoleAdmin, "POST", "/api/v1/webhooks", `{"url":"http://127.0.0.1:9/hook","secret":"0123456789abcdef","events":["alert.raised"]}`, 201},
		{db.RoleAdmin, "POST", "/api/v1/webhooks", `{"url":"ftp://x","secret":"short","events":[]}`, 422},
		{db.RoleOperator, "GET", "/api/v1/webhooks", "", 403},
		{db.RoleAdmin, "GET", "/api/v1/webhooks", "", 200},
		{db.RoleAdmin, "GET", "/api/v1/webhooks/1?deliveries=10", "", 200},
		{db.RoleAdmin, "PATCH", "/api/v1/webhooks/1", `{"enabled":false}`, 200},
		{db.RoleAdmin, "DELETE", "/api/v1/webhooks/1", "", 204},
		{db.RoleOperator, "DELETE", "/api/v1/alert-rules/1", "", 204},
		{"", "GET", "/api/v1/alerts", "", 401},
	} {
		name := tt.method + " " + tt.path + " as " + tt.role
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
