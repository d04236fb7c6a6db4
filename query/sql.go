package query

import (
	"fmt"
	"strconv"
	"strings"
)

// Dialect is the SQL that conditions compile to.
type Dialect struct {
	postgres bool
	first    int // number of the first $n placeholder
}

// The dialects: SQLite with its JSON functions (json_type, json_extract),
// and PostgreSQL with jsonb.
var (
	SQLite     = Dialect{}
	PostgreSQL = Dialect{postgres: true, first: 1}
)

// FirstParam returns the dialect with its placeholders numbered from n
// ($n, $n+1, …), for a condition placed after n-1 parameters of the
// caller's own. SQLite's ? placeholders are positional and need no offset.
func (d Dialect) FirstParam(n int) Dialect {
	d.first = n
	return d
}

// ColumnType says how an SQL expression holds its part of the document.
type ColumnType uint8

// Column types.
const (
	JSON   ColumnType = iota + 1 // a JSON object: TEXT for SQLite, jsonb for PostgreSQL; fields below it are read with JSON functions
	String                       // a string; SQL NULL is undefined
	Number                       // a number; SQL NULL is undefined
	Bool                         // a Boolean (0 or 1 in SQLite); SQL NULL is undefined
)

// SQLField is where a part of the device document lives: an SQL expression
// over the caller's tables, pasted into the compiled condition as it is.
type SQLField struct {
	Expr string
	Type ColumnType
}

// FieldMapper maps fields of the device document, by their dotted path
// ("deviceId", "tags", "properties.reported"), to SQL. A field below a JSON
// mapping is read from it ("tags.site" from "tags"); a field that is a
// prefix of mappings ("properties") is an object; any other field is
// undefined, so the document the evaluator sees must hold the same data.
type FieldMapper map[string]SQLField

// SQL compiles the WHERE clause to an SQL Boolean expression whose value
// for a row is the query's value for the device: true, false or NULL for
// undefined. Every constant of the query is a bound parameter in args; only
// the mapper's expressions are pasted into the SQL. A query without WHERE
// compiles to a true constant. TOP, projections and grouping are the
// caller's (Project, Grouper).
func (q *Query) SQL(d Dialect, m FieldMapper) (where string, args []any, err error) {
	return CondSQL(q.Where, d, m)
}

// CondSQL compiles a condition as Query.SQL does; c may be nil.
func CondSQL(c Cond, d Dialect, m FieldMapper) (where string, args []any, err error) {
	cc := &compiler{pg: d.postgres, first: d.first, pgKeys: map[string]string{}}
	if cc.pg && cc.first < 1 {
		return "", nil, fmt.Errorf("query: PostgreSQL placeholders start at $1, not $%d", cc.first)
	}
	for key, f := range m {
		path := strings.Split(key, ".")
		for _, name := range path {
			if name == "" {
				return "", nil, fmt.Errorf("query: field mapper: bad field %q", key)
			}
		}
		if f.Type < JSON || f.Type > Bool || strings.TrimSpace(f.Expr) == "" {
			return "", nil, fmt.Errorf("query: field mapper: %q needs an expression and a column type", key)
		}
		cc.mapped = append(cc.mapped, mapping{path: path, f: f})
	}
	if c == nil {
		return cc.constant(yes), nil, nil
	}
	return cc.cond(c), cc.args, nil
}

type compiler struct {
	pg     bool
	first  int
	mapped []mapping
	args   []any
	pgKeys map[string]string // placeholder of each field name bound so far (PostgreSQL can reuse them)
}

type mapping struct {
	path []string
	f    SQLField
}

// operand kinds in SQL
type sqlKind uint8

const (
	sUndefined sqlKind = iota // a field nothing maps
	sObject                   // a prefix of mapped fields
	sConst                    // a literal
	sScalar                   // a String, Number or Bool column
	sJSON                     // a field in a JSON column
)

type sqlOperand struct {
	k    sqlKind
	lit  any
	lk   kind // kind of the literal, or of the scalar column
	expr string
	path []string // below the JSON column
}

func (c *compiler) resolve(o Operand) sqlOperand {
	if l, ok := o.(Literal); ok {
		return sqlOperand{k: sConst, lit: l.Value, lk: kindOf(l.Value)}
	}
	path := o.(Field).Path
	var best *mapping
	prefix := false
	for i := range c.mapped {
		m := &c.mapped[i]
		n := min(len(m.path), len(path))
		if !Path(m.path[:n]).equal(path[:n]) {
			continue
		}
		if len(m.path) > len(path) {
			prefix = true
		} else if best == nil || len(m.path) > len(best.path) {
			best = m
		}
	}
	switch {
	case best != nil && best.f.Type == JSON:
		return sqlOperand{k: sJSON, expr: best.f.Expr, path: path[len(best.path):]}
	case best != nil && len(best.path) == len(path):
		k := map[ColumnType]kind{String: kString, Number: kNumber, Bool: kBool}[best.f.Type]
		return sqlOperand{k: sScalar, lk: k, expr: best.f.Expr}
	case best == nil && prefix:
		return sqlOperand{k: sObject}
	}
	return sqlOperand{k: sUndefined}
}

func (c *compiler) param(v any) string {
	c.args = append(c.args, v)
	if c.pg {
		return "$" + strconv.Itoa(c.first+len(c.args)-1)
	}
	return "?"
}

func (c *compiler) constant(t tri) string {
	switch {
	case t == yes && c.pg:
		return "TRUE"
	case t == yes:
		return "1"
	case t == no && c.pg:
		return "FALSE"
	case t == no:
		return "0"
	case c.pg:
		return "NULL::boolean"
	}
	return "NULL"
}

var pathQuoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// jsonPath is SQLite's path of names below a JSON column: $."a"."b".
func jsonPath(path []string) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, name := range path {
		b.WriteString(`."`)
		b.WriteString(pathQuoter.Replace(name))
		b.WriteByte('"')
	}
	return b.String()
}

// jsonb is PostgreSQL's value of a JSON operand: the column followed by ->
// for each name, each name bound once.
func (c *compiler) jsonb(o sqlOperand) string {
	var b strings.Builder
	b.WriteString("((")
	b.WriteString(o.expr)
	b.WriteString(")")
	for _, name := range o.path {
		ph, ok := c.pgKeys[name]
		if !ok {
			ph = c.param(name) + "::text"
			c.pgKeys[name] = ph
		}
		b.WriteString(" -> ")
		b.WriteString(ph)
	}
	b.WriteString(")")
	return b.String()
}

// jsonType is the SQL type name of a JSON operand, NULL when it is missing.
func (c *compiler) jsonType(o sqlOperand) string {
	if c.pg {
		return "jsonb_typeof(" + c.jsonb(o) + ")"
	}
	return "json_type((" + o.expr + "), " + c.param(jsonPath(o.path)) + ")"
}

// typeNames are the names json_type (SQLite) and jsonb_typeof (PostgreSQL)
// give each kind.
var typeNames = map[kind][2]string{
	kNull:   {"'null'", "'null'"},
	kBool:   {"'true', 'false'", "'boolean'"},
	kNumber: {"'integer', 'real'", "'number'"},
	kString: {"'text'", "'string'"},
	kObject: {"'object'", "'object'"},
	kArray:  {"'array'", "'array'"},
}

// isKind is true when the JSON operand o is of kind k, NULL when missing.
func (c *compiler) isKind(o sqlOperand, k kind) string {
	names := typeNames[k][0]
	if c.pg {
		names = typeNames[k][1]
	}
	if strings.Contains(names, ",") {
		return c.jsonType(o) + " IN (" + names + ")"
	}
	return c.jsonType(o) + " = " + names
}

// val is the SQL value of o, known to be of primitive kind k (not null):
// strings as text, numbers as numbers, Booleans as 0/1 (SQLite) or boolean.
func (c *compiler) val(o sqlOperand, k kind) string {
	switch o.k {
	case sConst:
		switch v := o.lit.(type) {
		case bool:
			if c.pg {
				return strings.ToUpper(strconv.FormatBool(v))
			}
			if v {
				return "1"
			}
			return "0"
		case float64:
			if c.pg {
				// As text: a float64 parameter could reach numeric as its
				// exact binary value, 0.1000000000000000055…
				return c.param(strconv.FormatFloat(v, 'g', -1, 64)) + "::text::numeric"
			}
			return c.param(v)
		case string:
			if c.pg {
				return c.param(v) + "::text"
			}
			return c.param(v)
		}
	case sScalar:
		return "(" + o.expr + ")"
	case sJSON:
		if !c.pg {
			return "json_extract((" + o.expr + "), " + c.param(jsonPath(o.path)) + ")"
		}
		switch k {
		case kString:
			return "(" + c.jsonb(o) + " #>> '{}')"
		case kNumber:
			return c.jsonb(o) + "::numeric"
		case kBool:
			return c.jsonb(o) + "::boolean"
		}
	}
	panic(fmt.Sprintf("query: no SQL value for operand kind %d", o.k))
}

// collate makes PostgreSQL compare strings byte by byte, as Go does,
// whatever the database's collation; SQLite's default is already BINARY.
func (c *compiler) collate(k kind, s string) string {
	if c.pg && k == kString {
		return "(" + s + ` COLLATE "C")`
	}
	return s
}

var sqlOps = map[Op]string{Equal: "=", NotEqual: "<>", Less: "<", LessEqual: "<=", Greater: ">", GreaterEqual: ">="}

// primitives are the kinds a JSON field may compare as, in the order the
// compiled CASE tests them.
var primitives = []kind{kString, kNumber, kBool, kNull}

// kinds returns the primitive kinds o may have.
func kinds(o sqlOperand) []kind {
	switch o.k {
	case sConst, sScalar:
		if o.lk == kUndefined || o.lk == kObject || o.lk == kArray {
			return nil
		}
		return []kind{o.lk}
	case sJSON:
		return primitives
	}
	return nil
}

// branches writes CASE WHEN guard THEN result … END, or the one result
// alone when it needs no guard, or NULL when there is no branch.
func (c *compiler) branches(guards, results []string) string {
	switch {
	case len(results) == 0:
		return c.constant(unknown)
	case len(results) == 1 && guards[0] == "":
		return results[0]
	}
	var b strings.Builder
	b.WriteString("(CASE")
	for i := range results {
		b.WriteString(" WHEN ")
		b.WriteString(guards[i])
		b.WriteString(" THEN ")
		b.WriteString(results[i])
	}
	b.WriteString(" END)")
	return b.String()
}

// guard is the condition that the operands are strings, numbers, … when
// JSON fields have to be tested for it; "" when none has.
func (c *compiler) guard(k kind, ops ...sqlOperand) string {
	var g []string
	for _, o := range ops {
		if o.k == sJSON {
			g = append(g, c.isKind(o, k))
		}
	}
	return strings.Join(g, " AND ")
}

func (c *compiler) cond(x Cond) string {
	switch x := x.(type) {
	case *And:
		return c.join(x.Terms, " AND ")
	case *Or:
		return c.join(x.Terms, " OR ")
	case *Not:
		return "(NOT " + c.cond(x.Cond) + ")"
	case *Compare:
		return c.compare(x)
	case *In:
		return c.in(x)
	case *Call:
		return c.call(x)
	case *Truth:
		return c.truth(x)
	}
	panic(fmt.Sprintf("query: cannot compile %T", x))
}

func (c *compiler) join(terms []Cond, op string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = c.cond(t)
	}
	return "(" + strings.Join(parts, op) + ")"
}

func (c *compiler) compare(x *Compare) string {
	l, r := c.resolve(x.Left), c.resolve(x.Right)
	if l.k == sConst && r.k == sConst {
		return c.constant(compare(x.Op, l.lit, l.lk, r.lit, r.lk))
	}
	var guards, results []string
	for _, k := range kinds(l) {
		if !containsKind(kinds(r), k) {
			continue
		}
		guards = append(guards, c.guard(k, l, r))
		if k == kNull {
			results = append(results, c.constant(triOf(x.Op == Equal || x.Op == LessEqual || x.Op == GreaterEqual)))
			continue
		}
		results = append(results, "("+c.collate(k, c.val(l, k))+" "+sqlOps[x.Op]+" "+c.val(r, k)+")")
	}
	return c.branches(guards, results)
}

func containsKind(ks []kind, k kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func (c *compiler) in(x *In) string {
	o := c.resolve(x.Operand)
	if o.k == sConst {
		return c.constant(x.eval(nil))
	}
	var guards, results []string
	for _, k := range kinds(o) {
		var matches []Literal
		for _, v := range x.Values {
			if kindOf(v.Value) == k {
				matches = append(matches, v)
			}
		}
		if len(matches) == 0 {
			continue // every value is of another type: undefined, the ELSE of the CASE
		}
		// SQLite's placeholders are positional: bind in the order of the text.
		guards = append(guards, c.guard(k, o))
		if k == kNull {
			results = append(results, c.constant(yes))
			continue
		}
		res := "(" + c.collate(k, c.val(o, k)) + " IN ("
		for i, v := range matches {
			if i > 0 {
				res += ", "
			}
			res += c.val(sqlOperand{k: sConst, lit: v.Value, lk: k}, k)
		}
		res += "))"
		if len(matches) < len(x.Values) {
			// Values of other types make a miss undefined, not false.
			res = "(CASE WHEN " + res + " THEN " + c.constant(yes) + " END)"
		}
		results = append(results, res)
	}
	s := c.branches(guards, results)
	if x.Not {
		return "(NOT " + s + ")"
	}
	return s
}

func (c *compiler) call(x *Call) string {
	a := c.resolve(x.Args[0])
	if x.Func.arity() == 1 {
		return c.typeTest(x.Func, a)
	}
	b := c.resolve(x.Args[1])
	if a.k == sConst && b.k == sConst {
		return c.constant(x.eval(nil))
	}
	if !containsKind(kinds(a), kString) || !containsKind(kinds(b), kString) {
		return c.constant(unknown)
	}
	guard := c.guard(kString, a, b) // first: SQLite's placeholders are positional
	var res string
	if c.pg {
		sa, sb := c.val(a, kString), c.val(b, kString)
		switch x.Func {
		case StartsWith:
			res = "starts_with(" + sa + ` COLLATE "C", ` + sb + ")"
		case EndsWith:
			res = "(right(" + sa + ", length(" + sb + `)) COLLATE "C" = ` + sb + ")"
		case Contains:
			res = "(strpos(" + sa + ` COLLATE "C", ` + sb + ") > 0)"
		}
	} else {
		// As BLOBs: SQLite counts text up to a NUL; bytes are what Go
		// compares. substr of an empty BLOB is NULL, hence the CASE.
		blob := func(o sqlOperand) string { return "CAST(" + c.val(o, kString) + " AS BLOB)" }
		switch x.Func {
		case StartsWith:
			res = "(instr(" + blob(a) + ", " + blob(b) + ") = 1)"
		case EndsWith:
			res = "(CASE WHEN length(" + blob(b) + ") = 0 THEN length(" + blob(a) + ") >= 0" +
				" WHEN length(" + blob(a) + ") < length(" + blob(b) + ") THEN 0" +
				" ELSE substr(" + blob(a) + ", length(" + blob(a) + ") - length(" + blob(b) + ") + 1) = " + blob(b) + " END)"
		case Contains:
			res = "(instr(" + blob(a) + ", " + blob(b) + ") > 0)"
		}
	}
	return c.branches([]string{guard}, []string{res})
}

// typeTest compiles IS_DEFINED, IS_NULL, IS_STRING, …: never undefined.
func (c *compiler) typeTest(f Func, a sqlOperand) string {
	var want []kind
	switch f {
	case IsNull:
		want = []kind{kNull}
	case IsBool:
		want = []kind{kBool}
	case IsNumber:
		want = []kind{kNumber}
	case IsString:
		want = []kind{kString}
	case IsObject:
		want = []kind{kObject}
	case IsArray:
		want = []kind{kArray}
	case IsPrimitive:
		want = []kind{kNull, kBool, kNumber, kString}
	}
	switch a.k {
	case sConst:
		return c.constant((&Call{Func: f, Args: []Operand{Literal{Value: a.lit}}}).eval(nil))
	case sUndefined:
		return c.constant(no)
	case sObject:
		return c.constant(triOf(f == IsDefined || f == IsObject))
	case sScalar:
		if f == IsDefined || containsKind(want, a.lk) {
			return "((" + a.expr + ") IS NOT NULL)"
		}
		return c.constant(no)
	}
	if f == IsDefined {
		return "(" + c.jsonType(a) + " IS NOT NULL)"
	}
	var names []string
	for _, k := range want {
		if c.pg {
			names = append(names, typeNames[k][1])
		} else {
			names = append(names, typeNames[k][0])
		}
	}
	return "COALESCE(" + c.jsonType(a) + " IN (" + strings.Join(names, ", ") + "), " + c.constant(no) + ")"
}

func (c *compiler) truth(x *Truth) string {
	o := c.resolve(x.Operand)
	switch o.k {
	case sConst:
		return c.constant(x.eval(nil))
	case sScalar:
		if o.lk == kBool {
			return "(" + o.expr + ")"
		}
	case sJSON:
		if c.pg {
			return "(CASE WHEN " + c.isKind(o, kBool) + " THEN " + c.val(o, kBool) + " END)"
		}
		return "(CASE " + c.jsonType(o) + " WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"
	}
	return c.constant(unknown)
}
