package db

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"fieldhub/storage"
)

func TestParseSearch(t *testing.T) {
	tests := []struct {
		q    string
		want []searchTerm
	}{
		{"", nil},
		{"  \t ", nil},
		{"pump", []searchTerm{{Text: "pump"}}},
		{"site=berlin", []searchTerm{{Tag: true, Key: "site", Value: "berlin"}}},
		{" site=berlin  kind=climate pump ", []searchTerm{
			{Tag: true, Key: "site", Value: "berlin"}, {Tag: true, Key: "kind", Value: "climate"}, {Text: "pump"}}},
		{"empty=", []searchTerm{{Tag: true, Key: "empty", Value: ""}}},
		{"a=b=c", []searchTerm{{Tag: true, Key: "a", Value: "b=c"}}},
		{`site="new york"`, []searchTerm{{Tag: true, Key: "site", Value: "new york"}}},
		{`"floor level"=2`, []searchTerm{{Tag: true, Key: "floor level", Value: "2"}}},
		{`"a=b"`, []searchTerm{{Text: "a=b"}}},
		{`""`, nil},
		{`k=""`, []searchTerm{{Tag: true, Key: "k", Value: ""}}},
		{`note="say \"hi\" \\o/"`, []searchTerm{{Tag: true, Key: "note", Value: `say "hi" \o/`}}},
		{`back\slash`, []searchTerm{{Text: `back\slash`}}},
		{`site="new yo`, []searchTerm{{Tag: true, Key: "site", Value: "new yo"}}}, // typed so far
		{`"open\`, []searchTerm{{Text: `open\`}}},
	}
	for _, tt := range tests {
		got, err := parseSearch(tt.q)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseSearch(%q) = %+v, %v; want %+v", tt.q, got, err, tt.want)
		}
	}
	for _, bad := range []struct{ q, want string }{
		{"=berlin", `"=berlin" has no tag name`},
		{`""=x`, `"\"\"=x" has no tag name`},
		{strings.Repeat("a ", MaxSearchTerms+1), "more than 8 terms"},
		{strings.Repeat("a", MaxSearchLength+1), "at most 512"},
	} {
		_, err := parseSearch(bad.q)
		var inv *storage.InvalidError
		if !errors.As(err, &inv) || inv.Field != "q" || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseSearch(%.30q) = %v, want an invalid q saying %q", bad.q, err, bad.want)
		}
	}
}

// quoteSearch writes terms back in the search syntax, every part quoted.
func quoteSearch(terms []searchTerm) string {
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	parts := make([]string, len(terms))
	for i, t := range terms {
		if t.Tag {
			parts[i] = q(t.Key) + "=" + q(t.Value)
		} else {
			parts[i] = q(t.Text)
		}
	}
	return strings.Join(parts, " ")
}

// FuzzParseSearch: whatever is typed, parsing ends in terms or a clear
// error, never a panic; terms are within bounds, a tag always has a name,
// and the terms written back quoted parse to the same terms.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{"site=berlin kind=climate", `site="new york" "a=b"`, `"x\"y\\"`, "=x", `"`, "a\u00a0b", "\xff=\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		terms, err := parseSearch(q)
		if err != nil {
			var inv *storage.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("parseSearch(%q): error %v is not an InvalidError", q, err)
			}
			return
		}
		if len(terms) > MaxSearchTerms {
			t.Fatalf("parseSearch(%q): %d terms", q, len(terms))
		}
		for _, term := range terms {
			if term.Tag && term.Key == "" || !term.Tag && term.Text == "" {
				t.Fatalf("parseSearch(%q): empty term %+v", q, term)
			}
		}
		quoted := quoteSearch(terms)
		if len(quoted) > MaxSearchLength {
			return // quoting made it longer than a search may be
		}
		again, err := parseSearch(quoted)
		if err != nil || !reflect.DeepEqual(again, terms) {
			t.Fatalf("parseSearch(%q) = %+v; written back as %q it parses to %+v, %v", q, terms, quoteSearch(terms), again, err)
		}
	})
}

// FuzzTagList: any tags that pass validation survive FormatTagList and
// ParseTagList; any input to ParseTagList ends in tags or an InvalidError.
func FuzzTagList(f *testing.F) {
	f.Add("site", "berlin", "note", `a;b=c\d "e"`)
	f.Add("k;1", "=", "", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		tags := map[string]string{k1: v1, k2: v2}
		if validateTags(tags) == nil {
			got, err := ParseTagList(FormatTagList(tags))
			if err != nil || !reflect.DeepEqual(got, tags) {
				t.Fatalf("tags %q written as %q read back as %q, %v", tags, FormatTagList(tags), got, err)
			}
		}
		raw := k1 + v1 + k2 + v2
		if _, err := ParseTagList(raw); err != nil {
			var inv *storage.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("ParseTagList(%q): %v is not an InvalidError", raw, err)
			}
		}
	})
}

func TestTagList(t *testing.T) {
	tags := map[string]string{"site": "berlin", "k;1": `v=1;x\y "q"`, "empty": ""}
	const want = `empty=;k\;1=v\=1\;x\\y "q";site=berlin`
	if got := FormatTagList(tags); got != want {
		t.Errorf("FormatTagList = %q, want %q", got, want)
	}
	for _, bad := range []string{"site", "a=1;a=2", `a=1\`, "=x"} {
		if _, err := ParseTagList(bad); err == nil {
			t.Errorf("ParseTagList(%q) accepted it", bad)
		}
	}
	if got, err := ParseTagList(""); err != nil || len(got) != 0 {
		t.Errorf("ParseTagList(\"\") = %v, %v", got, err)
	}
}
