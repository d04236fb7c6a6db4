package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFlattenNested(t *testing.T) {
	readings, ts, hasTS, err := Flatten(readTestdata(t, "telemetry_nested.json"))
	if err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	want := []Reading{
		{"temperature", 21.5},
		{"humidity", 40},
		{"online", 1},
		{"door.open", 0},
		{"door.count", 3},
		{"engine.rpm", -1200},
		{"engine.oil.pressure", 2.5},
		{"unicodeé", 7},
		{`escaped"key`, 8},
	}
	assertReadings(t, readings, want)
	if wantTS := time.Date(2024, 5, 1, 8, 0, 0, 250e6, time.UTC); !hasTS || !ts.Equal(wantTS) {
		t.Errorf("timestamp: got %v (hasTS %v), want %v", ts, hasTS, wantTS)
	}
}

func TestFlattenNonFinite(t *testing.T) {
	readings, _, _, err := Flatten(readTestdata(t, "telemetry_python_nan.json"))
	if err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	assertReadings(t, readings, []Reading{{"tiny", 0}, {"ok", 1}})
}

func TestFlatten(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []Reading
	}{
		{"empty object", `{}`, nil},
		{"whitespace and BOM", "\xef\xbb\xbf \n\t{ \"a\" : 1 }\r\n", []Reading{{"a", 1}}},
		{"integers and exponents", `{"a":0,"b":-0.5,"c":1E3,"d":2e-2,"e":12345678901234567890}`,
			[]Reading{{"a", 0}, {"b", -0.5}, {"c", 1000}, {"d", 0.02}, {"e", 12345678901234567890}}},
		{"booleans", `{"on":true,"off":false}`, []Reading{{"on", 1}, {"off", 0}}},
		{"ignored values", `{"s":"1","n":null,"a":[1,2],"o":{},"x":1}`, []Reading{{"x", 1}}},
		{"arrays of objects ignored", `{"a":[{"b":1},[{"c":2}]],"d":3}`, []Reading{{"d", 3}}},
		{"duplicates: last value, first position", `{"a":1,"b":2,"a":3}`, []Reading{{"a", 3}, {"b", 2}}},
		{"nested duplicate of dotted key", `{"a.b":1,"a":{"b":2}}`, []Reading{{"a.b", 2}}},
		{"empty names skipped", `{"":1,"a":{"":2},"b":{"c":3}}`, []Reading{{"b.c", 3}}},
		{"names with empty segments skipped", `{"a.":1,".b":2,"c..d":3,"e":4}`, []Reading{{"e", 4}}},
		{"control character names skipped", `{"a\nb":1,"a\u0000":2,"ok":3}`, []Reading{{"ok", 3}}},
		{"long name skipped", `{"` + strings.Repeat("n", MaxMetricName+1) + `":1,"` + strings.Repeat("m", MaxMetricName) + `":2}`,
			[]Reading{{strings.Repeat("m", MaxMetricName), 2}}},
		{"escapes in keys", `{"a\/b\\c\u00e9\ud83d\ude00":1}`, []Reading{{"a/b\\cé😀", 1}}},
		{"lone surrogate becomes U+FFFD", `{"x\ud800":1}`, []Reading{{"x\ufffd", 1}}},
		{"nested ts is a reading", `{"a":{"ts":5,"timestamp":6}}`, []Reading{{"a.ts", 5}, {"a.timestamp", 6}}},
		{"NaN in arrays and nested", `{"a":[NaN,-Infinity],"b":{"c":Infinity},"d":-1}`, []Reading{{"d", -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readings, _, hasTS, err := Flatten([]byte(tt.body))
			if err != nil {
				t.Fatalf("Flatten(%s): %v", tt.body, err)
			}
			if hasTS {
				t.Errorf("hasTS: got true, want false")
			}
			assertReadings(t, readings, tt.want)
		})
	}
}

func TestFlattenTimestamps(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantTS    time.Time
		wantHasTS bool
		wantErr   error
	}{
		{"RFC 3339", `{"ts":"2024-05-01T10:00:00Z","v":1}`, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), true, nil},
		{"RFC 3339 with offset and fraction", `{"timestamp":"2024-05-01T10:00:00.123456789-05:30","v":1}`,
			time.Date(2024, 5, 1, 15, 30, 0, 123456789, time.UTC), true, nil},
		{"RFC 3339 with a space", `{"ts":"2024-05-01 10:00:00Z","v":1}`, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), true, nil},
		{"epoch ms", `{"ts":1714557600000,"v":1}`, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), true, nil},
		{"epoch ms fractional", `{"ts":1714557600000.5,"v":1}`, time.Date(2024, 5, 1, 10, 0, 0, 500000, time.UTC), true, nil},
		{"epoch ms negative", `{"ts":-1500,"v":1}`, time.Date(1969, 12, 31, 23, 59, 58, 500e6, time.UTC), true, nil},
		{"ts wins over timestamp", `{"ts":1000,"timestamp":"2024-05-01T10:00:00Z","v":1}`, time.UnixMilli(1000).UTC(), true, nil},
		{"ts wins in either order", `{"timestamp":1000,"ts":2000,"v":1}`, time.UnixMilli(2000).UTC(), true, nil},
		{"null ts", `{"ts":null,"v":1}`, time.Time{}, false, nil},
		{"not RFC 3339", `{"ts":"yesterday","v":1}`, time.Time{}, false, ErrBadTimestamp},
		{"no time zone", `{"ts":"2024-05-01T10:00:00","v":1}`, time.Time{}, false, ErrBadTimestamp},
		{"boolean", `{"ts":true,"v":1}`, time.Time{}, false, ErrBadTimestamp},
		{"object", `{"timestamp":{"s":1},"v":1}`, time.Time{}, false, ErrBadTimestamp},
		{"NaN", `{"ts":NaN,"v":1}`, time.Time{}, false, ErrBadTimestamp},
		{"-Infinity", `{"ts":-Infinity,"v":1}`, time.Time{}, false, ErrBadTimestamp},
		{"out of range", `{"ts":1e300,"v":1}`, time.Time{}, false, ErrBadTimestamp},
		{"overflow", `{"ts":1e400,"v":1}`, time.Time{}, false, ErrBadTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readings, ts, hasTS, err := Flatten([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Flatten(%s): got error %v, want %v", tt.body, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if hasTS != tt.wantHasTS || !ts.Equal(tt.wantTS) {
				t.Errorf("timestamp: got %v (hasTS %v), want %v (hasTS %v)", ts, hasTS, tt.wantTS, tt.wantHasTS)
			}
			// The timestamp is never a reading.
			assertReadings(t, readings, []Reading{{"v", 1}})
		})
	}
}

func TestFlattenErrors(t *testing.T) {
	nested := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	arrays := func(n int) string { return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + "}" }
	many := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"m%d":%d`, i, i)
		}
		b.WriteString("}")
		return b.String()
	}
	tests := []struct {
		name    string
		body    string
		wantErr error
		wantMsg string
	}{
		{"empty", ``, ErrNotJSONObject, "empty"},
		{"array", `[{"a":1}]`, ErrNotJSONObject, "JSON array"},
		{"string", `"hello"`, ErrNotJSONObject, "JSON string"},
		{"number", `42`, ErrNotJSONObject, `starts with "42"`},
		{"text", `temp=21`, ErrNotJSONObject, "starts with"},
		{"binary", "\x00\x01\xff\xfe", ErrNotJSONObject, "binary"},
		{"truncated", `{"a":1,`, ErrNotJSONObject, "end of body"},
		{"unterminated string", `{"a`, ErrNotJSONObject, "unterminated string"},
		{"missing colon", `{"a" 1}`, ErrNotJSONObject, "want ':'"},
		{"unquoted key", `{a:1}`, ErrNotJSONObject, "quoted object key"},
		{"trailing comma", `{"a":1,}`, ErrNotJSONObject, "quoted object key"},
		{"trailing data", `{"a":1} {"b":2}`, ErrNotJSONObject, "after the object"},
		{"leading zero", `{"a":01}`, ErrNotJSONObject, "want ',' or '}'"},
		{"bare minus", `{"a":-}`, ErrNotJSONObject, "invalid number"},
		{"dot without digits", `{"a":1.}`, ErrNotJSONObject, "after '.'"},
		{"bad exponent", `{"a":1e}`, ErrNotJSONObject, "exponent"},
		{"hex number", `{"a":0x10}`, ErrNotJSONObject, "want ',' or '}'"},
		{"bad literal", `{"a":tru}`, ErrNotJSONObject, "invalid literal"},
		{"bad escape", `{"a\q":1}`, ErrNotJSONObject, `invalid escape \q`},
		{"bad unicode escape", `{"a":"\u12"}`, ErrNotJSONObject, `invalid \u escape`},
		{"raw newline in string", "{\"a\":\"x\ny\"}", ErrNotJSONObject, "control character"},
		{"unclosed array", `{"a":[1,2}`, ErrNotJSONObject, "want ',' or ']'"},
		{"nesting at the limit", nested(MaxDepth), nil, ""},
		{"nesting over the limit", nested(MaxDepth + 1), ErrTooDeep, "more than 32 levels"},
		{"arrays at the limit", arrays(MaxDepth), nil, ""},
		{"arrays over the limit", arrays(MaxDepth + 1), ErrTooDeep, "more than 32 levels"},
		{"readings at the limit", many(MaxReadings), nil, ""},
		{"readings over the limit", many(MaxReadings + 1), ErrTooManyReadings, "more than 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readings, _, _, err := Flatten([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Flatten(%.60s): got error %v, want %v", tt.body, err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q: want it to mention %q", err, tt.wantMsg)
			}
			if readings != nil {
				t.Errorf("got %d readings with an error, want none", len(readings))
			}
		})
	}
}

// TestFlattenMatchesEncodingJSON checks the scanner against encoding/json on
// every fixture: the same numbers must come out.
func TestFlattenMatchesEncodingJSON(t *testing.T) {
	body := readTestdata(t, "telemetry_nested.json")
	var tree map[string]any
	if err := json.Unmarshal(body, &tree); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if prefix == "" && (k == "ts" || k == "timestamp") {
				continue
			}
			switch v := v.(type) {
			case float64:
				want[prefix+k] = v
			case bool:
				want[prefix+k] = map[bool]float64{false: 0, true: 1}[v]
			case map[string]any:
				walk(prefix+k+".", v)
			}
		}
	}
	walk("", tree)
	readings, _, _, err := Flatten(body)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, r := range readings {
		got[r.Metric] = r.Value
	}
	if !maps.Equal(got, want) {
		t.Errorf("Flatten:\n got %v\nwant %v (encoding/json)", got, want)
	}
}

func TestSaneTimestamp(t *testing.T) {
	enqueued := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ts   time.Time
		want bool
	}{
		{"same time", enqueued, true},
		{"a year ago", enqueued.AddDate(-1, 0, 0), true},
		{"start of 2000", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"before 2000", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{"epoch seconds read as ms", time.UnixMilli(1714557600), false},
		{"zero time", time.Time{}, false},
		{"a day ahead", enqueued.Add(24 * time.Hour), true},
		{"more than a day ahead", enqueued.Add(24*time.Hour + time.Second), false},
	}
	for _, tt := range tests {
		if got := SaneTimestamp(tt.ts, enqueued); got != tt.want {
			t.Errorf("%s: SaneTimestamp(%v): got %v, want %v", tt.name, tt.ts, got, tt.want)
		}
	}
}

func assertReadings(t *testing.T, got, want []Reading) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d readings %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reading %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

const benchBody = `{"ts":1714557600000,"temperature":21.53,"humidity":40.2,"pressure":1013.25,"co2":612,` +
	`"battery":{"voltage":3.71,"percent":88},"rssi":-67,"door":false,"pm25":12.5,"uptime":86400}`

func BenchmarkFlatten(b *testing.B) {
	body := []byte(benchBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		readings, _, _, err := Flatten(body)
		if err != nil || len(readings) != 10 {
			b.Fatalf("Flatten: %d readings, %v", len(readings), err)
		}
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkFlattenNames is BenchmarkFlatten as the ingest path flattens:
// with the metric names from a Names table.
func BenchmarkFlattenNames(b *testing.B) {
	body := []byte(benchBody)
	names := NewNames()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		readings, _, _, err := flatten(body, names)
		if err != nil || len(readings) != 10 {
			b.Fatalf("flatten: %d readings, %v", len(readings), err)
		}
	}
}

func FuzzFlatten(f *testing.F) {
	for _, name := range []string{"telemetry_nested.json", "telemetry_python_nan.json"} {
		f.Add(readTestdata(f, name))
	}
	for _, s := range []string{benchBody, `{}`, `{"a":[{"b":[1]}]}`, `{"ts":"2024-05-01T10:00:00Z"}`, `{"a\u00e9\ud800":1e400}`, `{"a":1`, ``} {
		f.Add([]byte(s))
	}
	names := NewNames() // shared by every input, as the ingest path shares one
	f.Fuzz(func(t *testing.T, body []byte) {
		readings, ts, hasTS, err := Flatten(body)
		// Interned names change nothing but where the strings live.
		if interned := names.NewRecord(Message{Body: body}); err == nil && !slices.Equal(interned.Readings, readings) {
			t.Fatalf("with a Names table: %v, without: %v", interned.Readings, readings)
		}
		// Any JSON object encoding/json accepts, the scanner accepts too.
		if trimmed := strings.TrimLeft(string(body), " \t\r\n"); errors.Is(err, ErrNotJSONObject) &&
			strings.HasPrefix(trimmed, "{") && json.Valid(body) {
			t.Fatalf("Flatten(%q) refused a valid JSON object: %v", body, err)
		}
		if err != nil {
			if readings != nil || hasTS {
				t.Fatalf("error %v came with %d readings and hasTS %v", err, len(readings), hasTS)
			}
			return
		}
		if len(readings) > MaxReadings {
			t.Fatalf("got %d readings, limit %d", len(readings), MaxReadings)
		}
		seen := map[string]bool{}
		for _, r := range readings {
			if r.Metric == "" || len(r.Metric) > MaxMetricName || !utf8.ValidString(r.Metric) {
				t.Fatalf("bad metric name %q", r.Metric)
			}
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
				t.Fatalf("metric %q: non-finite value %v", r.Metric, r.Value)
			}
			if seen[r.Metric] {
				t.Fatalf("metric %q appears twice", r.Metric)
			}
			seen[r.Metric] = true
		}
		if !hasTS && !ts.IsZero() {
			t.Fatalf("hasTS false but ts %v", ts)
		}
		// Whatever Flatten accepts without non-standard literals is JSON.
		if !strings.Contains(string(body), "NaN") && !strings.Contains(string(body), "Infinity") && !json.Valid(body[skipBOM(body):]) {
			t.Fatalf("Flatten accepted invalid JSON %q", body)
		}
	})
}
