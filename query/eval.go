package query

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
)

// tri is the value of a condition: besides true and false, undefined, the
// result of comparing values of different types or a field that is not
// there. Only true matches; NOT undefined is undefined.
type tri uint8

const (
	no tri = iota
	yes
	unknown
)

func triOf(b bool) tri {
	if b {
		return yes
	}
	return no
}

// kind is the JSON type of a value.
type kind uint8

const (
	kUndefined kind = iota // missing, or a Go type that is not JSON-like
	kNull
	kBool
	kNumber
	kString
	kObject
	kArray
)

func kindOf(v any) kind {
	switch v := v.(type) {
	case nil:
		return kNull
	case bool:
		return kBool
	case string:
		return kString
	case float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return kNumber
	case json.Number:
		if _, err := strconv.ParseFloat(string(v), 64); err != nil && !isRangeErr(err) {
			return kUndefined
		}
		return kNumber
	case map[string]any, map[string]string:
		return kObject
	case []any, []string, []float64, []map[string]any:
		return kArray
	}
	return kUndefined
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// number returns v, of kind kNumber, as a float64.
func number(v any) float64 {
	switch v := v.(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case int:
		return float64(v)
	case int8:
		return float64(v)
	case int16:
		return float64(v)
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case uint:
		return float64(v)
	case uint8:
		return float64(v)
	case uint16:
		return float64(v)
	case uint32:
		return float64(v)
	case uint64:
		return float64(v)
	case json.Number:
		f, _ := strconv.ParseFloat(string(v), 64) // ±Inf when out of range
		return f
	}
	return math.NaN()
}

// lookup returns the value at path in doc, and whether it is there.
func lookup(doc map[string]any, path Path) (any, bool) {
	var cur any = doc
	for _, name := range path {
		switch m := cur.(type) {
		case map[string]any:
			v, ok := m[name]
			if !ok {
				return nil, false
			}
			cur = v
		case map[string]string:
			v, ok := m[name]
			if !ok {
				return nil, false
			}
			cur = v
		default:
			return nil, false
		}
	}
	return cur, true
}

// value evaluates an operand: its value and kind, kUndefined when missing.
func value(o Operand, doc map[string]any) (any, kind) {
	switch o := o.(type) {
	case Literal:
		return o.Value, kindOf(o.Value)
	case Field:
		v, ok := lookup(doc, o.Path)
		if !ok {
			return nil, kUndefined
		}
		return v, kindOf(v)
	}
	return nil, kUndefined
}

// compareValues compares a and b of the same primitive kind k: -1, 0 or 1.
func compareValues(k kind, a, b any) int {
	switch k {
	case kBool:
		x, y := a.(bool), b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case kNumber:
		x, y := number(a), number(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case kString:
		return strings.Compare(a.(string), b.(string))
	}
	return 0 // null equals null
}

// compare applies op: undefined unless both sides have the same primitive
// type (Azure compares primitives only; objects and arrays are undefined).
func compare(op Op, a any, ka kind, b any, kb kind) tri {
	if ka != kb || ka == kUndefined || ka == kObject || ka == kArray {
		return unknown
	}
	c := compareValues(ka, a, b)
	switch op {
	case Equal:
		return triOf(c == 0)
	case NotEqual:
		return triOf(c != 0)
	case Less:
		return triOf(c < 0)
	case LessEqual:
		return triOf(c <= 0)
	case Greater:
		return triOf(c > 0)
	case GreaterEqual:
		return triOf(c >= 0)
	}
	return unknown
}

func (c *And) eval(doc map[string]any) tri {
	r := yes
	for _, t := range c.Terms {
		switch t.eval(doc) {
		case no:
			return no
		case unknown:
			r = unknown
		}
	}
	return r
}

func (c *Or) eval(doc map[string]any) tri {
	r := no
	for _, t := range c.Terms {
		switch t.eval(doc) {
		case yes:
			return yes
		case unknown:
			r = unknown
		}
	}
	return r
}

func (c *Not) eval(doc map[string]any) tri {
	switch c.Cond.eval(doc) {
	case yes:
		return no
	case no:
		return yes
	}
	return unknown
}

func (c *Compare) eval(doc map[string]any) tri {
	a, ka := value(c.Left, doc)
	b, kb := value(c.Right, doc)
	return compare(c.Op, a, ka, b, kb)
}

// eval is the disjunction of x = v over the values (NIN negates it): true
// when one is equal, else undefined when one has another type than x (or x
// is undefined), else false.
func (c *In) eval(doc map[string]any) tri {
	x, kx := value(c.Operand, doc)
	r := no
	for _, v := range c.Values {
		switch compare(Equal, x, kx, v.Value, kindOf(v.Value)) {
		case yes:
			if c.Not {
				return no
			}
			return yes
		case unknown:
			r = unknown
		}
	}
	if r == no && c.Not {
		return yes
	}
	return r
}

func (c *Call) eval(doc map[string]any) tri {
	a, ka := value(c.Args[0], doc)
	switch c.Func {
	case IsDefined:
		return triOf(ka != kUndefined)
	case IsNull:
		return triOf(ka == kNull)
	case IsBool:
		return triOf(ka == kBool)
	case IsNumber:
		return triOf(ka == kNumber)
	case IsString:
		return triOf(ka == kString)
	case IsObject:
		return triOf(ka == kObject)
	case IsArray:
		return triOf(ka == kArray)
	case IsPrimitive:
		return triOf(ka == kNull || ka == kBool || ka == kNumber || ka == kString)
	}
	b, kb := value(c.Args[1], doc)
	if ka != kString || kb != kString {
		return unknown
	}
	s, sub := a.(string), b.(string)
	switch c.Func {
	case StartsWith:
		return triOf(strings.HasPrefix(s, sub))
	case EndsWith:
		return triOf(strings.HasSuffix(s, sub))
	case Contains:
		return triOf(strings.Contains(s, sub))
	}
	return unknown
}

func (c *Truth) eval(doc map[string]any) tri {
	v, k := value(c.Operand, doc)
	if k != kBool {
		return unknown
	}
	return triOf(v.(bool))
}

// Match reports whether the device document doc satisfies the WHERE clause.
// doc is JSON-like: map[string]any, []any, string, float64 (or another Go
// number, or json.Number), bool and nil; values of other types are taken
// as undefined.
func (q *Query) Match(doc map[string]any) bool {
	return q.Where == nil || q.Where.eval(doc) == yes
}

// Project returns the row of a non-aggregate query for a matching device:
// the document itself for SELECT *, else an object of the selected fields
// (fields the device does not have are left out, as Azure does). For
// aggregate queries use a Grouper.
func (q *Query) Project(doc map[string]any) map[string]any {
	if q.Star {
		return doc
	}
	names := q.names()
	row := make(map[string]any, len(q.Columns))
	for i, c := range q.Columns {
		if c.Count {
			continue
		}
		if v, ok := lookup(doc, c.Path); ok {
			row[names[i]] = v
		}
	}
	return row
}

// Grouper computes the rows of an aggregate query (COUNT(), GROUP BY) from
// the devices that match it, added one by one.
type Grouper struct {
	q      *Query
	names  []string
	groups []*group
	index  map[string]*group
}

type group struct {
	values []any // one per GROUP BY field, nil when undefined
	there  []bool
	count  int
}

// NewGrouper returns an empty Grouper for q.
func (q *Query) NewGrouper() *Grouper {
	return &Grouper{q: q, names: q.names(), index: map[string]*group{}}
}

// Add counts doc, a device that matches the query, in its group.
func (g *Grouper) Add(doc map[string]any) {
	var key []byte
	values := make([]any, len(g.q.GroupBy))
	there := make([]bool, len(g.q.GroupBy))
	for i, p := range g.q.GroupBy {
		v, ok := lookup(doc, p)
		if ok && kindOf(v) == kUndefined {
			ok = false
		}
		values[i], there[i] = v, ok
		if ok {
			key = appendCanonical(append(key, 'd'), v)
		} else {
			key = append(key, 'u')
		}
		key = append(key, 0) // canonical JSON has no raw NUL
	}
	gr, ok := g.index[string(key)]
	if !ok {
		gr = &group{values: values, there: there}
		g.index[string(key)] = gr
		g.groups = append(g.groups, gr)
	}
	gr.count++
}

// Rows returns one row per group, in the order the groups were first seen.
// A query that counts without GROUP BY has one row even when no device
// matched, as Azure's SELECT COUNT() does.
func (g *Grouper) Rows() []map[string]any {
	groups := g.groups
	if len(g.q.GroupBy) == 0 && len(groups) == 0 {
		groups = []*group{{}}
	}
	rows := make([]map[string]any, 0, len(groups))
	for _, gr := range groups {
		row := make(map[string]any, len(g.q.Columns))
		for i, c := range g.q.Columns {
			if c.Count {
				row[g.names[i]] = gr.count
				continue
			}
			for j, p := range g.q.GroupBy {
				if p.equal(c.Path) && gr.there[j] {
					row[g.names[i]] = gr.values[j]
					break
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// appendCanonical appends v as JSON with sorted keys and numbers as
// float64, so that equal values give equal keys whatever their Go type.
func appendCanonical(b []byte, v any) []byte {
	switch k := kindOf(v); k {
	case kNull:
		return append(b, "null"...)
	case kBool:
		return strconv.AppendBool(b, v.(bool))
	case kNumber:
		return strconv.AppendFloat(b, number(v), 'g', -1, 64)
	case kString:
		return strconv.AppendQuote(b, v.(string))
	case kObject:
		m := toObject(v)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, k)
			b = append(b, ':')
			b = appendCanonical(b, m[k])
		}
		return append(b, '}')
	case kArray:
		b = append(b, '[')
		for i, e := range toArray(v) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, e)
		}
		return append(b, ']')
	}
	return append(b, "undefined"...)
}

func toObject(v any) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		return v
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		return m
	}
	return nil
}

func toArray(v any) []any {
	switch v := v.(type) {
	case []any:
		return v
	case []string:
		a := make([]any, len(v))
		for i, s := range v {
			a[i] = s
		}
		return a
	case []float64:
		a := make([]any, len(v))
		for i, f := range v {
			a[i] = f
		}
		return a
	case []map[string]any:
		a := make([]any, len(v))
		for i, m := range v {
			a[i] = m
		}
		return a
	}
	return nil
}
