package query

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	"SELECT * FROM devices",
	"SELECT * FROM devices WHERE tags.site = 'berlin' AND properties.reported.firmware < '2.1'",
	"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
	"SELECT TOP 3 DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
	"SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi'] OR deviceId NIN [1, true, null, -2.5e3, 0x1F]",
	"SELECT * FROM devices WHERE NOT (is_defined(a) OR STARTSWITH(deviceId, \"x\\\"y\")) AND tags['my key'] <> tags.[[group]].name",
	`SELECT * FROM devices WHERE a = '\u00e9\uD83D\uDE00\n' AND [[select]] >= 1e300 AND ENDS_WITH(b, c) AND CONTAINS(d, '')`,
	"SELECT * FROM devices\nWHERE (((a))) AND NOT NOT b",
	"SELECT * FROM devices WHERE tags.site = 'berlin' AN x",
	"SELECT a, COUNT() FROM devices GROUP BY b",
	"SELECT * FROM devices WHERE a = 'unterminated",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	doc := device(f, berlin)
	f.Fuzz(func(t *testing.T, src string) {
		q, err := Parse(src)
		if err != nil {
			checkError(t, src, err)
			return
		}
		printed := q.String()
		if len(printed) > MaxLength {
			return // the canonical form spells some things longer (", " in lists, 1e+300)
		}
		again, err := Parse(printed)
		if err != nil {
			t.Fatalf("%q parsed, printed as %q, which does not parse: %v", src, printed, err)
		}
		if !reflect.DeepEqual(again, q) {
			t.Fatalf("%q printed as %q parses to another query:\n%#v\n%#v", src, printed, again, q)
		}
		if q.Match(doc) {
			if q.Aggregate() {
				g := q.NewGrouper()
				g.Add(doc)
				g.Rows()
			} else {
				q.Project(doc)
			}
		}
		for _, d := range []Dialect{SQLite, PostgreSQL} {
			if _, _, err := q.SQL(d, testMapper); err != nil {
				t.Fatalf("%q: SQL: %v", src, err)
			}
		}
	})
}

func FuzzParseCondition(f *testing.F) {
	for _, s := range fuzzSeeds {
		if _, w, ok := strings.Cut(s, "WHERE "); ok {
			f.Add(w)
		}
	}
	doc := device(f, berlin)
	f.Fuzz(func(t *testing.T, src string) {
		c, err := ParseCondition(src)
		if err != nil {
			checkError(t, src, err)
			return
		}
		printed := c.String()
		if len(printed) > MaxLength {
			return
		}
		again, err := ParseCondition(printed)
		if err != nil {
			t.Fatalf("%q parsed, printed as %q, which does not parse: %v", src, printed, err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("%q printed as %q parses to another condition", src, printed)
		}
		c.Match(doc)
		if _, _, err := CondSQL(c, SQLite, testMapper); err != nil {
			t.Fatalf("%q: SQL: %v", src, err)
		}
	})
}

// checkError checks that err is an *Error whose position is in src (or
// just past its end), consistent in line, column and byte offset.
func checkError(t *testing.T, src string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%q: error %T %v is not a *query.Error", src, err, err)
	}
	if e.Offset < 0 || e.Offset > len(src) {
		t.Fatalf("%q: error offset %d outside the query: %v", src, e.Offset, err)
	}
	lines := strings.Split(src, "\n")
	if e.Line < 1 || e.Line > len(lines) {
		t.Fatalf("%q: error line %d of %d: %v", src, e.Line, len(lines), err)
	}
	if n := utf8.RuneCountInString(lines[e.Line-1]); e.Column < 1 || e.Column > n+1 {
		t.Fatalf("%q: error column %d, line %d has %d characters: %v", src, e.Column, e.Line, n, err)
	}
	before := src[:e.Offset]
	if strings.Count(before, "\n")+1 != e.Line {
		t.Fatalf("%q: offset %d is not on line %d", src, e.Offset, e.Line)
	}
	if e.Msg == "" || !strings.Contains(err.Error(), "column") {
		t.Fatalf("%q: error without a message or a column: %q", src, err)
	}
}
