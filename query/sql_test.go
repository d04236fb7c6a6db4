package query

import (
	"database/sql"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// equivalenceConds are conditions whose SQL is checked against the
// evaluator beside the random ones: each rule of the semantics at least once.
var equivalenceConds = []string{
	"tags.site = 'berlin'", // also "\u0062erlin"
	"tags.site != 'berlin'",
	"NOT tags.site = 'berlin'",
	"tags.site < 'b'",
	"tags.site >= 'Z'",
	"tags.site > 'zurich'", // 'Zürich' and '日本' by code point
	"tags.floor = 1",       // 1, 1.0 and 1e0
	"tags.floor > 2 AND tags.floor < 11",
	"tags.floor <= -0",
	"tags.floor = '5'",
	"tags.n = 5",
	"tags.n IN ['5', '10', 5]",
	"tags.n NIN ['5', '10']",
	"tags['my key'] = 'berlin'",
	`tags['a"b'] = 'a"b' OR tags['x.y'] = 'berlin' OR tags['back\\slash'] != 'x' OR tags.ü > 'a' OR tags.$x = 1 OR tags['[0]'] = true`,
	"tags.cfg.site = 'berlin'",
	"tags.cfg = 1",
	"tags.list = 1",
	"tags.site.x = 'berlin'",
	"properties.reported.site = properties.desired.site",
	"properties.reported.n < properties.desired.n",
	"properties.reported.$version > 2",
	"properties.reported.$version IN [1, 3]",
	"IS_DEFINED(properties.reported.$version)",
	"IS_DEFINED(properties.reported)",
	"IS_OBJECT(properties)",
	"IS_DEFINED(properties.foo)",
	"IS_NULL(tags.site) OR IS_BOOL(tags.floor) OR IS_NUMBER(tags.n)",
	"IS_STRING(tags.site) AND NOT IS_PRIMITIVE(tags.cfg)",
	"IS_ARRAY(tags.list) OR IS_OBJECT(tags.cfg)",
	"tags.site = null",
	"tags.site != null",
	"NOT IS_NULL(tags.site)",
	"tags.site IN [null, 'paris']",
	"tags.floor",
	"NOT tags.floor",
	"online",
	"NOT online",
	"online = true",
	"online != false",
	"online IN [true]",
	"lastActivityTime > '2024-05-15'",
	"NOT lastActivityTime > '2024-05-15'",
	"IS_DEFINED(lastActivityTime)",
	"IS_STRING(lastActivityTime)",
	"status = 'enabled' AND connectionState = 'Connected'",
	"deviceId IN ['dev-001', 'dev-002', 'nope']",
	"STARTS_WITH(tags.site, 'a')", // includes "a\u0000b"
	"ENDS_WITH(tags.site, 'b')",
	"CONTAINS(tags.site, '\\u0001') OR CONTAINS(tags.site, 'b')",
	"STARTS_WITH(tags.site, '')",
	"ENDS_WITH(tags.site, tags.n)",
	"CONTAINS(name, 'ump')",
	"STARTS_WITH(deviceId, tags.site)",
	"STARTS_WITH(tags.floor, '1')",
	"foo = 1 OR NOT foo = 1",
	"1 = 1 AND 'a' < 'b' AND NOT 1 = '1'",
	"(tags.site = 'paris' OR tags.floor = 3) AND NOT (properties.reported.n = '5' OR status = 'disabled')",
}

// triQuery runs the compiled condition as a column of every device and
// returns its values in fleet order: what the SQL says each device is.
type triQuery func(t *testing.T, where string, args []any) []tri

func checkEquivalent(t *testing.T, run triQuery, d Dialect, fleet []testDevice, c Cond) (outcomes map[tri]int) {
	t.Helper()
	where, args, err := CondSQL(c, d, testMapper)
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	got := run(t, where, args)
	if len(got) != len(fleet) {
		t.Fatalf("%s: %d rows, want %d", c, len(got), len(fleet))
	}
	outcomes = map[tri]int{}
	for i, dev := range fleet {
		want := c.eval(dev.doc)
		outcomes[want]++
		if got[i] != want {
			t.Fatalf("%s\non %s: SQL says %v, the evaluator %v\ndocument %#v\ntags %v\ndesired %v\nreported %v\nSQL %s\nargs %q",
				c, dev.id, got[i], want, dev.doc, str(dev.tags), str(dev.desired), str(dev.reported), where, args)
		}
	}
	return outcomes
}

func str(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// checkRandomEquivalence runs n random conditions through the evaluator
// and the SQL and fails unless most of them tell devices apart (a test
// where every condition is undefined everywhere could not fail).
func checkRandomEquivalence(t *testing.T, run triQuery, d Dialect, fleet []testDevice, n int) {
	r := rand.New(rand.NewPCG(7, 7))
	mixed, undefined := 0, 0
	for range n {
		c := randomCond(r, 3)
		if again, err := ParseCondition(c.String()); err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("%s does not parse back: %v", c, err)
		}
		outcomes := checkEquivalent(t, run, d, fleet, c)
		if len(outcomes) > 1 {
			mixed++
		}
		if outcomes[unknown] > 0 {
			undefined++
		}
	}
	t.Logf("%d random conditions: %d tell devices apart, %d are undefined for some", n, mixed, undefined)
	if mixed < n/3 || undefined < n/4 {
		t.Errorf("random conditions too uniform to test anything: %d of %d mixed, %d with undefined", mixed, n, undefined)
	}
}

// scanIDs reads a column of ids from database/sql's or pgx's rows.
func scanIDs(t *testing.T, rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}) []string {
	t.Helper()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// matching returns the ids above after of the devices that q matches, in order.
func matching(fleet []testDevice, q *Query, after string) []string {
	var ids []string
	for _, d := range fleet {
		if d.id > after && q.Match(d.doc) {
			ids = append(ids, d.id)
		}
	}
	return ids
}

func sqliteTri(db *sql.DB) triQuery {
	return func(t *testing.T, where string, args []any) []tri {
		t.Helper()
		rows, err := db.Query("SELECT "+where+" FROM devs ORDER BY id", args...)
		if err != nil {
			t.Fatalf("%v\nSQL %s", err, where)
		}
		defer rows.Close()
		var out []tri
		for rows.Next() {
			var v sql.NullInt64
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			switch {
			case !v.Valid:
				out = append(out, unknown)
			case v.Int64 == 0:
				out = append(out, no)
			case v.Int64 == 1:
				out = append(out, yes)
			default:
				t.Fatalf("SQL value %d is not 0, 1 or NULL\nSQL %s", v.Int64, where)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func TestSQLiteMatchesEvaluator(t *testing.T) {
	fleet := testFleet(t, 300, 1, false)
	db := sqliteFleet(t, fleet)
	run := sqliteTri(db)
	t.Run("chosen", func(t *testing.T) {
		for _, src := range equivalenceConds {
			c, err := ParseCondition(src)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			checkEquivalent(t, run, SQLite, fleet, c)

			// And as a WHERE clause, the way a store runs it.
			q, err := Parse("SELECT * FROM devices WHERE " + src)
			if err != nil {
				t.Fatal(err)
			}
			where, args, err := q.SQL(SQLite, testMapper)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := db.Query("SELECT id FROM devs WHERE "+where+" ORDER BY id", args...)
			if err != nil {
				t.Fatal(err)
			}
			got := scanIDs(t, rows)
			rows.Close()
			if want := matching(fleet, q, ""); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: SQL selects %v, Match %v", src, got, want)
			}
		}
	})
	t.Run("random", func(t *testing.T) {
		checkRandomEquivalence(t, run, SQLite, fleet, 1500)
	})
}

func TestSQLNoWhere(t *testing.T) {
	q, err := Parse("SELECT COUNT() FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		d    Dialect
		want string
	}{{SQLite, "1"}, {PostgreSQL, "TRUE"}} {
		where, args, err := q.SQL(tt.d, testMapper)
		if err != nil || where != tt.want || len(args) != 0 {
			t.Errorf("SQL() = %q, %v, %v; want %q", where, args, err, tt.want)
		}
	}
}

func TestSQLParameters(t *testing.T) {
	c, err := ParseCondition(`tags.site = 'x\'; DROP TABLE devs; --' AND tags.site IN ['a', 'b'] AND tags.floor > 2`)
	if err != nil {
		t.Fatal(err)
	}
	where, args, err := CondSQL(c, PostgreSQL.FirstParam(3), testMapper)
	if err != nil {
		t.Fatal(err)
	}
	// Names of fields are bound once and reused; values are bound each.
	want := `((CASE WHEN jsonb_typeof(((tags) -> $3::text)) = 'string' THEN (((((tags) -> $3::text) #>> '{}') COLLATE "C") = $4::text) END) AND ` +
		`(CASE WHEN jsonb_typeof(((tags) -> $3::text)) = 'string' THEN (((((tags) -> $3::text) #>> '{}') COLLATE "C") IN ($5::text, $6::text)) END) AND ` +
		`(CASE WHEN jsonb_typeof(((tags) -> $7::text)) = 'number' THEN (((tags) -> $7::text)::numeric > $8::text::numeric) END))`
	if where != want {
		t.Errorf("SQL\n got %s\nwant %s", where, want)
	}
	if wantArgs := []any{"site", "x'; DROP TABLE devs; --", "a", "b", "floor", "2"}; !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("args = %q, want %q", args, wantArgs)
	}
}

func TestSQLMapperErrors(t *testing.T) {
	c, err := ParseCondition("a = 1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []FieldMapper{
		{"tags.": {Expr: "tags", Type: JSON}},
		{"tags": {Expr: " ", Type: JSON}},
		{"tags": {Expr: "tags"}},
	} {
		if _, _, err := CondSQL(c, SQLite, m); err == nil {
			t.Errorf("CondSQL with mapper %v: no error", m)
		}
	}
	if _, _, err := CondSQL(c, PostgreSQL.FirstParam(0), testMapper); err == nil {
		t.Error("PostgreSQL placeholders from $0: no error")
	}
}
