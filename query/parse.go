package query

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds of what is parsed, so that a query's cost is known before it runs.
const (
	MaxLength   = 8192 // bytes of query text, Azure's maximum
	MaxDepth    = 32   // nesting of parentheses and NOTs
	MaxInValues = 1000 // values in one IN or NIN list
)

// Error is a mistake in a query, with where it is so that an editor can
// point at it.
type Error struct {
	Line, Column int    // 1-based; Column counts runes (characters), not bytes
	Offset       int    // byte offset in the query
	Msg          string // what is wrong, e.g. `unexpected "AN"`
	Hint         string // what would be right, e.g. "expected AND, OR, GROUP BY or end of query"; may be empty
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Msg)
	b.WriteString(" at ")
	if e.Line > 1 {
		fmt.Fprintf(&b, "line %d, ", e.Line)
	}
	fmt.Fprintf(&b, "column %d", e.Column)
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Parse parses a query: SELECT … FROM devices [WHERE …] [GROUP BY …].
func Parse(src string) (q *Query, err error) {
	p, err := newParser(src, "end of query")
	if err != nil {
		return nil, err
	}
	defer p.recover(&err)
	return p.query(), nil
}

// ParseCondition parses a condition alone, what follows WHERE in a query:
// the queryCondition of Azure's jobs.
func ParseCondition(src string) (c Cond, err error) {
	p, err := newParser(src, "end of condition")
	if err != nil {
		return nil, err
	}
	defer p.recover(&err)
	if p.keyword("SELECT") {
		p.fail(p.tok(), "a condition has no SELECT … FROM devices: write only what would follow WHERE")
	}
	c = p.or()
	if !p.eof() {
		p.failAfterCond(p.end)
	}
	return c, nil
}

type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // a name or keyword
	tQuoted         // [[name]], Azure's quoting of names that are keywords
	tString         // '…' or "…"
	tNumber
	tPunct
)

type token struct {
	kind tokKind
	pos  int    // byte offset
	text string // as written
	str  string // the value of tString and tQuoted
	num  float64
}

type parser struct {
	src   string
	off   int     // where lexing resumes
	ahead []token // lexed, not yet consumed
	end   string  // what end of input is called in messages
	depth int
	bare  bool // the last condition parsed was an operand without a comparison
}

func newParser(src, end string) (*parser, error) {
	p := &parser{src: src, end: end}
	if len(src) > MaxLength {
		return nil, p.errorAt(MaxLength, fmt.Sprintf("query longer than %d bytes", MaxLength), "shorten it, for example with IN lists")
	}
	for i, r := range src {
		if r == utf8.RuneError && !strings.HasPrefix(src[i:], "\uFFFD") {
			return nil, p.errorAt(i, "invalid UTF-8", "")
		}
		if r == 0 {
			return nil, p.errorAt(i, "unexpected NUL character", "")
		}
	}
	return p, nil
}

func (p *parser) errorAt(off int, msg, hint string) *Error {
	before := p.src[:off]
	line := 1 + strings.Count(before, "\n")
	lineStart := strings.LastIndexByte(before, '\n') + 1
	return &Error{Line: line, Column: utf8.RuneCountInString(before[lineStart:]) + 1, Offset: off, Msg: msg, Hint: hint}
}

// recover turns the *Error a parse failed with into Parse's error.
func (p *parser) recover(err *error) {
	if r := recover(); r != nil {
		e, ok := r.(*Error)
		if !ok {
			panic(r)
		}
		*err = e
	}
}

func (p *parser) failAt(off int, msg, hint string) {
	panic(p.errorAt(off, msg, hint))
}

// fail reports the token t as unexpected.
func (p *parser) fail(t token, hint string) {
	p.failAt(t.pos, "unexpected "+p.describe(t), hint)
}

func (p *parser) describe(t token) string {
	if t.kind == tEOF {
		return p.end
	}
	text := t.text
	if utf8.RuneCountInString(text) > 30 {
		text = string([]rune(text)[:30]) + "…"
	}
	return strconv.Quote(text)
}

func (p *parser) tok() token {
	if len(p.ahead) == 0 {
		p.ahead = append(p.ahead, p.lex())
	}
	return p.ahead[0]
}

// peek2 returns the token after the current one.
func (p *parser) peek2() token {
	p.tok()
	if len(p.ahead) == 1 {
		p.ahead = append(p.ahead, p.lex())
	}
	return p.ahead[1]
}

func (p *parser) advance() { p.tok(); p.ahead = p.ahead[1:] }

func (p *parser) eof() bool { return p.tok().kind == tEOF }

func (p *parser) keyword(kw string) bool {
	t := p.tok()
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

func (p *parser) punct(s string) bool {
	t := p.tok()
	return t.kind == tPunct && t.text == s
}

func (p *parser) expectKeyword(kw, hint string) {
	if !p.keyword(kw) {
		p.fail(p.tok(), hint)
	}
	p.advance()
}

func (p *parser) expectPunct(s, hint string) {
	if !p.punct(s) {
		p.fail(p.tok(), hint)
	}
	p.advance()
}

func (p *parser) enter(t token) {
	p.depth++
	if p.depth > MaxDepth {
		p.failAt(t.pos, fmt.Sprintf("conditions nested more than %d deep", MaxDepth), "")
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) query() *Query {
	q := &Query{Top: -1}
	p.expectKeyword("SELECT", "expected SELECT")
	if p.keyword("TOP") {
		p.advance()
		t := p.tok()
		if t.kind != tNumber || t.num < 0 || t.num > 1<<31-1 || t.num != float64(int(t.num)) {
			p.fail(t, "expected a whole number of rows after TOP")
		}
		q.Top = int(t.num)
		p.advance()
	}
	var starPos int
	var colPos []int
	if p.punct("*") {
		q.Star, starPos = true, p.tok().pos
		p.advance()
		p.expectKeyword("FROM", "expected FROM")
	} else {
		for {
			colPos = append(colPos, p.tok().pos)
			q.Columns = append(q.Columns, p.column())
			if !p.punct(",") {
				break
			}
			p.advance()
		}
		hint := `expected AS, "," or FROM`
		if q.Columns[len(q.Columns)-1].Alias != "" {
			hint = `expected "," or FROM`
		}
		p.expectKeyword("FROM", hint)
	}
	p.collection()
	after := "expected WHERE, GROUP BY or " + p.end
	if p.keyword("WHERE") {
		p.advance()
		q.Where = p.or()
		if !p.eof() && !p.keyword("GROUP") {
			p.failAfterCond("GROUP BY", p.end)
		}
	}
	if p.keyword("GROUP") {
		p.advance()
		p.expectKeyword("BY", "expected BY")
		for {
			q.GroupBy = append(q.GroupBy, p.path("expected a field to group by"))
			if !p.punct(",") {
				break
			}
			p.advance()
		}
		after = `expected "," or ` + p.end
	}
	if !p.eof() {
		p.fail(p.tok(), after)
	}
	p.check(q, starPos, colPos)
	return q
}

// check refuses projections that cannot be computed: duplicate names, and
// fields that are neither grouped nor alone.
func (p *parser) check(q *Query, starPos int, colPos []int) {
	if q.Star && len(q.GroupBy) > 0 {
		p.failAt(starPos, "SELECT * cannot be grouped", "select the GROUP BY fields and COUNT() instead")
	}
	names := q.names()
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if seen[n] {
			p.failAt(colPos[i], fmt.Sprintf("duplicate column name %q", n), "give one of them another name with AS")
		}
		seen[n] = true
	}
	if !q.Aggregate() {
		return
	}
	for i, c := range q.Columns {
		if c.Count || pathIn(c.Path, q.GroupBy) {
			continue
		}
		if len(q.GroupBy) == 0 {
			p.failAt(colPos[i], fmt.Sprintf("%s is selected with COUNT() but not grouped", c.Path), "add GROUP BY "+c.Path.String()+", or select COUNT() alone")
		}
		p.failAt(colPos[i], fmt.Sprintf("%s is not in GROUP BY", c.Path), "select only fields of GROUP BY and COUNT()")
	}
}

func pathIn(p Path, list []Path) bool {
	for _, q := range list {
		if p.equal(q) {
			return true
		}
	}
	return false
}

func (p Path) equal(q Path) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// collection reads what follows FROM: only devices can be queried here.
func (p *parser) collection() {
	t := p.tok()
	if t.kind != tIdent || !strings.EqualFold(t.text, "devices") {
		p.fail(t, "expected devices")
	}
	p.advance()
	if p.punct(".") {
		p.advance()
		name := "devices." + p.tok().text
		p.failAt(t.pos, fmt.Sprintf("%q cannot be queried", name), "only FROM devices is supported")
	}
}

var aggregates = map[string]bool{"AVG": true, "SUM": true, "MIN": true, "MAX": true}

func (p *parser) column() Column {
	t := p.tok()
	if t.kind == tIdent && p.peek2().kind == tPunct && p.peek2().text == "(" {
		name := strings.ToUpper(t.text)
		switch {
		case name == "COUNT":
			p.advance()
			p.advance()
			p.expectPunct(")", `expected ")": COUNT() takes no arguments`)
			return Column{Count: true, Alias: p.alias()}
		case aggregates[name]:
			p.failAt(t.pos, name+"() is not supported", "COUNT() is the only aggregate")
		default:
			p.fail(t, "expected *, a field or COUNT(): functions cannot be selected")
		}
	}
	path := p.path("expected *, a field or COUNT()")
	return Column{Path: path, Alias: p.alias()}
}

func (p *parser) alias() string {
	if !p.keyword("AS") {
		return ""
	}
	p.advance()
	t := p.tok()
	switch {
	case t.kind == tIdent && !isReserved(t.text):
		p.advance()
		return t.text
	case t.kind == tQuoted:
		p.advance()
		return t.str
	}
	p.fail(t, "expected a name after AS")
	return ""
}

// topLevel are the device document's own fields, which Azure matches
// without regard to case (SELECT DeviceId works); fields inside tags and
// properties are matched exactly.
var topLevel = func() map[string]string {
	m := map[string]string{}
	for _, name := range []string{
		"deviceId", "moduleId", "etag", "deviceEtag", "version", "status", "statusReason", "statusUpdateTime",
		"connectionState", "lastActivityTime", "cloudToDeviceMessageCount", "authenticationType",
		"x509Thumbprint", "modelId", "capabilities", "deviceScope", "parentScopes", "tags", "properties",
		"name", "online",
	} {
		m[strings.ToLower(name)] = name
	}
	return m
}()

func (p *parser) path(hint string) Path {
	t := p.tok()
	var first string
	switch {
	case t.kind == tIdent && !isReserved(t.text):
		first = t.text
	case t.kind == tQuoted:
		first = t.str
	default:
		p.fail(t, hint)
	}
	p.advance()
	if canon, ok := topLevel[strings.ToLower(first)]; ok {
		first = canon
	}
	path := Path{first}
	for {
		switch {
		case p.punct("."):
			p.advance()
			t := p.tok()
			switch t.kind {
			case tIdent:
				path = append(path, t.text)
			case tQuoted:
				path = append(path, t.str)
			default:
				p.fail(t, `expected a field name after "."`)
			}
			p.advance()
		case p.punct("["):
			p.advance()
			t := p.tok()
			if t.kind == tNumber {
				p.failAt(t.pos, "array indexes are not supported", "")
			}
			if t.kind != tString {
				p.fail(t, "expected a quoted field name, as in tags['my key']")
			}
			if t.str == "" {
				p.failAt(t.pos, "empty field name", "")
			}
			p.advance()
			path = append(path, t.str)
			p.expectPunct("]", `expected "]"`)
		default:
			if len(path) >= 2 && path[0] == "properties" {
				switch strings.ToLower(path[1]) {
				case "desired":
					path[1] = "desired"
				case "reported":
					path[1] = "reported"
				}
			}
			return path
		}
	}
}

func (p *parser) or() Cond {
	first := p.and()
	if !p.keyword("OR") {
		return first
	}
	terms := []Cond{first}
	for p.keyword("OR") {
		p.advance()
		terms = append(terms, p.and())
	}
	return &Or{Terms: terms}
}

func (p *parser) and() Cond {
	first := p.not()
	if !p.keyword("AND") {
		return first
	}
	terms := []Cond{first}
	for p.keyword("AND") {
		p.advance()
		terms = append(terms, p.not())
	}
	return &And{Terms: terms}
}

func (p *parser) not() Cond {
	if !p.keyword("NOT") {
		return p.primary()
	}
	p.enter(p.tok())
	p.advance()
	c := p.not()
	p.leave()
	return &Not{Cond: c}
}

// failAfterCond reports a token that cannot follow a condition.
func (p *parser) failAfterCond(follow ...string) {
	var want []string
	if p.bare {
		want = append(want, "a comparison (=, !=, <, <=, >, >=, IN, NIN)")
	}
	want = append(want, "AND", "OR")
	want = append(want, follow...)
	p.fail(p.tok(), "expected "+strings.Join(want[:len(want)-1], ", ")+" or "+want[len(want)-1])
}

var compareOps = map[string]Op{"=": Equal, "!=": NotEqual, "<>": NotEqual, "<": Less, "<=": LessEqual, ">": Greater, ">=": GreaterEqual}

func (p *parser) primary() Cond {
	t := p.tok()
	if t.kind == tPunct && t.text == "(" {
		p.enter(t)
		p.advance()
		c := p.or()
		if !p.punct(")") {
			p.failAfterCond(`")"`)
		}
		p.advance()
		p.leave()
		p.bare = false
		return c
	}
	if t.kind == tIdent && p.peek2().kind == tPunct && p.peek2().text == "(" {
		p.bare = false
		return p.call()
	}
	left := p.operand("expected a condition: a field, a value, NOT, ( or a function such as IS_DEFINED()")
	if t := p.tok(); t.kind == tPunct {
		if op, ok := compareOps[t.text]; ok {
			p.advance()
			right := p.operand("expected a field or a value after " + t.text)
			p.bare = false
			return &Compare{Op: op, Left: left, Right: right}
		}
	}
	if p.keyword("IN") || p.keyword("NIN") {
		not := p.keyword("NIN")
		p.advance()
		values := p.list()
		p.bare = false
		return &In{Not: not, Operand: left, Values: values}
	}
	p.bare = true
	return &Truth{Operand: left}
}

var funcsByName = map[string]Func{
	"IS_DEFINED": IsDefined, "IS_NULL": IsNull, "IS_BOOL": IsBool, "IS_NUMBER": IsNumber, "IS_STRING": IsString,
	"IS_OBJECT": IsObject, "IS_ARRAY": IsArray, "IS_PRIMITIVE": IsPrimitive,
	"STARTS_WITH": StartsWith, "STARTSWITH": StartsWith, "ENDS_WITH": EndsWith, "ENDSWITH": EndsWith,
	"CONTAINS": Contains,
}

// unsupported are the functions of Azure's routing conditions that device
// queries here do not have (see the package documentation).
var unsupported = map[string]bool{
	"AS_NUMBER": true, "ABS": true, "EXP": true, "POWER": true, "SQUARE": true, "CEILING": true, "FLOOR": true,
	"SIGN": true, "SQRT": true, "CONCAT": true, "LENGTH": true, "LOWER": true, "UPPER": true, "SUBSTRING": true,
	"INDEX_OF": true, "COUNT": true, "AVG": true, "SUM": true, "MIN": true, "MAX": true,
}

const funcList = "IS_DEFINED, IS_NULL, IS_BOOL, IS_NUMBER, IS_STRING, IS_OBJECT, IS_ARRAY, IS_PRIMITIVE, STARTS_WITH, ENDS_WITH and CONTAINS"

func (p *parser) call() Cond {
	t := p.tok()
	name := strings.ToUpper(t.text)
	f, ok := funcsByName[name]
	if !ok {
		if unsupported[name] {
			p.failAt(t.pos, name+"() is not supported in conditions", "the functions are "+funcList)
		}
		p.failAt(t.pos, fmt.Sprintf("unknown function %q", t.text), "the functions are "+funcList)
	}
	p.advance()
	p.advance()
	n := f.arity()
	plural := "s"
	if n == 1 {
		plural = ""
	}
	arity := fmt.Sprintf("%s() takes %d argument%s", f, n, plural)
	args := make([]Operand, n)
	for i := range args {
		if i > 0 {
			p.expectPunct(",", `expected ",": `+arity)
		}
		args[i] = p.operand("expected a field or a value: " + arity)
	}
	p.expectPunct(")", `expected ")": `+arity)
	return &Call{Func: f, Args: args}
}

func (p *parser) operand(hint string) Operand {
	t := p.tok()
	switch t.kind {
	case tString:
		p.advance()
		return Literal{Value: t.str}
	case tNumber:
		p.advance()
		return Literal{Value: t.num}
	case tIdent:
		switch strings.ToUpper(t.text) {
		case "TRUE":
			p.advance()
			return Literal{Value: true}
		case "FALSE":
			p.advance()
			return Literal{Value: false}
		case "NULL":
			p.advance()
			return Literal{Value: nil}
		}
	case tPunct:
		if t.text == "[" {
			p.fail(t, "a list of values can only follow IN or NIN")
		}
	}
	return Field{Path: p.path(hint)}
}

func (p *parser) list() []Literal {
	p.expectPunct("[", `expected "[": IN and NIN take a list such as ['a', 'b']`)
	var values []Literal
	for {
		t := p.tok()
		if len(values) == MaxInValues {
			p.failAt(t.pos, fmt.Sprintf("list longer than %d values", MaxInValues), "")
		}
		v, ok := p.operand("expected a string, number, true, false or null").(Literal)
		if !ok {
			p.failAt(t.pos, "fields cannot be listed", "expected a string, number, true, false or null")
		}
		values = append(values, v)
		if p.punct("]") {
			p.advance()
			return values
		}
		p.expectPunct(",", `expected "," or "]"`)
	}
}

// lex reads the next token from p.off.
func (p *parser) lex() token {
	src := p.src
	i := p.off
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	if i == len(src) {
		p.off = i
		return token{kind: tEOF, pos: i}
	}
	c := src[i]
	var t token
	switch {
	case c == '\'' || c == '"':
		t = p.lexString(i)
	case c >= '0' && c <= '9' || c == '-' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
		t = p.lexNumber(i)
	case strings.HasPrefix(src[i:], "[["):
		end := strings.Index(src[i+2:], "]]")
		if end < 0 {
			p.failAt(i, "unterminated [[name]]", `add "]]"`)
		}
		if end == 0 {
			p.failAt(i, "empty name", "")
		}
		t = token{kind: tQuoted, pos: i, text: src[i : i+2+end+2], str: src[i+2 : i+2+end]}
	default:
		for _, op := range []string{"!=", "<>", "<=", ">=", "(", ")", ",", ".", "*", "[", "]", "=", "<", ">"} {
			if strings.HasPrefix(src[i:], op) {
				t = token{kind: tPunct, pos: i, text: op}
				break
			}
		}
		if t.text != "" {
			break
		}
		r, _ := utf8.DecodeRuneInString(src[i:])
		if !isIdentRune(r, true) {
			hint := ""
			if r == '-' || r == '+' || r == '/' || r == '%' {
				hint = "arithmetic is not supported"
			}
			p.failAt(i, fmt.Sprintf("unexpected character %q", r), hint)
		}
		j := i
		for j < len(src) {
			r, n := utf8.DecodeRuneInString(src[j:])
			if !isIdentRune(r, j == i) {
				break
			}
			j += n
		}
		t = token{kind: tIdent, pos: i, text: src[i:j]}
	}
	p.off = t.pos + len(t.text)
	return t
}

func (p *parser) lexString(i int) token {
	src := p.src
	quote := src[i]
	var b strings.Builder
	j := i + 1
	for {
		if j >= len(src) {
			p.failAt(i, "unterminated string", "add the closing "+string(quote))
		}
		c := src[j]
		if c == quote {
			j++
			break
		}
		if c != '\\' {
			b.WriteByte(c)
			j++
			continue
		}
		if j+1 >= len(src) {
			p.failAt(i, "unterminated string", "add the closing "+string(quote))
		}
		switch e := src[j+1]; e {
		case '\'', '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r := p.hex4(j)
			j += 6
			if r >= 0xD800 && r < 0xDC00 {
				if !strings.HasPrefix(src[j:], `\u`) {
					p.failAt(j-6, "unpaired surrogate in \\u escape", `a character above U+FFFF is written as two escapes, \uD83D\uDE00`)
				}
				lo := p.hex4(j)
				if lo < 0xDC00 || lo > 0xDFFF {
					p.failAt(j, "unpaired surrogate in \\u escape", `a character above U+FFFF is written as two escapes, \uD83D\uDE00`)
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				j += 6
			} else if r >= 0xDC00 && r <= 0xDFFF {
				p.failAt(j-6, "unpaired surrogate in \\u escape", `a character above U+FFFF is written as two escapes, \uD83D\uDE00`)
			}
			if r == 0 {
				p.failAt(j-6, `invalid escape "\u0000"`, "strings cannot hold the character U+0000")
			}
			b.WriteRune(r)
			continue
		default:
			r, _ := utf8.DecodeRuneInString(src[j+1:])
			p.failAt(j, fmt.Sprintf("invalid escape %q", `\`+string(r)), `use \', \", \\, \/, \b, \f, \n, \r, \t or \uXXXX`)
		}
		j += 2
	}
	return token{kind: tString, pos: i, text: src[i:j], str: b.String()}
}

// hex4 reads the four hexadecimal digits of the \u escape at j.
func (p *parser) hex4(j int) rune {
	if j+6 > len(p.src) {
		p.failAt(j, `invalid \u escape`, "expected four hexadecimal digits")
	}
	v, err := strconv.ParseUint(p.src[j+2:j+6], 16, 32)
	if err != nil {
		p.failAt(j, `invalid \u escape`, "expected four hexadecimal digits")
	}
	return rune(v)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (p *parser) lexNumber(i int) token {
	src := p.src
	j := i
	if src[j] == '-' {
		j++
	}
	var v float64
	if src[j] == '0' && j+1 < len(src) && (src[j+1] == 'x' || src[j+1] == 'X') {
		k := j + 2
		for k < len(src) && isHex(src[k]) {
			k++
		}
		if k == j+2 {
			p.failAt(i, "invalid number", "expected hexadecimal digits after 0x")
		}
		u, err := strconv.ParseUint(src[j+2:k], 16, 64)
		if err != nil {
			p.failAt(i, "number out of range", "")
		}
		v = float64(u)
		if src[i] == '-' {
			v = -v
		}
		j = k
	} else {
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
			j++
			for j < len(src) && isDigit(src[j]) {
				j++
			}
		}
		if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
			j++
			if j < len(src) && (src[j] == '+' || src[j] == '-') {
				j++
			}
			if j == len(src) || !isDigit(src[j]) {
				p.failAt(i, "invalid number", "expected digits of the exponent")
			}
			for j < len(src) && isDigit(src[j]) {
				j++
			}
		}
		f, err := strconv.ParseFloat(src[i:j], 64)
		if err != nil {
			p.failAt(i, "number out of range", "")
		}
		v = f
	}
	if j < len(src) {
		if r, _ := utf8.DecodeRuneInString(src[j:]); isIdentRune(r, false) {
			p.failAt(i, "invalid number", "put a space between a number and what follows")
		}
	}
	return token{kind: tNumber, pos: i, text: src[i:j], num: v}
}
