package handlers_test

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"fieldhub/db"
)

// TestPoliciesPage: admins list, add, reveal (audited), rotate and remove
// shared access policies; keys appear only when asked; forms need the CSRF
// token; operators are refused.
func TestPoliciesPage(t *testing.T) {
	h := newPageHub(t)
	h.addUser("root", db.RoleAdmin, "correct horse battery")
	h.addUser("op", db.RoleOperator, "correct horse battery")
	b := h.browser()
	b.login("root", "correct horse battery")

	p := b.get("/policies")
	if p.status != 200 || !strings.Contains(p.body, `data-testid="policies-empty"`) || !strings.Contains(p.body, `href="/policies"`) {
		t.Fatalf("empty page: %d\n%s", p.status, p.body)
	}
	csrf := b.csrf("/policies")
	if p := b.post("/policies", url.Values{"name": {"backend"}, "rights": {"registryWrite", "serviceConnect"}}); p.status != 403 {
		t.Errorf("add without CSRF: %d", p.status)
	}
	p = b.post("/policies", url.Values{"_csrf": {csrf}, "name": {"backend"}, "rights": {"registryWrite", "serviceConnect"}})
	if p.status != 303 || p.location != "/policies" {
		t.Fatalf("add: %d %s", p.status, p.location)
	}
	pol, err := h.db.Policy(context.Background(), "backend")
	if err != nil || pol.Rights != db.RightRegistryRead|db.RightRegistryWrite|db.RightServiceConnect {
		t.Fatalf("stored policy = %+v, %v", pol, err)
	}
	p = b.get("/policies")
	if !strings.Contains(p.body, `data-policy="backend"`) || !strings.Contains(p.body, "registryRead, registryWrite, serviceConnect") {
		t.Errorf("list lacks the policy:\n%s", p.body)
	}
	if strings.Contains(p.body, pol.PrimaryKey) || strings.Contains(p.body, pol.SecondaryKey) {
		t.Error("the list shows a key before it is asked for")
	}
	for name, form := range map[string]url.Values{
		"taken name":  {"name": {"backend"}, "rights": {"registryRead"}},
		"no right":    {"name": {"other"}},
		"bad name":    {"name": {"a b"}, "rights": {"registryRead"}},
		"wrong right": {"name": {"other"}, "rights": {"root"}},
	} {
		form.Set("_csrf", csrf)
		if p := b.post("/policies", form); p.status != 422 || !strings.Contains(p.body, `data-testid="policy-error"`) {
			t.Errorf("%s: %d", name, p.status)
		}
	}

	p = b.get("/policies/backend/connection-string")
	want := "HostName=localhost:8443;SharedAccessKeyName=backend;SharedAccessKey=" + pol.PrimaryKey
	if p.status != 200 || !strings.Contains(p.body, want) || !strings.Contains(p.body, pol.SecondaryKey) || p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("connection strings: %d %q\n%s", p.status, want, p.body)
	}
	p = b.post("/policies/backend/rotate", url.Values{"_csrf": {csrf}, "which": {"secondary"}})
	if p.status != 303 {
		t.Errorf("rotate: %d", p.status)
	}
	if rot, _ := h.db.Policy(context.Background(), "backend"); rot.SecondaryKey == pol.SecondaryKey || rot.PrimaryKey != pol.PrimaryKey {
		t.Error("rotate secondary did not replace only the secondary key")
	}
	if p := b.post("/policies/backend/rotate", url.Values{"_csrf": {csrf}, "which": {"third"}}); p.status != 303 {
		t.Errorf("rotate an unknown key: %d", p.status)
	}
	if p := b.post("/policies/backend/delete", url.Values{"_csrf": {csrf}}); p.status != 303 {
		t.Errorf("delete: %d", p.status)
	}
	if _, err := h.db.Policy(context.Background(), "backend"); err == nil {
		t.Error("the policy was not removed")
	}
	if p := b.get("/policies/backend/connection-string"); p.status != 404 {
		t.Errorf("connection string of a removed policy: %d", p.status)
	}

	entries, err := h.db.AuditEntries(context.Background(), db.AuditFilter{Actor: "user:root", Action: "policy.", Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action)
	}
	if strings.Join(got, ",") != "policy.delete,policy.rotate-key,policy.reveal,policy.create" {
		t.Errorf("audit = %v", got)
	}

	op := h.browser()
	op.login("op", "correct horse battery")
	if p := op.get("/policies"); p.status != 403 {
		t.Errorf("operator on the page: %d", p.status)
	}
	if p := op.get("/policies/backend/connection-string"); p.status != 403 {
		t.Errorf("operator asking for keys: %d", p.status)
	}
	if regexp.MustCompile(`href="/policies"`).MatchString(op.get("/devices").body) {
		t.Error("operators see the Policies link")
	}
}
