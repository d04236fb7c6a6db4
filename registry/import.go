package registry

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/storage"
)

// Bounds of a bulk import.
const (
	MaxImportBytes = 16 << 20
	MaxImportRows  = 20_000
	// MaxImportErrors is how many row errors an import reports; the count
	// says how many there were in all.
	MaxImportErrors = 200
)

// ActionImport is the one audit entry of an import, with its counts.
const ActionImport = "device.import"

// ImportColumns are the columns of an import file, in any order after a
// header row, their names in any letter case; only id is required. The
// credential columns (CredentialColumns) are an admin export's.
var ImportColumns = []string{"id", "name", "tags", "enabled", "authentication", "primaryKey", "secondaryKey",
	"primaryThumbprint", "secondaryThumbprint"}

// CredentialColumns are the import columns that give a device's own
// credentials; a row that leaves them all empty gets fresh keys when new
// and keeps its own otherwise.
var CredentialColumns = ImportColumns[4:]

// ExportOnlyColumns are columns of an export that an import reads past:
// what the hub knows of a device, not what a file can set.
var ExportOnlyColumns = []string{"status", "lastActivity"}

// columnList names the columns an import file may have, for errors.
const columnList = "id, name, tags, enabled, authentication, primaryKey, secondaryKey, primaryThumbprint, secondaryThumbprint (and an export's status and lastActivity, which are read past)"

// RowError is what is wrong with one row of an import file.
type RowError struct {
	Row     int    `json:"row"`    // 1-based line of the file, the header being row 1
	Column  string `json:"column"` // the column's name; "" for the row as a whole
	Message string `json:"message"`
}

func (e RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Message)
	}
	return fmt.Sprintf("row %d, column %s: %s", e.Row, e.Column, e.Message)
}

// ImportFile is a parsed import file: the devices of its valid rows, the
// row each came from, and the errors of the others.
type ImportFile struct {
	Devices   []db.ImportDevice
	Rows      []int // the file row of each device
	Errors    []RowError
	ErrorRows int // rows with an error, of which Errors lists at most MaxImportErrors
}

// ImportLimitError refuses a file beyond the bounds, or one that is not
// CSV at all; the API answers 413 or 422 with its message.
type ImportLimitError struct {
	TooLarge bool
	Reason   string
}

func (e *ImportLimitError) Error() string { return e.Reason }

// ParseImport reads an import file: CSV (comma-separated, RFC 4180 quotes,
// UTF-8, an optional byte order mark) with a header row naming the columns
// (ImportColumns); tags are k=v;k=v (a backslash escapes ';', '=' and
// itself, as an export writes them); enabled is true or false (also
// yes/no, 1/0; empty means true); authentication is sas (or empty),
// selfSigned or certificateAuthority. A row's mistakes are RowErrors; a
// file that is too large or has no usable header is an *ImportLimitError.
func ParseImport(r io.Reader) (ImportFile, error) {
	limited := &io.LimitedReader{R: r, N: MaxImportBytes + 1}
	br := bufio.NewReader(limited)
	if bom, _ := br.Peek(3); string(bom) == "\uFEFF" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var f ImportFile
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return f, &ImportLimitError{Reason: "the file is empty; it needs a header row: id,name,tags,enabled"}
		}
		return f, &ImportLimitError{Reason: "the header row is not CSV: " + csvReason(err)}
	}
	cols := map[string]int{}
	for i, raw := range header {
		name, ok := column(strings.TrimSpace(raw))
		if !ok {
			return f, &ImportLimitError{Reason: fmt.Sprintf("column %d of the header is %q; the columns are %s", i+1, clip(strings.TrimSpace(raw), 40), columnList)}
		}
		if _, dup := cols[name]; dup {
			return f, &ImportLimitError{Reason: fmt.Sprintf("the header names column %s twice", name)}
		}
		cols[name] = i
	}
	if _, ok := cols["id"]; !ok {
		return f, &ImportLimitError{Reason: "the header has no id column; the columns are " + columnList}
	}
	withCredentials := false
	for _, name := range CredentialColumns {
		if _, ok := cols[name]; ok {
			withCredentials = true
		}
	}
	seen := map[string]int{}
	fail := func(row int, col, format string, args ...any) {
		f.ErrorRows++
		if len(f.Errors) < MaxImportErrors {
			f.Errors = append(f.Errors, RowError{Row: row, Column: col, Message: fmt.Sprintf(format, args...)})
		}
	}
	rows := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			if pe.Err == csv.ErrQuote || pe.Err == csv.ErrBareQuote {
				// The rest of the file is inside one broken field: stop here.
				fail(pe.StartLine, "", "%s", csvReason(err))
				break
			}
			fail(pe.StartLine, "", "%s", csvReason(err))
			continue
		}
		if err != nil {
			return f, &ImportLimitError{Reason: "the file could not be read: " + err.Error()}
		}
		line, _ := cr.FieldPos(0)
		rows++
		if rows > MaxImportRows {
			return f, &ImportLimitError{TooLarge: true, Reason: fmt.Sprintf("the file has more than %d rows; split it", MaxImportRows)}
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			rows--
			continue // a blank line
		}
		if len(rec) != len(header) {
			fail(line, "", "has %d columns; the header has %d", len(rec), len(header))
			continue
		}
		field := func(name string) string {
			if i, ok := cols[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		dev, bad := db.ImportDevice{DeviceID: field("id"), Name: field("name"), Enabled: true}, false
		for _, name := range ImportColumns {
			if i, ok := cols[name]; ok && !utf8.ValidString(rec[i]) {
				fail(line, name, "is not UTF-8 text")
				bad = true
			}
		}
		if bad {
			continue
		}
		if err := db.ValidateDeviceID(dev.DeviceID); err != nil {
			fail(line, "id", "%s", invalidReason(err))
			continue
		}
		if first, dup := seen[dev.DeviceID]; dup {
			fail(line, "id", "device %s is on row %d already", dev.DeviceID, first)
			continue
		}
		seen[dev.DeviceID] = line
		if n := utf8.RuneCountInString(dev.Name); len(dev.Name) > 200 {
			fail(line, "name", "is %d characters long; at most 200 are allowed", n)
			continue
		}
		var err2 error
		if dev.Tags, err2 = ParseImportTags(field("tags")); err2 != nil {
			fail(line, "tags", "%s", err2.Error())
			continue
		}
		switch strings.ToLower(field("enabled")) {
		case "", "true", "yes", "1":
		case "false", "no", "0":
			dev.Enabled = false
		default:
			fail(line, "enabled", "is %q; write true or false", clip(field("enabled"), 20))
			continue
		}
		if withCredentials {
			c, col, err := importCredentials(field)
			if err != nil {
				fail(line, col, "%s", invalidReason(err))
				continue
			}
			dev.Credentials = c
		}
		f.Devices = append(f.Devices, dev)
		f.Rows = append(f.Rows, line)
	}
	if limited.N == 0 {
		// The reader stopped the CSV reader one byte past the bound.
		return f, &ImportLimitError{TooLarge: true, Reason: fmt.Sprintf("the file is larger than %d MB; split it", MaxImportBytes>>20)}
	}
	return f, nil
}

// column is the canonical name of a header's column, in any letter case;
// ok is false for a column an import does not know.
func column(name string) (string, bool) {
	for _, c := range ImportColumns {
		if strings.EqualFold(c, name) {
			return c, true
		}
	}
	for _, c := range ExportOnlyColumns {
		if strings.EqualFold(c, name) {
			return c, true
		}
	}
	return "", false
}

// importCredentials reads a row's credential columns: nil when they are all
// empty; else the credentials, checked, or the error and its column.
func importCredentials(field func(string) string) (*db.ImportCredentials, string, error) {
	// Empty columns, or sas without keys: fresh keys for a new device, its
	// own kept by an existing one.
	empty := true
	for _, name := range CredentialColumns {
		if v := field(name); v != "" && (name != "authentication" || !strings.EqualFold(v, auth.AuthSAS)) {
			empty = false
		}
	}
	if empty {
		return nil, "", nil
	}
	typ := field("authentication")
	for _, t := range []string{auth.AuthSAS, auth.AuthSelfSigned, auth.AuthCertificateAuthority} {
		if strings.EqualFold(typ, t) {
			typ = t
		}
	}
	c := db.ImportCredentials{
		Auth: db.Authentication{Type: typ, PrimaryThumbprint: field("primaryThumbprint"),
			SecondaryThumbprint: field("secondaryThumbprint")},
		PrimaryKey: field("primaryKey"), SecondaryKey: field("secondaryKey"),
	}
	c, err := c.Check()
	if err != nil {
		col := "authentication"
		var inv *storage.InvalidError
		if errors.As(err, &inv) {
			if name, ok := column(inv.Field); ok {
				col = name
			}
		}
		return nil, col, err
	}
	return &c, "", nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// csvReason is a CSV error without the line, which the row error carries.
func csvReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		switch pe.Err {
		case csv.ErrQuote:
			return `a quoted field is not closed, or a quote inside it is not doubled ("")`
		case csv.ErrBareQuote:
			return `a quote (") inside a field that is not quoted; quote the field and double the quote`
		}
		return pe.Err.Error()
	}
	return err.Error()
}

func invalidReason(err error) string {
	var inv *storage.InvalidError
	if errors.As(err, &inv) {
		return inv.Reason // the column is the row error's own
	}
	return err.Error()
}

// ParseImportTags reads k=v;k=v as an export writes it (db.FormatTagList:
// a backslash escapes ';', '=' and itself), with the registry's rules for
// tags. Spaces around keys and values are dropped (hand-written files put
// them after ';'), and so is a ';' at either end.
func ParseImportTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	parsed, err := db.ParseTagList(strings.Trim(strings.TrimSpace(s), ";"))
	if err != nil {
		var inv *storage.InvalidError
		if errors.As(err, &inv) && strings.HasSuffix(inv.Reason, "is not key=value") {
			return nil, fmt.Errorf("%s (tags are written k=v;k=v)", inv.Reason)
		}
		return nil, errors.New(invalidReason(err))
	}
	for k, v := range parsed {
		k = strings.TrimSpace(k)
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("tag %q is given twice", clip(k, 40))
		}
		tags[k] = strings.TrimSpace(v)
	}
	if _, empty := tags[""]; empty {
		return nil, errors.New("a tag has no name (tags are written k=v;k=v)")
	}
	return tags, nil
}

// ImportSummary is what an import did or, dry, would do.
type ImportSummary struct {
	db.ImportResult
	DryRun bool
}

// Import applies a parsed import file on behalf of actor, in one
// transaction: every device or none. With dryRun it only says what would
// change. The audit log gets one entry for the whole import, with its
// counts: 10,000 entries for one file would bury everything else (and the
// file itself is the list). Devices whose enabled flag changed are
// announced live, and every updated device's connection is rechecked.
func (r *Registry) Import(ctx context.Context, actor string, f ImportFile, dryRun bool) (ImportSummary, error) {
	res, err := r.cfg.Store.ImportDevices(ctx, f.Devices, dryRun)
	if err != nil {
		return ImportSummary{}, err
	}
	if dryRun {
		return ImportSummary{ImportResult: res, DryRun: true}, nil
	}
	detail := fmt.Sprintf("%d created, %d updated, %d unchanged", res.Created, res.Updated, res.Unchanged)
	if n := len(res.CredentialsChanged); n > 0 {
		detail += fmt.Sprintf("; credentials of %d replaced", n)
	}
	r.audit(ctx, actor, ActionImport, fmt.Sprintf("%d devices", len(f.Devices)), detail)
	for i, dev := range f.Devices {
		if res.Actions[i] == db.ImportUpdate {
			r.recheck(dev.DeviceID)
		}
	}
	now := r.cfg.Now()
	for _, id := range res.EnabledChanged {
		if d, err := r.cfg.Store.Device(ctx, id); err == nil {
			r.announce(id, d.Status(now))
		}
	}
	return ImportSummary{ImportResult: res}, nil
}
