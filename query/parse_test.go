package query

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		src  string
		want string // String() of the parsed query
	}{
		{"SELECT * FROM devices", "SELECT * FROM devices"},
		{"select * from DEVICES where tags.site = 'berlin'", "SELECT * FROM devices WHERE tags.site = 'berlin'"},
		{
			"SELECT * FROM devices WHERE tags.site = 'berlin' AND properties.reported.firmware < '2.1'",
			"SELECT * FROM devices WHERE tags.site = 'berlin' AND properties.reported.firmware < '2.1'",
		},
		{
			"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
			"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
		},
		{"SELECT COUNT() as totalNumberOfDevices FROM devices", "SELECT COUNT() AS totalNumberOfDevices FROM devices"},
		{"SELECT count() FROM devices", "SELECT COUNT() FROM devices"},
		// Azure's own example: top-level names in any case, stored canonical.
		{
			"SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
			"SELECT deviceId, lastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
		},
		{"SELECT * FROM devices WHERE Properties.Reported.X = 1", "SELECT * FROM devices WHERE properties.reported.X = 1"},
		{"SELECT TOP 10 deviceId, tags.site AS site FROM devices", "SELECT TOP 10 deviceId, tags.site AS site FROM devices"},
		{"SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']", "SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']"},
		{"SELECT * FROM devices WHERE deviceId nin [\"a\", 1, true, null, -2.5]", "SELECT * FROM devices WHERE deviceId NIN ['a', 1, true, null, -2.5]"},
		{"SELECT * FROM devices WHERE is_defined(properties.reported.connectivity)", "SELECT * FROM devices WHERE IS_DEFINED(properties.reported.connectivity)"},
		{"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'x') OR endswith(deviceId, 'y') OR Contains(name, 'z')", "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'x') OR ENDS_WITH(deviceId, 'y') OR CONTAINS(name, 'z')"},
		{"SELECT * FROM devices WHERE IS_NULL(a) AND IS_BOOL(b) AND IS_NUMBER(c) AND IS_STRING(d) AND IS_OBJECT(e) AND IS_ARRAY(f) AND IS_PRIMITIVE(g)", "SELECT * FROM devices WHERE IS_NULL(a) AND IS_BOOL(b) AND IS_NUMBER(c) AND IS_STRING(d) AND IS_OBJECT(e) AND IS_ARRAY(f) AND IS_PRIMITIVE(g)"},
		// Operators, each kind of literal, and <> read as !=.
		{"SELECT * FROM devices WHERE a = 1 AND b != 2 AND c <> 3 AND d < 4 AND e <= 5 AND f > 6 AND g >= 7", "SELECT * FROM devices WHERE a = 1 AND b != 2 AND c != 3 AND d < 4 AND e <= 5 AND f > 6 AND g >= 7"},
		{"SELECT * FROM devices WHERE a = -0.5e3 OR a = 0x1F OR a = 1E2 OR a = 007", "SELECT * FROM devices WHERE a = -500 OR a = 31 OR a = 100 OR a = 7"},
		{"SELECT * FROM devices WHERE a = TRUE OR a = False OR a = NULL", "SELECT * FROM devices WHERE a = true OR a = false OR a = null"},
		{`SELECT * FROM devices WHERE a = 'it\'s' OR a = "say \"hi\"" OR a = '\\ \/ \n\t \u00e9 \uD83D\uDE00'`, `SELECT * FROM devices WHERE a = 'it\'s' OR a = 'say "hi"' OR a = '\\ / \n\t é 😀'`},
		// Bracketed names: ['…'] anywhere below the top, [[…]] (Azure's quoting) anywhere.
		{"SELECT * FROM devices WHERE tags['my key'] = 1 AND tags[\"x.y\"] = 2 AND tags.[[group]].name = 3", "SELECT * FROM devices WHERE tags['my key'] = 1 AND tags['x.y'] = 2 AND tags.group.name = 3"},
		{"SELECT * FROM devices WHERE [[select]] = 1 AND [[where]].x = 2", "SELECT * FROM devices WHERE [[select]] = 1 AND [[where]].x = 2"},
		{"SELECT [[group]] AS [[by]] FROM devices", "SELECT [[group]] AS [[by]] FROM devices"},
		{"SELECT * FROM devices WHERE tags.Ünïcødé_$1 = 'ü'", "SELECT * FROM devices WHERE tags.Ünïcødé_$1 = 'ü'"},
		{"SELECT * FROM devices WHERE properties.reported.$version > 3", "SELECT * FROM devices WHERE properties.reported.$version > 3"},
		// Keywords after a dot are names.
		{"SELECT * FROM devices WHERE tags.and = tags.select", "SELECT * FROM devices WHERE tags.and = tags.select"},
		// Precedence: NOT over AND over OR; parentheses kept where they matter.
		{"SELECT * FROM devices WHERE a = 1 OR b = 2 AND c = 3", "SELECT * FROM devices WHERE a = 1 OR b = 2 AND c = 3"},
		{"SELECT * FROM devices WHERE (a = 1 OR b = 2) AND c = 3", "SELECT * FROM devices WHERE (a = 1 OR b = 2) AND c = 3"},
		{"SELECT * FROM devices WHERE ((a = 1))", "SELECT * FROM devices WHERE a = 1"},
		{"SELECT * FROM devices WHERE NOT a = 1 AND NOT (b = 2 OR c = 3)", "SELECT * FROM devices WHERE NOT a = 1 AND NOT (b = 2 OR c = 3)"},
		{"SELECT * FROM devices WHERE a AND (b AND c)", "SELECT * FROM devices WHERE a AND (b AND c)"},
		{"SELECT * FROM devices WHERE NOT NOT a", "SELECT * FROM devices WHERE NOT NOT a"},
		// Operands on either side, constants alone.
		{"SELECT * FROM devices WHERE 'berlin' = tags.site AND properties.desired.x = properties.reported.x", "SELECT * FROM devices WHERE 'berlin' = tags.site AND properties.desired.x = properties.reported.x"},
		{"SELECT * FROM devices WHERE true", "SELECT * FROM devices WHERE true"},
		{"SELECT * FROM devices WHERE properties.reported.ok", "SELECT * FROM devices WHERE properties.reported.ok"},
		{"SELECT tags.site, tags.floor, COUNT() FROM devices WHERE status = 'enabled' GROUP BY tags.site, tags.floor", "SELECT tags.site, tags.floor, COUNT() FROM devices WHERE status = 'enabled' GROUP BY tags.site, tags.floor"},
		{"SELECT tags.site FROM devices GROUP BY tags.site", "SELECT tags.site FROM devices GROUP BY tags.site"},
		{"SELECT COUNT() AS a, COUNT() AS b FROM devices", "SELECT COUNT() AS a, COUNT() AS b FROM devices"},
		{"  SELECT\n\t*\r\nFROM devices\n", "SELECT * FROM devices"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			q, err := Parse(tt.src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := q.String(); got != tt.want {
				t.Errorf("String() = %s\nwant       %s", got, tt.want)
			}
			again, err := Parse(q.String())
			if err != nil {
				t.Fatalf("Parse(String()): %v", err)
			}
			if !reflect.DeepEqual(again, q) {
				t.Errorf("String() parses to another query: %#v, want %#v", again, q)
			}
		})
	}
}

func TestParseTree(t *testing.T) {
	q, err := Parse("SELECT TOP 5 deviceId AS id, COUNT() FROM devices WHERE a = 1 OR NOT b IN [2, 'x'] AND IS_DEFINED(c['d e']) GROUP BY deviceId")
	if err != nil {
		t.Fatal(err)
	}
	want := &Query{
		Top:     5,
		Columns: []Column{{Path: Path{"deviceId"}, Alias: "id"}, {Count: true}},
		Where: &Or{Terms: []Cond{
			&Compare{Op: Equal, Left: Field{Path: Path{"a"}}, Right: Literal{Value: 1.0}},
			&And{Terms: []Cond{
				&Not{Cond: &In{Operand: Field{Path: Path{"b"}}, Values: []Literal{{Value: 2.0}, {Value: "x"}}}},
				&Call{Func: IsDefined, Args: []Operand{Field{Path: Path{"c", "d e"}}}},
			}},
		}},
		GroupBy: []Path{{"deviceId"}},
	}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("got  %#v\nwant %#v", q, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src          string
		want         string // Error()
		line, column int
	}{
		{
			"SELECT * FROM devices WHERE tags.site = 'berlin' AN properties.reported.firmware < '2.1'",
			`unexpected "AN" at column 50: expected AND, OR, GROUP BY or end of query`, 1, 50,
		},
		{
			"SELECT * FROM devices WHERE tags.site 'berlin'",
			`unexpected "'berlin'" at column 39: expected a comparison (=, !=, <, <=, >, >=, IN, NIN), AND, OR, GROUP BY or end of query`, 1, 39,
		},
		{"", "unexpected end of query at column 1: expected SELECT", 1, 1},
		{"tags.site = 'x'", `unexpected "tags" at column 1: expected SELECT`, 1, 1},
		{"SELECT FROM devices", `unexpected "FROM" at column 8: expected *, a field or COUNT()`, 1, 8},
		{"SELECT * devices", `unexpected "devices" at column 10: expected FROM`, 1, 10},
		{"SELECT deviceId name FROM devices", `unexpected "name" at column 17: expected AS, "," or FROM`, 1, 17},
		{"SELECT * FROM things", `unexpected "things" at column 15: expected devices`, 1, 15},
		{"SELECT * FROM devices.jobs", `"devices.jobs" cannot be queried at column 15: only FROM devices is supported`, 1, 15},
		{"SELECT * FROM devices LIMIT 5", `unexpected "LIMIT" at column 23: expected WHERE, GROUP BY or end of query`, 1, 23},
		{"SELECT * FROM devices WHERE", "unexpected end of query at column 28: expected a condition: a field, a value, NOT, ( or a function such as IS_DEFINED()", 1, 28},
		{"SELECT * FROM devices WHERE a =", "unexpected end of query at column 32: expected a field or a value after =", 1, 32},
		{"SELECT * FROM devices WHERE (a = 1", `unexpected end of query at column 35: expected AND, OR or ")"`, 1, 35},
		{"SELECT * FROM devices WHERE a = 1)", `unexpected ")" at column 34: expected AND, OR, GROUP BY or end of query`, 1, 34},
		{"SELECT * FROM devices WHERE a IN 'x'", `unexpected "'x'" at column 34: expected "[": IN and NIN take a list such as ['a', 'b']`, 1, 34},
		{"SELECT * FROM devices WHERE a IN []", `unexpected "]" at column 35: expected a string, number, true, false or null`, 1, 35},
		{"SELECT * FROM devices WHERE a IN ['x' 'y']", `unexpected "'y'" at column 39: expected "," or "]"`, 1, 39},
		{"SELECT * FROM devices WHERE a IN [b]", `fields cannot be listed at column 35: expected a string, number, true, false or null`, 1, 35},
		{"SELECT * FROM devices WHERE a = [1]", `unexpected "[" at column 33: a list of values can only follow IN or NIN`, 1, 33},
		{"SELECT * FROM devices WHERE a = 'x", "unterminated string at column 33: add the closing '", 1, 33},
		{`SELECT * FROM devices WHERE a = "x\q"`, `invalid escape "\\q" at column 35: use \', \", \\, \/, \b, \f, \n, \r, \t or \uXXXX`, 1, 35},
		{`SELECT * FROM devices WHERE a = '\u12'`, `invalid \u escape at column 34: expected four hexadecimal digits`, 1, 34},
		{`SELECT * FROM devices WHERE a = '\uD83D'`, `unpaired surrogate in \u escape at column 34: a character above U+FFFF is written as two escapes, \uD83D\uDE00`, 1, 34},
		{`SELECT * FROM devices WHERE a = '\u0000'`, `invalid escape "\u0000" at column 34: strings cannot hold the character U+0000`, 1, 34},
		{"SELECT * FROM devices WHERE a = 1e999", "number out of range at column 33", 1, 33},
		{"SELECT * FROM devices WHERE a = 12abc", "invalid number at column 33: put a space between a number and what follows", 1, 33},
		{"SELECT * FROM devices WHERE a = 0x", "invalid number at column 33: expected hexadecimal digits after 0x", 1, 33},
		{"SELECT * FROM devices WHERE a = 1e", "invalid number at column 33: expected digits of the exponent", 1, 33},
		{"SELECT * FROM devices WHERE a = b + 1", `unexpected character '+' at column 35: arithmetic is not supported`, 1, 35},
		{"SELECT * FROM devices WHERE a = b - 1", `unexpected character '-' at column 35: arithmetic is not supported`, 1, 35},
		{"SELECT * FROM devices WHERE a ! 1", `unexpected character '!' at column 31`, 1, 31},
		{"SELECT * FROM devices WHERE LOWER(a) = 'x'", "LOWER() is not supported in conditions at column 29: the functions are " + funcList, 1, 29},
		{"SELECT * FROM devices WHERE frob(a)", `unknown function "frob" at column 29: the functions are ` + funcList, 1, 29},
		{"SELECT * FROM devices WHERE IS_DEFINED(a, b)", `unexpected "," at column 41: expected ")": IS_DEFINED() takes 1 argument`, 1, 41},
		{"SELECT * FROM devices WHERE STARTS_WITH(a)", `unexpected ")" at column 42: expected ",": STARTS_WITH() takes 2 arguments`, 1, 42},
		{"SELECT * FROM devices WHERE IS_DEFINED()", `unexpected ")" at column 40: expected a field or a value: IS_DEFINED() takes 1 argument`, 1, 40},
		{"SELECT * FROM devices WHERE tags.", `unexpected end of query at column 34: expected a field name after "."`, 1, 34},
		{"SELECT * FROM devices WHERE tags[site] = 1", `unexpected "site" at column 34: expected a quoted field name, as in tags['my key']`, 1, 34},
		{"SELECT * FROM devices WHERE tags[''] = 1", "empty field name at column 34", 1, 34},
		{"SELECT * FROM devices WHERE properties.reported.list[0] = 1", "array indexes are not supported at column 54", 1, 54},
		{"SELECT * FROM devices WHERE [[x = 1", `unterminated [[name]] at column 29: add "]]"`, 1, 29},
		{"SELECT * FROM devices WHERE [[]] = 1", "empty name at column 29", 1, 29},
		{"SELECT * FROM devices WHERE select = 1", `unexpected "select" at column 29: expected a condition: a field, a value, NOT, ( or a function such as IS_DEFINED()`, 1, 29},
		{"SELECT * FROM devices GROUP tags.site", `unexpected "tags" at column 29: expected BY`, 1, 29},
		{"SELECT * FROM devices GROUP BY tags.site", "SELECT * cannot be grouped at column 8: select the GROUP BY fields and COUNT() instead", 1, 8},
		{"SELECT tags.site, COUNT() FROM devices", "tags.site is selected with COUNT() but not grouped at column 8: add GROUP BY tags.site, or select COUNT() alone", 1, 8},
		{"SELECT tags.site, tags.floor, COUNT() FROM devices GROUP BY tags.site", "tags.floor is not in GROUP BY at column 19: select only fields of GROUP BY and COUNT()", 1, 19},
		{"SELECT tags.site, properties.reported.site FROM devices", `duplicate column name "site" at column 19: give one of them another name with AS`, 1, 19},
		{"SELECT COUNT(), COUNT() AS [[$1]] FROM devices", `duplicate column name "$1" at column 17: give one of them another name with AS`, 1, 17},
		{"SELECT AVG(tags.n) FROM devices", "AVG() is not supported at column 8: COUNT() is the only aggregate", 1, 8},
		{"SELECT COUNT(*) FROM devices", `unexpected "*" at column 14: expected ")": COUNT() takes no arguments`, 1, 14},
		{"SELECT IS_DEFINED(a) FROM devices", `unexpected "IS_DEFINED" at column 8: expected *, a field or COUNT(): functions cannot be selected`, 1, 8},
		{"SELECT TOP 1.5 * FROM devices", `unexpected "1.5" at column 12: expected a whole number of rows after TOP`, 1, 12},
		{"SELECT TOP -1 * FROM devices", `unexpected "-1" at column 12: expected a whole number of rows after TOP`, 1, 12},
		{"SELECT deviceId AS FROM devices", `unexpected "FROM" at column 20: expected a name after AS`, 1, 20},
		// Columns count runes, lines count from 1.
		{"SELECT * FROM devices\nWHERE tags.ort = 'Köln' AN x", `unexpected "AN" at line 2, column 25: expected AND, OR, GROUP BY or end of query`, 2, 25},
		{"SELECT * FROM devices WHERE tags.名前 = '東京' OR", "unexpected end of query at column 46: expected a condition: a field, a value, NOT, ( or a function such as IS_DEFINED()", 1, 46},
		{"SELECT * FROM devices WHERE a = '\xff'", "invalid UTF-8 at column 34", 1, 34},
		{"SELECT * FROM devices WHERE a = '\x00'", "unexpected NUL character at column 34", 1, 34},
		{"SELECT * FROM devices WHERE a = 'x' " + strings.Repeat("A", 30) + "B", `unexpected "` + strings.Repeat("A", 30) + `…" at column 37: expected AND, OR, GROUP BY or end of query`, 1, 37},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			q, err := Parse(tt.src)
			if err == nil {
				t.Fatalf("Parse = %s, want error %s", q, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not a *query.Error", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if e.Line != tt.line || e.Column != tt.column {
				t.Errorf("line %d column %d, want line %d column %d", e.Line, e.Column, tt.line, tt.column)
			}
		})
	}
}

func TestParseCondition(t *testing.T) {
	c, err := ParseCondition("tags.building = '43' AND deviceId IN ['a', 'b']")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.String(), "tags.building = '43' AND deviceId IN ['a', 'b']"; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	doc := map[string]any{"deviceId": "a", "tags": map[string]any{"building": "43"}}
	if !c.Match(doc) {
		t.Errorf("Match(%v) = false, want true", doc)
	}

	for src, want := range map[string]string{
		"":                                "unexpected end of condition at column 1: expected a condition: a field, a value, NOT, ( or a function such as IS_DEFINED()",
		"SELECT * FROM devices WHERE a":   `unexpected "SELECT" at column 1: a condition has no SELECT … FROM devices: write only what would follow WHERE`,
		"a = 1 GROUP BY a":                `unexpected "GROUP" at column 7: expected AND, OR or end of condition`,
		"tags.site = 'berlin' AN x = 'y'": `unexpected "AN" at column 22: expected AND, OR or end of condition`,
	} {
		if _, err := ParseCondition(src); err == nil || err.Error() != want {
			t.Errorf("ParseCondition(%q) error\n got %v\nwant %s", src, err, want)
		}
	}
}

func TestParseLimits(t *testing.T) {
	t.Run("length", func(t *testing.T) {
		base := "SELECT * FROM devices WHERE deviceId IN ['x'"
		long := base + strings.Repeat(",'xxxxxxxxxx'", (MaxLength-len(base)-1)/13) + "]"
		long += strings.Repeat(" ", MaxLength-len(long))
		if _, err := Parse(long); err != nil {
			t.Fatalf("query of %d bytes: %v", len(long), err)
		}
		tooLong := long + " "
		_, err := Parse(tooLong)
		want := "query longer than 8192 bytes at column 8193: shorten it, for example with IN lists"
		if err == nil || err.Error() != want {
			t.Errorf("query of %d bytes: error %v, want %s", len(tooLong), err, want)
		}
	})
	t.Run("depth", func(t *testing.T) {
		deep := "SELECT * FROM devices WHERE " + strings.Repeat("(", MaxDepth) + "a = 1" + strings.Repeat(")", MaxDepth)
		if _, err := Parse(deep); err != nil {
			t.Errorf("%d parentheses: %v", MaxDepth, err)
		}
		_, err := Parse("SELECT * FROM devices WHERE " + strings.Repeat("NOT (", MaxDepth/2) + "NOT a" + strings.Repeat(")", MaxDepth/2))
		want := "conditions nested more than 32 deep at column 109"
		if err == nil || err.Error() != want {
			t.Errorf("33 levels: error %v, want %s", err, want)
		}
		// Long flat chains are not nesting.
		flat := "SELECT * FROM devices WHERE a = 1" + strings.Repeat(" AND a = 1", 500)
		if _, err := Parse(flat); err != nil {
			t.Errorf("500 ANDs: %v", err)
		}
	})
	t.Run("IN values", func(t *testing.T) {
		list := func(n int) string {
			return "SELECT * FROM devices WHERE a IN [1" + strings.Repeat(",1", n-1) + "]"
		}
		if _, err := Parse(list(MaxInValues)); err != nil {
			t.Errorf("%d values: %v", MaxInValues, err)
		}
		_, err := Parse(list(MaxInValues + 1))
		want := "list longer than 1000 values at column 2035"
		if err == nil || err.Error() != want {
			t.Errorf("%d values: error %v, want %s", MaxInValues+1, err, want)
		}
	})
}
