package query

import (
	"strconv"
	"strings"
	"unicode"
)

// Query is a parsed SELECT … FROM devices query.
type Query struct {
	Top     int      // the row limit of SELECT TOP n; -1 when there is none
	Star    bool     // SELECT *
	Columns []Column // the projection when not Star
	Where   Cond     // nil: every device
	GroupBy []Path
}

// Column is one item of a projection: a field or COUNT().
type Column struct {
	Path  Path   // the field; nil for COUNT()
	Count bool   // COUNT()
	Alias string // the name after AS; "" when none was given
}

// Path is a field of the device document, one element per level, with
// Azure's top-level names (deviceId, tags, properties.reported, …) in
// their canonical case.
type Path []string

// Cond is a condition of WHERE or of a job's queryCondition.
type Cond interface {
	// Match reports whether the condition is true for the device document
	// doc (undefined and false both do not match).
	Match(doc map[string]any) bool
	// String returns the condition in the query language; it parses back
	// to the same condition.
	String() string

	eval(doc map[string]any) tri
	write(b *strings.Builder)
}

// And is true when every term is true.
type And struct{ Terms []Cond }

// Or is true when any term is true.
type Or struct{ Terms []Cond }

// Not negates a condition; NOT of undefined stays undefined.
type Not struct{ Cond Cond }

// Compare compares two operands with =, !=, <, <=, > or >=.
type Compare struct {
	Op          Op
	Left, Right Operand
}

// In tests membership in a list of constants: IN, or NIN when Not is set.
type In struct {
	Not     bool
	Operand Operand
	Values  []Literal
}

// Call is a function call such as IS_DEFINED(tags.site).
type Call struct {
	Func Func
	Args []Operand
}

// Truth is an operand used as a condition (WHERE properties.reported.ok):
// true only when the operand is the Boolean true.
type Truth struct{ Operand Operand }

// Operand is a Field or a Literal.
type Operand interface {
	writeOperand(b *strings.Builder)
}

// Field is a reference to a field of the device document.
type Field struct{ Path Path }

// Literal is a constant: a string, a float64, a bool, or nil for null.
type Literal struct{ Value any }

// Op is a comparison operator.
type Op uint8

// Comparison operators. <> is read as NotEqual.
const (
	Equal Op = iota + 1
	NotEqual
	Less
	LessEqual
	Greater
	GreaterEqual
)

var opText = map[Op]string{Equal: "=", NotEqual: "!=", Less: "<", LessEqual: "<=", Greater: ">", GreaterEqual: ">="}

func (o Op) String() string { return opText[o] }

// Func is a function of conditions.
type Func uint8

// The functions of the device query language.
const (
	IsDefined Func = iota + 1
	IsNull
	IsBool
	IsNumber
	IsString
	IsObject
	IsArray
	IsPrimitive
	StartsWith
	EndsWith
	Contains
)

var funcNames = map[Func]string{
	IsDefined: "IS_DEFINED", IsNull: "IS_NULL", IsBool: "IS_BOOL", IsNumber: "IS_NUMBER", IsString: "IS_STRING",
	IsObject: "IS_OBJECT", IsArray: "IS_ARRAY", IsPrimitive: "IS_PRIMITIVE",
	StartsWith: "STARTS_WITH", EndsWith: "ENDS_WITH", Contains: "CONTAINS",
}

func (f Func) String() string { return funcNames[f] }

// arity is the number of arguments f takes.
func (f Func) arity() int {
	if f >= StartsWith {
		return 2
	}
	return 1
}

// String returns the query in the query language; it parses back to the
// same query.
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.Top >= 0 {
		b.WriteString("TOP ")
		b.WriteString(strconv.Itoa(q.Top))
		b.WriteByte(' ')
	}
	if q.Star {
		b.WriteByte('*')
	}
	for i, c := range q.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		if c.Count {
			b.WriteString("COUNT()")
		} else {
			c.Path.write(&b)
		}
		if c.Alias != "" {
			b.WriteString(" AS ")
			writeName(&b, c.Alias)
		}
	}
	b.WriteString(" FROM devices")
	if q.Where != nil {
		b.WriteString(" WHERE ")
		q.Where.write(&b)
	}
	for i, p := range q.GroupBy {
		if i == 0 {
			b.WriteString(" GROUP BY ")
		} else {
			b.WriteString(", ")
		}
		p.write(&b)
	}
	return b.String()
}

// Aggregate reports whether the query groups or counts, so that its rows
// come from a Grouper rather than from Project.
func (q *Query) Aggregate() bool {
	if len(q.GroupBy) > 0 {
		return true
	}
	for _, c := range q.Columns {
		if c.Count {
			return true
		}
	}
	return false
}

// ColumnNames are the property names of a projection's result rows, in
// the order of its columns (nil for SELECT *).
func (q *Query) ColumnNames() []string {
	if q.Star {
		return nil
	}
	return q.names()
}

// names returns the property name of each column in the result rows: the
// alias, else the field's last name, else $1, $2, … for unnamed COUNT()s
// (as Azure names them).
func (q *Query) names() []string {
	names := make([]string, len(q.Columns))
	unnamed := 0
	for i, c := range q.Columns {
		switch {
		case c.Alias != "":
			names[i] = c.Alias
		case c.Count:
			unnamed++
			names[i] = "$" + strconv.Itoa(unnamed)
		default:
			names[i] = c.Path[len(c.Path)-1]
		}
	}
	return names
}

func (p Path) String() string {
	var b strings.Builder
	p.write(&b)
	return b.String()
}

// write prints the first name bare unless it is a keyword or not an
// identifier ([[name]] then, Azure's quoting), later names after a dot, or
// in ['…'] when they are not identifiers.
func (p Path) write(b *strings.Builder) {
	for i, name := range p {
		switch {
		case i == 0:
			writeName(b, name)
		case isIdent(name):
			b.WriteByte('.')
			b.WriteString(name)
		default:
			b.WriteByte('[')
			writeString(b, name)
			b.WriteByte(']')
		}
	}
}

// writeName writes a first path name or an alias.
func writeName(b *strings.Builder, name string) {
	if isIdent(name) && !isReserved(name) {
		b.WriteString(name)
		return
	}
	b.WriteString("[[")
	b.WriteString(name)
	b.WriteString("]]")
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !isIdentRune(r, i == 0) {
			return false
		}
	}
	return true
}

func isIdentRune(r rune, first bool) bool {
	return r == '_' || r == '$' || unicode.IsLetter(r) || (!first && unicode.IsDigit(r))
}

// reserved are the words that cannot start a field path without [[…]].
var reserved = map[string]bool{
	"SELECT": true, "TOP": true, "FROM": true, "WHERE": true, "GROUP": true, "BY": true, "AS": true,
	"AND": true, "OR": true, "NOT": true, "IN": true, "NIN": true, "TRUE": true, "FALSE": true, "NULL": true,
}

func isReserved(s string) bool { return len(s) <= 6 && reserved[strings.ToUpper(s)] }

func writeString(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\'' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u`)
			b.WriteString(strconv.FormatInt(int64(r)+0x10000, 16)[1:])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
}

func (l Literal) writeOperand(b *strings.Builder) {
	switch v := l.Value.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case float64:
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	case string:
		writeString(b, v)
	default:
		// Only the parser makes literals; a hand-made one of another type
		// prints as something that does not parse rather than as a lie.
		b.WriteString("<invalid literal>")
	}
}

func (f Field) writeOperand(b *strings.Builder) { f.Path.write(b) }

// precedence of conditions when printing: Or < And < Not < the rest.
func precedence(c Cond) int {
	switch c.(type) {
	case *Or:
		return 1
	case *And:
		return 2
	case *Not:
		return 3
	}
	return 4
}

// writeTerm writes a term of an And or Or, in parentheses when it is an And
// or Or itself, so that the printed query parses back to the same tree.
func writeTerm(b *strings.Builder, c Cond, parent int) {
	if precedence(c) <= parent {
		b.WriteByte('(')
		c.write(b)
		b.WriteByte(')')
		return
	}
	c.write(b)
}

func (c *And) write(b *strings.Builder) {
	for i, t := range c.Terms {
		if i > 0 {
			b.WriteString(" AND ")
		}
		writeTerm(b, t, 2)
	}
}

func (c *Or) write(b *strings.Builder) {
	for i, t := range c.Terms {
		if i > 0 {
			b.WriteString(" OR ")
		}
		writeTerm(b, t, 1)
	}
}

func (c *Not) write(b *strings.Builder) {
	b.WriteString("NOT ")
	writeTerm(b, c.Cond, 2)
}

func (c *Compare) write(b *strings.Builder) {
	c.Left.writeOperand(b)
	b.WriteByte(' ')
	b.WriteString(c.Op.String())
	b.WriteByte(' ')
	c.Right.writeOperand(b)
}

func (c *In) write(b *strings.Builder) {
	c.Operand.writeOperand(b)
	if c.Not {
		b.WriteString(" NIN [")
	} else {
		b.WriteString(" IN [")
	}
	for i, v := range c.Values {
		if i > 0 {
			b.WriteString(", ")
		}
		v.writeOperand(b)
	}
	b.WriteByte(']')
}

func (c *Call) write(b *strings.Builder) {
	b.WriteString(c.Func.String())
	b.WriteByte('(')
	for i, a := range c.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		a.writeOperand(b)
	}
	b.WriteByte(')')
}

func (c *Truth) write(b *strings.Builder) { c.Operand.writeOperand(b) }

func condString(c Cond) string {
	var b strings.Builder
	c.write(&b)
	return b.String()
}

func (c *And) String() string     { return condString(c) }
func (c *Or) String() string      { return condString(c) }
func (c *Not) String() string     { return condString(c) }
func (c *Compare) String() string { return condString(c) }
func (c *In) String() string      { return condString(c) }
func (c *Call) String() string    { return condString(c) }
func (c *Truth) String() string   { return condString(c) }

func (c *And) Match(doc map[string]any) bool     { return c.eval(doc) == yes }
func (c *Or) Match(doc map[string]any) bool      { return c.eval(doc) == yes }
func (c *Not) Match(doc map[string]any) bool     { return c.eval(doc) == yes }
func (c *Compare) Match(doc map[string]any) bool { return c.eval(doc) == yes }
func (c *In) Match(doc map[string]any) bool      { return c.eval(doc) == yes }
func (c *Call) Match(doc map[string]any) bool    { return c.eval(doc) == yes }
func (c *Truth) Match(doc map[string]any) bool   { return c.eval(doc) == yes }
