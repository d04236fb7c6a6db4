package db_test

import (
	"encoding/json"
	"strings"
	"testing"

	"fieldhub/db"
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMergePatch(t *testing.T) {
	// Cases from RFC 7386, appendix A, restricted to object documents and patches.
	tests := []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{`{"a":{"x":1,"y":{"z":2}}}`, `{"a":{"y":{"w":3}}}`, `{"a":{"x":1,"y":{"w":3,"z":2}}}`},
		{`{"n":12345678901234567890}`, `{}`, `{"n":12345678901234567890}`},
	}
	for _, tt := range tests {
		var target, patch map[string]any
		dec := func(s string, v *map[string]any) {
			d := json.NewDecoder(strings.NewReader(s))
			d.UseNumber()
			if err := d.Decode(v); err != nil {
				t.Fatal(err)
			}
		}
		dec(tt.target, &target)
		dec(tt.patch, &patch)
		if got := mustJSON(t, db.MergePatch(target, patch)); got != tt.want {
			t.Errorf("merge %s into %s = %s, want %s", tt.patch, tt.target, got, tt.want)
		}
	}
}
