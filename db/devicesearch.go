package db

import (
	"strings"
	"unicode"
)

// The fleet search box's syntax (docs/api.md, "Searching the fleet"):
//
//	site=berlin kind=climate   tags, exactly; terms are AND-ed
//	pump                       id, name, tag key or tag value containing it, any letter case
//	site="new york" "a b"      quotes keep spaces and '=' in one term; \" and \\ inside quotes
//
// A quote left open runs to the end, so a search typed letter by letter is
// never an error on the way.

// Search bounds: the box is typed into, not a query language, and every term
// costs a pass over the fleet.
const (
	MaxSearchLength = 512
	MaxSearchTerms  = 8
)

// searchTerm is one condition of a search: a tag (Key, Value) when Tag is
// true, else Text anywhere in the id, name or tags.
type searchTerm struct {
	Tag   bool
	Key   string
	Value string
	Text  string
}

// parseSearch splits a search into its terms and says what is wrong with it.
func parseSearch(q string) ([]searchTerm, error) {
	if len(q) > MaxSearchLength {
		return nil, invalid("q", "search is %d bytes long; at most %d are allowed", len(q), MaxSearchLength)
	}
	var terms []searchTerm
	var (
		cur     strings.Builder // the term so far, quotes removed
		raw     strings.Builder // as typed, for error messages
		eq      = -1            // index in cur of the first unquoted '='
		inQuote bool
		escaped bool
	)
	flush := func() error {
		s := cur.String()
		switch {
		case eq >= 0:
			if eq == 0 {
				return invalid("q", "search term %q has no tag name before '='; write name=value, or put text with '=' in quotes", raw.String())
			}
			terms = append(terms, searchTerm{Tag: true, Key: s[:eq], Value: s[eq+1:]})
		case s != "": // "" alone asks for nothing in particular
			terms = append(terms, searchTerm{Text: s})
		}
		if len(terms) > MaxSearchTerms {
			return invalid("q", "search has more than %d terms", MaxSearchTerms)
		}
		cur.Reset()
		raw.Reset()
		eq = -1
		return nil
	}
	for _, r := range q {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case inQuote && r == '\\':
			escaped = true
		case r == '"':
			inQuote = !inQuote
		case !inQuote && unicode.IsSpace(r):
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		case !inQuote && r == '=' && eq < 0:
			eq = cur.Len()
			cur.WriteRune(r)
		default:
			cur.WriteRune(r)
		}
		raw.WriteRune(r)
	}
	if escaped { // a trailing backslash inside an open quote stands for itself
		cur.WriteByte('\\')
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return terms, nil
}

// likeEscaper makes user text literal in a LIKE pattern with ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// searchSQL is the WHERE condition of a parsed search and its arguments.
// Tags are matched through json_each, so a term never matches the JSON
// punctuation around them.
func searchSQL(terms []searchTerm) (string, []any) {
	conds := make([]string, 0, len(terms))
	var args []any
	for _, t := range terms {
		if t.Tag {
			conds = append(conds, `EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE key = ? AND value = ?)`)
			args = append(args, t.Key, t.Value)
			continue
		}
		like := "%" + likeEscaper.Replace(t.Text) + "%"
		conds = append(conds, `(device_id LIKE ? ESCAPE '\' OR name LIKE ? ESCAPE '\'
			OR EXISTS (SELECT 1 FROM json_each(devices.tags) WHERE key LIKE ? ESCAPE '\' OR value LIKE ? ESCAPE '\'))`)
		args = append(args, like, like, like, like)
	}
	return strings.Join(conds, " AND "), args
}

// SearchTerm is one condition of a fleet search, for stores that build
// their own SQL from it: a tag (Key, Value) when Tag is true, else Text
// anywhere in the id, name, tag names or values, in any letter case.
type SearchTerm = searchTerm

// ParseSearch splits a fleet search into its terms, or says what is wrong
// with it (an *storage.InvalidError naming "q").
func ParseSearch(q string) ([]SearchTerm, error) { return parseSearch(q) }
