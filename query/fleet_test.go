package query

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// testDevice is a device as a store holds it: scalar columns, JSON columns
// as text (NULL when nil), and the document the evaluator gets for it,
// decoded from the same text.
type testDevice struct {
	id, name, status, conn string
	online                 *bool
	lastActivity           *string
	version                *int64 // reported $version, its own column
	tags, desired          *string
	reported               *string
	doc                    map[string]any
}

// jsonValues are JSON texts of values that compare in every interesting
// way: equal under different spellings (1, 1.0, 1e0; "berlin",
// "\u0062erlin"), numbers as strings, strings that order differently by
// bytes and by collation, escapes, and non-primitives.
var jsonValues = []string{
	`"berlin"`, `"Berlin"`, `"paris"`, `"\u0062erlin"`, `""`, `"5"`, `"2.1"`, `"2.0.1"`, `"10"`, `"Zürich"`, `"zurich"`,
	`"日本"`, `"😀"`, `"\uD83D\uDE00"`, `"a\"b"`, `"it's"`, `"back\\slash"`, `"tab\there"`, `"ü"`, `"z"`, `"Z"`,
	`"a"`, `"ab"`, `"b"`, `"a\u0000b"`, `"true"`, `"null"`,
	`0`, `-0`, `1`, `1.0`, `1e0`, `3`, `-3.5`, `5`, `10`, `2.1`, `0.1`, `1e21`, `123456789012`, `-7`,
	`true`, `false`, `null`,
	`{}`, `{"x": 1}`, `{"x": "berlin", "y": {"z": true}}`, `[]`, `[1, 2]`, `["berlin"]`,
}

// fieldNames are names below tags, desired and reported, including ones
// that SQL paths must quote.
var fieldNames = []string{"site", "floor", "n", "my key", `a"b`, "x.y", `back\slash`, "ü", "cfg", "list", "$x", "[0]"}

func randomObject(r *rand.Rand, noNUL bool, depth int) string {
	var parts []string
	for _, name := range fieldNames {
		if r.IntN(10) < 4 {
			continue
		}
		key, _ := json.Marshal(name)
		var v string
		if name == "cfg" && depth > 0 && r.IntN(3) > 0 {
			v = randomObject(r, noNUL, depth-1)
		} else {
			v = randomValue(r, noNUL)
		}
		parts = append(parts, string(key)+": "+v)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func randomValue(r *rand.Rand, noNUL bool) string {
	for {
		v := jsonValues[r.IntN(len(jsonValues))]
		if !noNUL || !strings.Contains(v, `\u0000`) {
			return v
		}
	}
}

// testFleet makes n devices, the same ones for the same seed. noNUL leaves
// out strings holding U+0000, which PostgreSQL's jsonb refuses.
func testFleet(t testing.TB, n int, seed uint64, noNUL bool) []testDevice {
	r := rand.New(rand.NewPCG(seed, 1))
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	fleet := make([]testDevice, n)
	for i := range fleet {
		d := &fleet[i]
		d.id = fmt.Sprintf("dev-%03d", i)
		d.name = pick("Pump 1", "pump 2", "Valve", "", "Zähler", "it's")
		d.status = pick("enabled", "disabled")
		d.conn = pick("Connected", "Disconnected")
		if r.IntN(4) > 0 {
			b := r.IntN(2) == 0
			d.online = &b
		}
		if r.IntN(4) > 0 {
			s := fmt.Sprintf("2024-05-%02dT%02d:00:00.000Z", 1+r.IntN(28), r.IntN(24))
			d.lastActivity = &s
		}
		obj := func() *string {
			if r.IntN(8) == 0 {
				return nil
			}
			s := randomObject(r, noNUL, 2)
			return &s
		}
		d.tags, d.desired, d.reported = obj(), obj(), obj()
		if d.reported != nil {
			v := int64(1 + r.IntN(5))
			d.version = &v
		}
		d.doc = d.document(t)
	}
	return fleet
}

// document builds the evaluator's view of d from its columns, as a store
// reading them would.
func (d *testDevice) document(t testing.TB) map[string]any {
	decode := func(s string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("test fleet: %v in %s", err, s)
		}
		return m
	}
	doc := map[string]any{"deviceId": d.id, "name": d.name, "status": d.status, "connectionState": d.conn}
	if d.online != nil {
		doc["online"] = *d.online
	}
	if d.lastActivity != nil {
		doc["lastActivityTime"] = *d.lastActivity
	}
	if d.tags != nil {
		doc["tags"] = decode(*d.tags)
	}
	props := map[string]any{}
	if d.desired != nil {
		props["desired"] = decode(*d.desired)
	}
	if d.reported != nil {
		rep := decode(*d.reported)
		rep["$version"] = float64(*d.version)
		props["reported"] = rep
	}
	doc["properties"] = props
	return doc
}

// testMapper maps the document onto the test table, both dialects alike.
var testMapper = FieldMapper{
	"deviceId":                     {Expr: "id", Type: String},
	"name":                         {Expr: "name", Type: String},
	"status":                       {Expr: "status", Type: String},
	"connectionState":              {Expr: "conn", Type: String},
	"online":                       {Expr: "online", Type: Bool},
	"lastActivityTime":             {Expr: "last_activity", Type: String},
	"tags":                         {Expr: "tags", Type: JSON},
	"properties.desired":           {Expr: "desired", Type: JSON},
	"properties.reported":          {Expr: "reported", Type: JSON},
	"properties.reported.$version": {Expr: "version", Type: Number},
}

// sqliteFleet writes the fleet into a table devs of a new SQLite file.
func sqliteFleet(t testing.TB, fleet []testDevice) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE devs (
		id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, conn TEXT NOT NULL, online INTEGER,
		last_activity TEXT, version INTEGER, tags TEXT, desired TEXT, reported TEXT)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare("INSERT INTO devs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range fleet {
		if _, err := stmt.Exec(d.id, d.name, d.status, d.conn, d.online, d.lastActivity, d.version, d.tags, d.desired, d.reported); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return db
}

// testFields are the fields random conditions use: mapped scalars, fields in
// JSON, names SQL paths must quote, objects, and fields nothing maps.
var testFields = []Path{
	{"deviceId"}, {"name"}, {"status"}, {"connectionState"}, {"online"}, {"lastActivityTime"},
	{"tags"}, {"tags", "site"}, {"tags", "floor"}, {"tags", "n"}, {"tags", "my key"}, {"tags", `a"b`},
	{"tags", "x.y"}, {"tags", `back\slash`}, {"tags", "ü"}, {"tags", "$x"}, {"tags", "[0]"}, {"tags", "cfg"},
	{"tags", "cfg", "site"}, {"tags", "cfg", "cfg", "n"}, {"tags", "list"}, {"tags", "site", "x"},
	{"properties"}, {"properties", "desired"}, {"properties", "desired", "floor"}, {"properties", "desired", "cfg", "n"},
	{"properties", "reported"}, {"properties", "reported", "site"}, {"properties", "reported", "n"},
	{"properties", "reported", "$version"}, {"properties", "reported", "cfg", "ü"}, {"properties", "foo"},
	{"foo"}, {"name", "x"},
}

var testLiterals = []any{
	"berlin", "Berlin", "paris", "", "5", "2.1", "2.0.1", "10", "Zürich", "zurich", "日本", "😀", `a"b`, "it's",
	`back\slash`, "ü", "z", "Z", "a", "ab", "b", "a\x01b", "Pump 1", "enabled", "Connected", "2024-05-10T00:00:00.000Z",
	0.0, 1.0, 3.0, -3.5, 5.0, 10.0, 2.1, 0.1, 1e21, 123456789012.0, -7.0, 2.0,
	true, false, nil,
}

// randomCond makes a random condition over testFields and testLiterals.
func randomCond(r *rand.Rand, depth int) Cond {
	operand := func() Operand {
		if r.IntN(4) == 0 {
			return Literal{Value: testLiterals[r.IntN(len(testLiterals))]}
		}
		return Field{Path: testFields[r.IntN(len(testFields))]}
	}
	field := func() Operand { return Field{Path: testFields[r.IntN(len(testFields))]} }
	n := 8
	if depth > 0 {
		n = 11
	}
	switch r.IntN(n) {
	case 0, 1, 2:
		return &Compare{Op: Op(1 + r.IntN(6)), Left: field(), Right: operand()}
	case 3:
		return &Compare{Op: Op(1 + r.IntN(6)), Left: operand(), Right: operand()}
	case 4:
		in := &In{Not: r.IntN(2) == 0, Operand: operand()}
		for range 1 + r.IntN(4) {
			in.Values = append(in.Values, Literal{Value: testLiterals[r.IntN(len(testLiterals))]})
		}
		return in
	case 5:
		f := Func(1 + r.IntN(int(Contains)))
		args := []Operand{operand()}
		if f.arity() == 2 {
			args = append(args, operand())
		}
		return &Call{Func: f, Args: args}
	case 6:
		return &Truth{Operand: operand()}
	case 7:
		return &Call{Func: StartsWith, Args: []Operand{field(), Literal{Value: testLiterals[r.IntN(23)]}}}
	case 8:
		return &Not{Cond: randomCond(r, depth-1)}
	case 9:
		return &And{Terms: []Cond{randomCond(r, depth-1), randomCond(r, depth-1), randomCond(r, depth-1)}}
	}
	return &Or{Terms: []Cond{randomCond(r, depth-1), randomCond(r, depth-1)}}
}
