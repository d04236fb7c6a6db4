package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/registry"
)

func TestParseImport(t *testing.T) {
	file := "\uFEFFid,name,tags,enabled\n" +
		"pump-1,Pump one,site=berlin;floor=2,true\n" +
		`"pump-2","Pump, two",site=paris,no` + "\n" +
		"\n" +
		"bad id,x,,\n" +
		"pump-3,,site,true\n" +
		"pump-4,,,maybe\n" +
		"pump-1,again,,\n" +
		"pump-5,,a=1;a=2,\n" +
		"pump-6,too,many,columns,here\n" +
		"pump-7,,,FALSE\n" +
		"pump-8," + strings.Repeat("n", 201) + ",,\n" +
		"pump-9,\"multi\nline\",,\n"
	f, err := registry.ParseImport(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range f.Devices {
		ids = append(ids, fmt.Sprintf("%s/%s/%v/%v", d.DeviceID, d.Name, db.FormatTags(d.Tags), d.Enabled))
	}
	want := []string{"pump-1/Pump one/floor=2, site=berlin/true", "pump-2/Pump, two/site=paris/false", "pump-7///false", "pump-9/multi\nline//true"}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("devices:\n got %q\nwant %q", ids, want)
	}
	if fmt.Sprint(f.Rows) != "[2 3 11 13]" {
		t.Errorf("rows = %v, want [2 3 11 13]", f.Rows)
	}
	wantErrors := []struct {
		row      int
		column   string
		contains string
	}{
		{5, "id", "contains ' '"},
		{6, "tags", `"site" is not key=value`},
		{7, "enabled", `"maybe"; write true or false`},
		{8, "id", "pump-1 is on row 2 already"},
		{9, "tags", `tag "a" is given twice`},
		{10, "", "has 5 columns; the header has 4"},
		{12, "name", "201 characters"},
	}
	if len(f.Errors) != len(wantErrors) || f.ErrorRows != len(wantErrors) {
		t.Fatalf("errors = %v", f.Errors)
	}
	for i, w := range wantErrors {
		e := f.Errors[i]
		if e.Row != w.row || e.Column != w.column || !strings.Contains(e.Message, w.contains) {
			t.Errorf("error %d = %+v, want row %d column %q about %q", i, e, w.row, w.column, w.contains)
		}
	}
}

// TestParseImportCredentials: the columns of an admin export (keys,
// authentication, thumbprints, and the status and lastActivity an import
// reads past) in any letter case; escaped tags as an export writes them.
func TestParseImportCredentials(t *testing.T) {
	key1, key2 := db.NewDeviceKey(), db.NewDeviceKey()
	thumb := strings.Repeat("ab", 20)
	file := "id,name,tags,enabled,status,lastActivity,Authentication,primaryKey,SECONDARYKEY,primaryThumbprint,secondaryThumbprint\n" +
		"sas-1,,a\\;b=x\\=y;c=d,true,online,2026-01-01T00:00:00Z,sas," + key1 + "," + key2 + ",,\n" +
		"x509-1,,,false,disabled,,selfSigned,,," + thumb + ",\n" +
		"plain-1,,,true,,,,,,,\n" +
		"bad-1,,,true,,,sas," + key1 + ",,,\n" +
		"bad-2,,,true,,,sas,notbase64!," + key2 + ",,\n" +
		"bad-3,,,true,,,selfSigned," + key1 + "," + key2 + "," + thumb + ",\n" +
		"plain-2,,,true,,,SAS,,,,\n" +
		"bad-5,,,true,,,kerberos,,,,\n" +
		"bad-6,,,true,,,selfSigned,,,zz,\n"
	f, err := registry.ParseImport(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Devices) != 4 {
		t.Fatalf("devices = %+v, errors %v", f.Devices, f.Errors)
	}
	sas, x509, plain := f.Devices[0], f.Devices[1], f.Devices[2]
	if c := sas.Credentials; c == nil || c.Auth.Type != "sas" || c.PrimaryKey != key1 || c.SecondaryKey != key2 {
		t.Errorf("sas-1 credentials = %+v", c)
	}
	if fmt.Sprint(sas.Tags) != "map[a;b:x=y c:d]" {
		t.Errorf("sas-1 tags = %q, want the escaped ';' and '=' read back", sas.Tags)
	}
	if c := x509.Credentials; c == nil || c.Auth.Type != "selfSigned" || c.Auth.PrimaryThumbprint != strings.ToUpper(thumb) || c.PrimaryKey != "" {
		t.Errorf("x509-1 credentials = %+v", c)
	}
	if x509.Enabled {
		t.Errorf("x509-1 is enabled; the file says false")
	}
	for _, d := range []db.ImportDevice{plain, f.Devices[3]} {
		if d.Credentials != nil {
			t.Errorf("%s (no keys) credentials = %+v, want none: fresh keys", d.DeviceID, d.Credentials)
		}
	}
	wantErrors := []struct {
		row      int
		column   string
		contains string
	}{
		{5, "primaryKey", "needs both keys"},
		{6, "primaryKey", "not base64"},
		{7, "primaryKey", "has no keys"},
		{9, "authentication", `unknown authentication type "kerberos"`},
		{10, "authentication", "primary"},
	}
	if len(f.Errors) != len(wantErrors) {
		t.Fatalf("errors = %v", f.Errors)
	}
	for i, w := range wantErrors {
		e := f.Errors[i]
		if e.Row != w.row || e.Column != w.column || !strings.Contains(e.Message, w.contains) {
			t.Errorf("error %d = %+v, want row %d column %q about %q", i, e, w.row, w.column, w.contains)
		}
	}
}

func TestParseImportRefusesTheFile(t *testing.T) {
	tests := []struct {
		name, file string
		tooLarge   bool
		contains   string
	}{
		{"empty", "", false, "empty"},
		{"no id column", "name,tags\nx,y\n", false, "no id column"},
		{"unknown column", "id,colour\nx,red\n", false, `"colour"`},
		{"twice", "id,id\nx,y\n", false, "twice"},
		{"too many rows", "id\n" + strings.Repeat("d\n", registry.MaxImportRows+1), true, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registry.ParseImport(strings.NewReader(tt.file))
			var le *registry.ImportLimitError
			if !errors.As(err, &le) || le.TooLarge != tt.tooLarge || !strings.Contains(le.Reason, tt.contains) {
				t.Errorf("err = %v, want ImportLimitError (too large %v) about %q", err, tt.tooLarge, tt.contains)
			}
		})
	}
	// A file past the byte bound is refused after reading one byte more, not all of it.
	big := &countingReader{r: io.MultiReader(strings.NewReader("id\n"), bytes.NewReader(bytes.Repeat([]byte("x\n"), 50<<20)))}
	_, err := registry.ParseImport(big)
	var le *registry.ImportLimitError
	if !errors.As(err, &le) || !le.TooLarge {
		t.Errorf("100 MB file: err = %v, want too large", err)
	}
	if big.n > registry.MaxImportBytes+64<<10 {
		t.Errorf("read %d bytes of a 100 MB file; the bound is %d", big.n, registry.MaxImportBytes)
	}
	// A quote left open swallows the rest of the file: one error, where it starts.
	f, err := registry.ParseImport(strings.NewReader("id,name\nok-1,x\nbad,\"open\nok-2,y\n"))
	if err != nil || len(f.Errors) != 1 || f.Errors[0].Row != 3 || !strings.Contains(f.Errors[0].Message, "quoted field") {
		t.Errorf("open quote: %+v, %v", f, err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzParseImport(f *testing.F) {
	f.Add("id,name,tags,enabled\npump-1,Pump,site=berlin;floor=2,true\n")
	f.Add("\uFEFFid\n\"a\"\"b\",\n")
	f.Add("tags,id\n\"k=v;x=\"\"y\"\"\",dev\r\n")
	f.Add("id,name\nx,\"open\n")
	f.Add("id,enabled\n\xff\xfe,1\n")
	f.Fuzz(func(t *testing.T, file string) {
		res, err := registry.ParseImport(strings.NewReader(file))
		if err != nil {
			var le *registry.ImportLimitError
			if !errors.As(err, &le) || le.Reason == "" {
				t.Fatalf("error %v is not an ImportLimitError with a reason", err)
			}
			return
		}
		if len(res.Devices) != len(res.Rows) || len(res.Errors) > res.ErrorRows || len(res.Errors) > registry.MaxImportErrors {
			t.Fatalf("inconsistent result %+v", res)
		}
		seen := map[string]bool{}
		for _, d := range res.Devices {
			// Every device the parser accepts is one the store accepts.
			if err := db.ValidateDeviceID(d.DeviceID); err != nil {
				t.Fatalf("accepted id %q: %v", d.DeviceID, err)
			}
			if _, err := db.ParseTags(db.FormatTags(d.Tags)); err != nil && len(d.Tags) > 0 {
				t.Fatalf("accepted tags %v: %v", d.Tags, err)
			}
			if seen[d.DeviceID] {
				t.Fatalf("device %q twice", d.DeviceID)
			}
			seen[d.DeviceID] = true
		}
		for _, e := range res.Errors {
			if e.Row < 1 || e.Message == "" {
				t.Fatalf("row error %+v", e)
			}
		}
	})
}

func TestImportAuditsOnceAndRechecks(t *testing.T) {
	ctx := context.Background()
	d := dbtest.MustOpen(t)
	reg := registry.New(registry.Config{Store: d, Audit: d})
	if _, err := reg.Create(ctx, "user:a", db.NewDevice{DeviceID: "old-1", Name: "Old"}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("id,name,tags,enabled\nold-1,Old,,false\n")
	for i := range 50 {
		fmt.Fprintf(&b, "new-%02d,New,site=x,true\n", i)
	}
	f, err := registry.ParseImport(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	dry, err := reg.Import(ctx, "user:a", f, true)
	if err != nil || dry.Created != 50 || dry.Updated != 1 || !dry.DryRun {
		t.Fatalf("dry run = %+v, %v", dry, err)
	}
	if _, err := d.Device(ctx, "new-00"); err == nil {
		t.Fatal("a dry run created a device")
	}
	sum, err := reg.Import(ctx, "user:a", f, false)
	if err != nil || sum.Created != 50 || sum.Updated != 1 || sum.Actions[0] != db.ImportUpdate {
		t.Fatalf("import = %+v, %v", sum, err)
	}
	old, _ := d.Device(ctx, "old-1")
	if old.Enabled || old.PrimaryKey == "" {
		t.Errorf("old-1 after import %+v: want disabled with its keys", old)
	}
	entries, _ := d.AuditEntries(ctx, db.AuditFilter{Limit: 100})
	n := 0
	for _, e := range entries {
		if e.Action == registry.ActionImport {
			n++
			if e.Detail != "50 created, 1 updated, 0 unchanged" {
				t.Errorf("detail %q", e.Detail)
			}
		}
	}
	if n != 1 || len(entries) != 2 {
		t.Errorf("%d import entries of %d; want one entry for the import beside the first create", n, len(entries))
	}
	again, _ := reg.Import(ctx, "user:a", f, true)
	if again.Unchanged != 51 {
		t.Errorf("the same file again: %+v, want 51 unchanged", again)
	}
}
