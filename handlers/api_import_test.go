package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
)

type importAnswer struct {
	DryRun, Applied                   bool
	Rows, Created, Updated            int
	Unchanged, ErrorRows, MoreDevices int
	Errors                            []struct {
		Row     int
		Column  string
		Message string
	}
	Devices []struct {
		Row    int
		ID     string
		Action string
	}
}

func (h *commandsHub) upload(role, query, csv string) (response, importAnswer) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/devices/import"+query, strings.NewReader(csv))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+h.tokens[role])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: body}
	var a importAnswer
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnprocessableEntity {
		_ = json.Unmarshal(body, &a)
	}
	return r, a
}

func TestImportAPI(t *testing.T) {
	h := queryHub(t) // q-00…q-24
	file := "id,name,tags,enabled\nq-00,Pump 0,site=berlin,false\nnew-1,New,site=x;floor=1,\nq-01,Pump 1,site=paris,true\n"
	resp, a := h.upload(db.RoleOperator, "?dryRun=true", file)
	if resp.status != http.StatusOK || !a.DryRun || a.Applied || a.Created != 1 || a.Updated != 1 || a.Unchanged != 1 {
		t.Fatalf("operator dry run: %d %s", resp.status, resp.body)
	}
	if a.Devices[0].ID != "q-00" || a.Devices[0].Action != "update" || a.Devices[1].Row != 3 || a.Devices[1].Action != "create" {
		t.Errorf("preview %+v", a.Devices)
	}
	if resp, _ := h.upload(db.RoleOperator, "", file); resp.status != http.StatusForbidden {
		t.Errorf("operator applies: %d", resp.status)
	}
	if resp, _ := h.upload(db.RoleViewer, "?dryRun=true", file); resp.status != http.StatusForbidden {
		t.Errorf("viewer previews: %d", resp.status)
	}
	resp, a = h.upload(db.RoleAdmin, "", file)
	if resp.status != http.StatusOK || !a.Applied || a.Created != 1 {
		t.Fatalf("admin applies: %d %s", resp.status, resp.body)
	}
	if d, err := h.db.Device(context.Background(), "q-00"); err != nil || d.Enabled {
		t.Errorf("q-00 after import: %+v, %v", d, err)
	}

	// A file with errors applies nothing and says where each is.
	resp, a = h.upload(db.RoleAdmin, "", "id,tags\nnew-2,site=y\nnew 3,\nnew-4,nokey\n")
	if resp.status != http.StatusUnprocessableEntity || a.Applied || a.ErrorRows != 2 {
		t.Fatalf("errors: %d %s", resp.status, resp.body)
	}
	if e := a.Errors[0]; e.Row != 3 || e.Column != "id" {
		t.Errorf("first error %+v", e)
	}
	if e := a.Errors[1]; e.Row != 4 || e.Column != "tags" || !strings.Contains(e.Message, "key=value") {
		t.Errorf("second error %+v", e)
	}
	if _, err := h.db.Device(context.Background(), "new-2"); err == nil {
		t.Error("a file with errors created new-2")
	}
	for name, tt := range map[string]struct {
		file   string
		status int
	}{
		"malformed header": {"id,\"open\n", 422},
		"no id column":     {"name\nx\n", 422},
		"empty":            {"", 422},
	} {
		if resp, _ := h.upload(db.RoleAdmin, "", tt.file); resp.status != tt.status {
			t.Errorf("%s: %d %s, want %d", name, resp.status, resp.body, tt.status)
		}
	}
	if resp, _ := h.upload(db.RoleAdmin, "?dryRun=maybe", file); resp.status != http.StatusBadRequest {
		t.Errorf("dryRun=maybe: %d", resp.status)
	}

	// One audit entry for the import, none per device.
	entries, _ := h.db.AuditEntries(context.Background(), db.AuditFilter{Limit: 100})
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if fmt.Sprint(actions) != "[device.import]" {
		t.Errorf("audit = %v, want one device.import", actions)
	}
}

// TestImportUploadAttacks: a 100 MB upload is refused by its length before
// it is read, and one without a length after the bound; a multipart upload
// from the page works.
func TestImportUploadAttacks(t *testing.T) {
	h := queryHub(t)
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/devices/import", io.LimitReader(zeros{}, 100<<20))
	req.ContentLength = 100 << 20
	req.Header.Set("Authorization", "Bearer "+h.tokens[db.RoleAdmin])
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("100 MB with a length: %d", resp.StatusCode)
		}
	}
	// Chunked, no length: read up to the bound, then refused.
	body := io.MultiReader(strings.NewReader("id\n"), io.LimitReader(repeat("dev-x\n"), 100<<20))
	req, _ = http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/devices/import?dryRun=true", body)
	req.Header.Set("Authorization", "Bearer "+h.tokens[db.RoleAdmin])
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("100 MB chunked: %d %s", resp.StatusCode, b)
		}
	}

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "fleet.csv")
	fmt.Fprint(fw, "id,name\nform-1,From the page\n")
	mw.Close()
	req, _ = http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/devices/import", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+h.tokens[db.RoleAdmin])
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d, err := h.db.Device(context.Background(), "form-1"); resp.StatusCode != http.StatusOK || err != nil || d.Name != "From the page" {
		t.Errorf("multipart: %d, %+v, %v", resp.StatusCode, d, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type repeater struct {
	s string
	i int
}

func repeat(s string) io.Reader { return &repeater{s: s} }

func (r *repeater) Read(p []byte) (int, error) {
	for n := range p {
		p[n] = r.s[r.i%len(r.s)]
		r.i++
	}
	return len(p), nil
}

// BenchmarkImport10k is issue 13's import figure: a CSV of 10,000 new
// devices through POST /api/v1/devices/import, parsed, checked and
// applied in one transaction (keys made for each), and its dry run.
func BenchmarkImport10k(b *testing.B) {
	r := testkit.NewRouter(b)
	post := func(query, csv string) {
		req, _ := http.NewRequest(http.MethodPost, r.URL+"/api/v1/devices/import"+query, strings.NewReader(csv))
		req.Header.Set("Authorization", "Bearer "+r.Tokens[db.RoleAdmin])
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	file := func(run int) string {
		var sb strings.Builder
		sb.WriteString("id,name,tags,enabled\n")
		for i := range 10_000 {
			fmt.Fprintf(&sb, "run%d-dev-%05d,Pump %d,site=s%d;floor=%d;line=L%d,true\n", run, i, i, i%20, i%12, i%40)
		}
		return sb.String()
	}
	var dry time.Duration
	run := 0
	for b.Loop() {
		f := file(run)
		run++
		start := time.Now()
		post("?dryRun=true", f)
		dry += time.Since(start)
		post("", f)
	}
	b.ReportMetric((b.Elapsed()-dry).Seconds()/float64(b.N), "s/import")
	b.ReportMetric(dry.Seconds()/float64(b.N), "s/dry-run")
}

// TestExportWithKeysRoundTrips: an admin's export with keys, imported into
// another hub, recreates the fleet (names, tags with the separators the
// tag list escapes, enabled, SAS keys, X.509 registrations), and devices
// sign in there with their old connection strings; imported again into
// the hub it came from, it changes nothing. Operators and viewers may not
// export keys, and the export is audited with its count.
func TestExportWithKeysRoundTrips(t *testing.T) {
	ctx := context.Background()
	from := queryHub(t) // q-00…q-24
	odd := []db.NewDevice{
		{DeviceID: "odd,1", Name: "Comma, \"quote\"\nand a line", Tags: map[string]string{"k;1": "a=b;c", "path": `C:\data`}},
		{DeviceID: "self-1", Auth: db.Authentication{Type: auth.AuthSelfSigned, PrimaryThumbprint: strings.Repeat("AB", 32),
			SecondaryThumbprint: strings.Repeat("CD", 20)}},
		{DeviceID: "ca-1", Auth: db.Authentication{Type: auth.AuthCertificateAuthority}},
	}
	for _, nd := range odd {
		if _, err := from.db.CreateDevice(ctx, nd); err != nil {
			t.Fatal(err)
		}
	}
	off := false
	if _, err := from.db.UpdateDevice(ctx, "q-03", db.DeviceUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}

	for _, role := range []string{db.RoleOperator, db.RoleViewer} {
		if r := from.call(role, http.MethodGet, "/api/v1/devices?format=csv&keys=true", ""); r.status != http.StatusForbidden {
			t.Errorf("%s exports keys: %d %s", role, r.status, r.body)
		}
	}
	if r := from.call(db.RoleAdmin, http.MethodGet, "/api/v1/devices?keys=true", ""); r.status != http.StatusBadRequest {
		t.Errorf("keys=true as JSON: %d, want 400", r.status)
	}
	plain := from.call(db.RoleOperator, http.MethodGet, "/api/v1/devices?format=csv", "")
	if plain.status != http.StatusOK || strings.Contains(string(plain.body), "primaryKey") {
		t.Fatalf("operator's export: %d %.200s", plain.status, plain.body)
	}
	export := from.call(db.RoleAdmin, http.MethodGet, "/api/v1/devices?format=csv&keys=true", "")
	if export.status != http.StatusOK || !strings.Contains(export.header.Get("Content-Disposition"), "with-keys") {
		t.Fatalf("admin's export: %d %v %.200s", export.status, export.header, export.body)
	}
	entries, err := from.db.AuditEntries(ctx, db.AuditFilter{Action: handlers.ActionExportKeys, Limit: 10})
	if err != nil || len(entries) != 1 || entries[0].Target != "28 devices" || entries[0].Actor != "token:admin-token" {
		t.Errorf("audit of the export = %+v, %v; want one entry for 28 devices by the admin's token", entries, err)
	}

	to := newCommandsHub(t, nil) // dev1, and none of the exported devices
	resp, a := to.upload(db.RoleAdmin, "", string(export.body))
	if resp.status != http.StatusOK || !a.Applied || a.Created != 28 {
		t.Fatalf("import of the export: %d %s", resp.status, resp.body)
	}
	want, _, err := from.db.Devices(ctx, db.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		got, err := to.db.Device(ctx, w.DeviceID)
		if err != nil {
			t.Errorf("%s was not imported: %v", w.DeviceID, err)
			continue
		}
		if got.Name != w.Name || fmt.Sprint(got.Tags) != fmt.Sprint(w.Tags) || got.Enabled != w.Enabled || got.Auth != w.Auth ||
			got.PrimaryKey != w.PrimaryKey || got.SecondaryKey != w.SecondaryKey {
			t.Errorf("%s imported as %+v\nwant %+v", w.DeviceID, got, w)
		}
	}
	// q-00's connection string works on the new hub: its SAS token verifies.
	if r := to.deviceCall("q-00", http.MethodGet, "/devices/q-00/messages/deviceBound?api-version=2020-09-30"); r.status >= 400 {
		t.Errorf("q-00 with its old key on the new hub: %d %s", r.status, r.body)
	}

	resp, a = from.upload(db.RoleAdmin, "", string(export.body))
	if resp.status != http.StatusOK || a.Unchanged != 28 || a.Created+a.Updated != 0 {
		t.Errorf("the export imported where it came from: %d %s; want all unchanged", resp.status, resp.body)
	}
}
