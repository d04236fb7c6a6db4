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
