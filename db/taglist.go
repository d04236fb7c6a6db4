package db

import (
	"sort"
	"strings"
)

// FormatTagList writes tags as one CSV field, "k=v;k2=v2" in key order
// (docs/api.md, "Export as CSV"). In keys and values a backslash, ';' and
// '=' are escaped with a backslash, so any tag survives ParseTagList.
func FormatTagList(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(';')
		}
		tagListEscaper.WriteString(&b, k)
		b.WriteByte('=')
		tagListEscaper.WriteString(&b, tags[k])
	}
	return b.String()
}

var tagListEscaper = strings.NewReplacer(`\`, `\\`, `;`, `\;`, `=`, `\=`)

// ParseTagList reads FormatTagList's form back and checks the tags.
func ParseTagList(s string) (map[string]string, error) {
	tags := map[string]string{}
	if s == "" {
		return tags, nil
	}
	var key, cur strings.Builder
	inValue := false
	end := func() error {
		if !inValue {
			return invalid("tags", "%q is not key=value", clipText(cur.String(), 40))
		}
		k := key.String()
		if _, dup := tags[k]; dup {
			return invalid("tags", "tag %q is given twice", clipText(k, 40))
		}
		tags[k] = cur.String()
		key.Reset()
		cur.Reset()
		inValue = false
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			if i+1 == len(s) {
				return nil, invalid("tags", "a tag list may not end in a lone backslash")
			}
			i++
			cur.WriteByte(s[i])
		case c == '=' && !inValue:
			key.WriteString(cur.String())
			cur.Reset()
			inValue = true
		case c == ';':
			if err := end(); err != nil {
				return nil, err
			}
		default:
			cur.WriteByte(c)
		}
	}
	if err := end(); err != nil {
		return nil, err
	}
	return tags, validateTags(tags)
}
