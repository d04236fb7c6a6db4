package query

import (
	"encoding/json"
	"reflect"
	"testing"
)

// device is a document as the store would build it, decoded from JSON as
// any caller would.
func device(t testing.TB, src string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

const berlin = `{
	"deviceId": "dev-1", "name": "Pump 1", "status": "enabled", "connectionState": "Connected",
	"lastActivityTime": "2024-05-07T00:50:38.054Z",
	"tags": {"site": "berlin", "floor": 3, "n": "5", "my key": "v", "nested": {"x": 1}, "empty": ""},
	"properties": {
		"desired": {"interval": 10, "mode": "eco"},
		"reported": {"firmware": "2.0.1", "interval": 7, "ok": true, "off": false, "nothing": null,
			"list": [1, 2], "temp": -3.5, "unicode": "Zürich 😀", "$version": 4}
	}
}`

func TestEval(t *testing.T) {
	doc := device(t, berlin)
	tests := []struct {
		cond string
		want tri
	}{
		{"tags.site = 'berlin'", yes},
		{"tags.site = 'Berlin'", no}, // ordinal: case matters
		{"tags.site != 'paris'", yes},
		{"tags.site <> 'berlin'", no},
		{"tags.floor = 3", yes},
		{"tags.floor = 3.0", yes},
		{"tags.floor > 2.5 AND tags.floor <= 3", yes},
		{"tags.floor = '3'", unknown}, // different types: undefined, not false
		{"tags.n = 5", unknown},       // a number written as a string is a string
		{"tags.n = '5'", yes},
		{"tags.missing = 'x'", unknown},
		{"tags.missing != 'x'", unknown},
		{"NOT tags.missing = 'x'", unknown}, // NOT undefined stays undefined
		{"NOT tags.floor = '3'", unknown},
		{"NOT tags.site = 'paris'", yes},
		{"tags.nested = 1", unknown}, // objects compare with nothing
		{"properties.reported.list = 1", unknown},
		{"properties.reported.nothing = null", yes},
		{"properties.reported.nothing != null", no},
		{"properties.reported.nothing <= null", yes},
		{"properties.reported.nothing < null", no},
		{"properties.reported.firmware != null", unknown}, // a string is not null, but not comparable either
		{"properties.reported.ok = true", yes},
		{"properties.reported.off < properties.reported.ok", yes}, // false < true
		{"properties.reported.ok", yes},
		{"properties.reported.off", no},
		{"properties.reported.firmware", unknown}, // not a Boolean
		{"NOT properties.reported.firmware", unknown},
		{"properties.reported.firmware < '2.1'", yes},
		{"properties.reported.firmware < '10'", no}, // strings compare as strings
		{"properties.reported.temp < -3", yes},
		{"properties.desired.interval = properties.reported.interval", no},
		{"properties.desired.interval > properties.reported.interval", yes},
		{"properties.desired.mode = properties.reported.interval", unknown},
		{"properties.reported.unicode > 'Zz'", yes}, // code points: 'ü' (U+00FC) > 'z'
		{"properties.reported.unicode >= 'Zürich'", yes},
		{"properties.reported.$version = 4", yes},
		{"tags['my key'] = 'v'", yes},
		{"tags.nested.x = 1", yes},
		{"tags.site.x = 1", unknown}, // below a string
		{"DeviceId = 'dev-1'", yes},  // top-level names in any case
		{"deviceid = 'DEV-1'", no},
		{"'berlin' = tags.site", yes},
		{"1 = 1", yes},
		{"1 = '1'", unknown},
		{"true", yes},
		{"null", unknown},
		// IN is x = v1 OR x = v2 …
		{"tags.site IN ['paris', 'berlin']", yes},
		{"tags.site IN ['paris', 'rome']", no},
		{"tags.site IN ['paris', 3]", unknown},
		{"tags.site IN ['berlin', 3]", yes},
		{"tags.site NIN ['paris', 'rome']", yes},
		{"tags.site NIN ['paris', 'berlin']", no},
		{"tags.site NIN ['paris', 3]", unknown},
		{"tags.missing IN ['x']", unknown},
		{"tags.missing NIN ['x']", unknown},
		{"tags.nested IN ['x']", unknown},
		{"properties.reported.nothing IN [null]", yes},
		{"properties.reported.ok IN [false, true]", yes},
		{"tags.floor IN [1, 2, 3]", yes},
		// Kleene logic.
		{"tags.missing = 1 AND tags.site = 'paris'", no},
		{"tags.missing = 1 AND tags.site = 'berlin'", unknown},
		{"tags.missing = 1 OR tags.site = 'berlin'", yes},
		{"tags.missing = 1 OR tags.site = 'paris'", unknown},
		// Functions.
		{"IS_DEFINED(tags.site)", yes},
		{"IS_DEFINED(tags.missing)", no},
		{"IS_DEFINED(properties.reported.nothing)", yes},
		{"NOT IS_DEFINED(tags.missing)", yes},
		{"IS_NULL(properties.reported.nothing)", yes},
		{"IS_NULL(tags.missing)", no},
		{"IS_BOOL(properties.reported.off)", yes},
		{"IS_NUMBER(tags.floor)", yes},
		{"IS_NUMBER(tags.n)", no},
		{"IS_STRING(tags.n)", yes},
		{"IS_OBJECT(tags.nested)", yes},
		{"IS_OBJECT(properties)", yes},
		{"IS_ARRAY(properties.reported.list)", yes},
		{"IS_PRIMITIVE(properties.reported.nothing)", yes},
		{"IS_PRIMITIVE(tags.nested)", no},
		{"IS_PRIMITIVE(tags.missing)", no},
		{"IS_STRING('x')", yes},
		{"STARTS_WITH(deviceId, 'dev-')", yes},
		{"STARTS_WITH(deviceId, 'Dev-')", no},
		{"STARTS_WITH(deviceId, '')", yes},
		{"STARTS_WITH(tags.floor, '3')", unknown},
		{"STARTS_WITH(tags.missing, 'x')", unknown},
		{"ENDS_WITH(name, ' 1')", yes},
		{"ENDS_WITH(name, 'Pump 1 and more')", no},
		{"CONTAINS(properties.reported.unicode, 'ich 😀')", yes},
		{"CONTAINS(tags.empty, '')", yes},
		{"STARTS_WITH(deviceId, tags.site)", no},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			c, err := ParseCondition(tt.cond)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.eval(doc); got != tt.want {
				t.Errorf("eval = %v, want %v", got, tt.want)
			}
			if got := c.Match(doc); got != (tt.want == yes) {
				t.Errorf("Match = %v, want %v", got, tt.want == yes)
			}
			q, err := Parse("SELECT * FROM devices WHERE " + tt.cond)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Match(doc); got != (tt.want == yes) {
				t.Errorf("Query.Match = %v, want %v", got, tt.want == yes)
			}
		})
	}
}

func (t tri) String() string { return [...]string{"false", "true", "undefined"}[t] }

// Documents built in Go rather than decoded: other number types, json.Number,
// map[string]string tags, and values that are not JSON.
func TestEvalGoValues(t *testing.T) {
	doc := map[string]any{
		"deviceId": "d",
		"tags":     map[string]string{"site": "berlin"},
		"properties": map[string]any{"reported": map[string]any{
			"i": 3, "i64": int64(3), "u8": uint8(3), "f32": float32(0.5), "num": json.Number("3"), "big": json.Number("1e400"),
			"bad": json.Number("x"), "strs": []string{"a"}, "ch": make(chan int),
		}},
	}
	for cond, want := range map[string]bool{
		"tags.site = 'berlin'":                    true,
		"IS_OBJECT(tags)":                         true,
		"properties.reported.i = 3":               true,
		"properties.reported.i64 = 3":             true,
		"properties.reported.u8 = 3":              true,
		"properties.reported.f32 = 0.5":           true,
		"properties.reported.num = 3":             true,
		"properties.reported.big > 1e300":         true,
		"IS_NUMBER(properties.reported.bad)":      false,
		"IS_DEFINED(properties.reported.bad)":     false,
		"IS_ARRAY(properties.reported.strs)":      true,
		"IS_DEFINED(properties.reported.ch)":      false,
		"properties.reported.i IN [1, 2, 3]":      true,
		"properties.reported.num IN ['3']":        false,
		"NOT properties.reported.num IN ['3']":    false,
		"properties.reported.num NIN [1.5, 2, 4]": true,
	} {
		c, err := ParseCondition(cond)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Match(doc); got != want {
			t.Errorf("%s: Match = %v, want %v", cond, got, want)
		}
	}
}

func TestProject(t *testing.T) {
	doc := device(t, berlin)
	q, err := Parse("SELECT * FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Project(doc); !reflect.DeepEqual(got, doc) {
		t.Errorf("SELECT * = %v, want the document", got)
	}
	q, err = Parse("SELECT DeviceId, tags.site AS where_, properties.reported.interval, tags.missing FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"deviceId": "dev-1", "where_": "berlin", "interval": 7.0}
	if got := q.Project(doc); !reflect.DeepEqual(got, want) {
		t.Errorf("Project = %v, want %v", got, want)
	}
	if q.Aggregate() {
		t.Error("Aggregate() = true for a projection")
	}
}

func TestGrouper(t *testing.T) {
	var fleet []map[string]any
	for _, src := range []string{
		`{"deviceId": "a", "properties": {"reported": {"telemetryConfig": {"status": "Success"}}}}`,
		`{"deviceId": "b", "properties": {"reported": {"telemetryConfig": {"status": "Pending"}}}}`,
		`{"deviceId": "c", "properties": {"reported": {"telemetryConfig": {"status": "Success"}}}}`,
		`{"deviceId": "d", "properties": {"reported": {"telemetryConfig": {"status": "Error"}}}}`,
		`{"deviceId": "e", "properties": {"reported": {"telemetryConfig": {"status": "Pending"}}}}`,
		`{"deviceId": "f", "properties": {"reported": {"telemetryConfig": {"status": "Success"}}}}`,
		`{"deviceId": "g", "properties": {"reported": {}}}`,
		`{"deviceId": "h", "properties": {"reported": {"telemetryConfig": {"status": 1}}}}`,
		`{"deviceId": "i", "properties": {"reported": {"telemetryConfig": {"status": "1"}}}}`,
	} {
		fleet = append(fleet, device(t, src))
	}
	run := func(src string) []map[string]any {
		t.Helper()
		q, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		if !q.Aggregate() {
			t.Fatalf("%s: Aggregate() = false", src)
		}
		g := q.NewGrouper()
		for _, d := range fleet {
			if q.Match(d) {
				g.Add(d)
			}
		}
		return g.Rows()
	}

	got := run(`SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices
		FROM devices GROUP BY properties.reported.telemetryConfig.status`)
	want := []map[string]any{
		{"status": "Success", "numberOfDevices": 3},
		{"status": "Pending", "numberOfDevices": 2},
		{"status": "Error", "numberOfDevices": 1},
		{"numberOfDevices": 1}, // status undefined: a group of its own, without the field
		{"status": 1.0, "numberOfDevices": 1},
		{"status": "1", "numberOfDevices": 1}, // not the same group as the number 1
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GROUP BY rows\n got %v\nwant %v", got, want)
	}

	got = run("SELECT COUNT() AS total FROM devices WHERE properties.reported.telemetryConfig.status = 'Success'")
	if want := []map[string]any{{"total": 3}}; !reflect.DeepEqual(got, want) {
		t.Errorf("COUNT() rows = %v, want %v", got, want)
	}
	got = run("SELECT COUNT() FROM devices WHERE deviceId = 'nobody'")
	if want := []map[string]any{{"$1": 0}}; !reflect.DeepEqual(got, want) {
		t.Errorf("COUNT() of nothing = %v, want %v", got, want)
	}
	got = run("SELECT COUNT() AS n FROM devices WHERE deviceId = 'nobody' GROUP BY deviceId")
	if len(got) != 0 {
		t.Errorf("GROUP BY of nothing = %v, want no rows", got)
	}
	got = run("SELECT properties.reported.telemetryConfig AS config FROM devices WHERE deviceId IN ['a', 'c', 'b'] GROUP BY properties.reported.telemetryConfig")
	want = []map[string]any{
		{"config": map[string]any{"status": "Success"}},
		{"config": map[string]any{"status": "Pending"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GROUP BY object rows\n got %v\nwant %v", got, want)
	}
}

func TestTerms(t *testing.T) {
	for src, want := range map[string]int{
		"tags.a = 1": 1,
		"tags.a = 1 AND (tags.b IN [1, 2] OR NOT x)": 3,
		"IS_DEFINED(a) OR STARTSWITH(b, 'x') AND c":  3,
		"NOT (a = 1 OR b = 2 OR c = 3 OR d != 'x')":  4,
	} {
		c, err := ParseCondition(src)
		if err != nil {
			t.Fatal(err)
		}
		if got := Terms(c); got != want {
			t.Errorf("Terms(%s) = %d, want %d", src, got, want)
		}
	}
	if Terms(nil) != 0 {
		t.Error("Terms(nil) != 0")
	}
}
