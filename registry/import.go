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
// header row; only id is required.
var ImportColumns = []string{"id", "name", "tags", "enabled"}

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
// id, name, tags and enabled; tags are k=v;k=v; enabled is true or false
// (also yes/no, 1/0; empty means true). A row's mistakes are RowErrors; a
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
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		if !known(name) {
			return f, &ImportLimitError{Reason: fmt.Sprintf("column %d of the header is %q; the columns are id, name, tags and enabled", i+1, clip(name, 40))}
		}
		if _, dup := cols[name]; dup {
			return f, &ImportLimitError{Reason: fmt.Sprintf("the header names column %s twice", name)}
		}
		cols[name] = i
	}
	if _, ok := cols["id"]; !ok {
		return f, &ImportLimitError{Reason: "the header has no id column; the columns are id, name, tags and enabled"}
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
		if dev.Tags, err2 = parseImportTags(field("tags")); err2 != nil {
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
		f.Devices = append(f.Devices, dev)
		f.Rows = append(f.Rows, line)
	}
	if limited.N == 0 {
		// The reader stopped the CSV reader one byte past the bound.
		return f, &ImportLimitError{TooLarge: true, Reason: fmt.Sprintf("the file is larger than %d MB; split it", MaxImportBytes>>20)}
	}
	return f, nil
}

func known(col string) bool {
	for _, c := range ImportColumns {
		if c == col {
			return true
		}
	}
	return false
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

// parseImportTags reads k=v;k=v, with the registry's rules for tags.
func parseImportTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	if s == "" {
		return tags, nil
	}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not key=value (tags are written k=v;k=v)", clip(part, 40))
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("tag %q is given twice", clip(k, 40))
		}
		tags[k] = v
	}
	// The registry's own rules (length, count, characters), said its way.
	s2 := make([]string, 0, len(tags))
	for k, v := range tags {
		s2 = append(s2, k+"="+v)
	}
	if _, err := db.ParseTags(strings.Join(s2, ",")); err != nil {
		return nil, errors.New(invalidReason(err))
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
	r.audit(ctx, actor, ActionImport, fmt.Sprintf("%d devices", len(f.Devices)),
		fmt.Sprintf("%d created, %d updated, %d unchanged", res.Created, res.Updated, res.Unchanged))
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
