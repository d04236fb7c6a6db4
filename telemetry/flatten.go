package telemetry

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Errors returned (wrapped with detail) by Flatten. On any of them the
// message is still stored; it just yields no readings.
var (
	ErrNotJSONObject   = errors.New("body is not a JSON object")
	ErrTooDeep         = errors.New("JSON nested too deeply")
	ErrTooManyReadings = errors.New("too many numeric values in one message")
	ErrBadTimestamp    = errors.New("bad timestamp")
)

// Limits applied by Flatten.
const (
	MaxDepth      = 32   // objects and arrays nested deeper are refused
	MaxReadings   = 1000 // numeric values per message
	MaxMetricName = 256  // bytes; longer names are skipped
)

// Flatten extracts readings from a telemetry body that is a JSON object:
// every number becomes a reading, booleans become 0 and 1, nested objects
// are flattened into dotted names; strings, nulls and arrays are ignored.
// A top-level "ts" or "timestamp" (RFC 3339 string or epoch milliseconds;
// "ts" wins when both are present) is returned as the timestamp, not as a
// reading. Values that are not finite (1e400, and the NaN and Infinity that
// Python's json module writes) and names that are empty, contain an empty
// segment or control characters, are not UTF-8 or exceed MaxMetricName bytes
// are skipped. If a metric appears twice, the last value wins.
//
// Flatten is on the ingest hot path, so it scans the bytes itself instead of
// building a generic tree.
func Flatten(body []byte) (readings []Reading, ts time.Time, hasTS bool, err error) {
	return flatten(body, nil)
}

// flatten is Flatten taking the readings' metric names from names (nil:
// new strings).
func flatten(body []byte, names *Names) (readings []Reading, ts time.Time, hasTS bool, err error) {
	f := flattener{data: body, name: make([]byte, 0, 64), names: names}
	f.pos = skipBOM(body)
	f.skipSpace()
	if f.pos >= len(f.data) || f.data[f.pos] != '{' {
		return nil, time.Time{}, false, fmt.Errorf("%w: %s", ErrNotJSONObject, describeStart(f.data[f.pos:]))
	}
	// Every reading needs a ':' in the body, so this bounds the allocation.
	f.readings = make([]Reading, 0, min(bytes.Count(body, []byte{':'}), MaxReadings))
	if err := f.object(1, true); err != nil {
		return nil, time.Time{}, false, err
	}
	f.skipSpace()
	if f.pos < len(f.data) {
		return nil, time.Time{}, false, f.syntaxError("unexpected data after the object")
	}
	return dedupe(f.readings), f.ts, f.tsRank > 0, nil
}

// SaneTimestamp reports whether a device-supplied timestamp is plausible:
// not before 2000 and at most one day after the hub received the message.
// Callers fall back to the enqueued time otherwise.
func SaneTimestamp(ts, enqueued time.Time) bool {
	return !ts.Before(minSaneTime) && !ts.After(enqueued.Add(24*time.Hour))
}

var minSaneTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

type flattener struct {
	data     []byte
	pos      int
	name     []byte // the path to the current value, "a.b"
	readings []Reading
	ts       time.Time
	tsRank   int    // 0 none, 1 from "timestamp", 2 from "ts"
	scratch  []byte // decoded timestamp strings
	names    *Names // where metric names come from; nil: new strings
}

// object scans the object at f.pos. emit is false inside arrays, whose
// contents are validated but yield no readings.
func (f *flattener) object(depth int, emit bool) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w: more than %d levels at offset %d", ErrTooDeep, MaxDepth, f.pos)
	}
	f.pos++ // '{'
	prefix := len(f.name)
	f.skipSpace()
	if f.peek() == '}' {
		f.pos++
		return nil
	}
	for {
		f.skipSpace()
		if f.peek() != '"' {
			return f.syntaxError("want a quoted object key")
		}
		if emit {
			if err := f.appendString(&f.name); err != nil {
				return err
			}
		} else if err := f.skipString(); err != nil {
			return err
		}
		f.skipSpace()
		if f.peek() != ':' {
			return f.syntaxError("want ':' after an object key")
		}
		f.pos++
		f.skipSpace()
		var err error
		switch key := f.name[prefix:]; {
		case !emit:
			err = f.skipValue(depth)
		case depth == 1 && string(key) == "ts":
			err = f.timestamp("ts", 2)
		case depth == 1 && string(key) == "timestamp":
			err = f.timestamp("timestamp", 1)
		default:
			err = f.value(depth)
		}
		if err != nil {
			return err
		}
		f.name = f.name[:prefix]
		f.skipSpace()
		switch f.peek() {
		case ',':
			f.pos++
		case '}':
			f.pos++
			return nil
		default:
			return f.syntaxError("want ',' or '}' in an object")
		}
	}
}

// value scans the value of the key at the end of f.name, adding readings.
func (f *flattener) value(depth int) error {
	switch c := f.peek(); {
	case c == '{':
		f.name = append(f.name, '.')
		return f.object(depth+1, true)
	case c == '-' || ('0' <= c && c <= '9'):
		if f.literal("-Infinity") {
			return nil
		}
		num, err := f.number()
		if err != nil {
			return err
		}
		v, err := strconv.ParseFloat(string(num), 64)
		if err != nil || math.IsInf(v, 0) {
			return nil // overflows float64: skipped, not an error
		}
		return f.add(v)
	case c == 't':
		if !f.literal("true") {
			return f.syntaxError("invalid literal")
		}
		return f.add(1)
	case c == 'f':
		if !f.literal("false") {
			return f.syntaxError("invalid literal")
		}
		return f.add(0)
	default:
		return f.skipValue(depth)
	}
}

// skipValue validates and skips any value.
func (f *flattener) skipValue(depth int) error {
	switch c := f.peek(); {
	case c == '{':
		return f.object(depth+1, false)
	case c == '[':
		return f.array(depth + 1)
	case c == '"':
		return f.skipString()
	case c == '-' || ('0' <= c && c <= '9'):
		if f.literal("-Infinity") {
			return nil
		}
		_, err := f.number()
		return err
	}
	for _, lit := range [...]string{"true", "false", "null", "NaN", "Infinity"} {
		if f.literal(lit) {
			return nil
		}
	}
	if f.pos >= len(f.data) {
		return f.syntaxError("unexpected end of body")
	}
	return f.syntaxError("want a value")
}

func (f *flattener) array(depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w: more than %d levels at offset %d", ErrTooDeep, MaxDepth, f.pos)
	}
	f.pos++ // '['
	f.skipSpace()
	if f.peek() == ']' {
		f.pos++
		return nil
	}
	for {
		f.skipSpace()
		if err := f.skipValue(depth); err != nil {
			return err
		}
		f.skipSpace()
		switch f.peek() {
		case ',':
			f.pos++
		case ']':
			f.pos++
			return nil
		default:
			return f.syntaxError("want ',' or ']' in an array")
		}
	}
}

// timestamp scans the value of a top-level "ts" or "timestamp" key.
func (f *flattener) timestamp(key string, rank int) error {
	start := f.pos
	var t time.Time
	switch c := f.peek(); {
	case c == '"':
		f.scratch = f.scratch[:0]
		if err := f.appendString(&f.scratch); err != nil {
			return err
		}
		var err error
		if t, err = parseRFC3339(string(f.scratch)); err != nil {
			return fmt.Errorf("%w: %q: %q is not RFC 3339 (like 2024-05-01T10:00:00Z)", ErrBadTimestamp, key, f.scratch)
		}
	case (c == '-' || ('0' <= c && c <= '9')) && !f.hasLiteral("-Infinity"):
		num, err := f.number()
		if err != nil {
			return err
		}
		ms, err := strconv.ParseFloat(string(num), 64)
		// ±1e15 ms is about ±31,000 years: anything beyond is garbage.
		if err != nil || math.Abs(ms) > 1e15 {
			return fmt.Errorf("%w: %q: %s milliseconds is out of range", ErrBadTimestamp, key, num)
		}
		sec := math.Floor(ms / 1000)
		t = time.Unix(int64(sec), int64((ms-sec*1000)*1e6)).UTC()
	case f.literal("null"):
		return nil
	default:
		if err := f.skipValue(1); err != nil {
			return err
		}
		return fmt.Errorf("%w: %q must be an RFC 3339 string or epoch milliseconds, got %s",
			ErrBadTimestamp, key, abbreviate(f.data[start:f.pos]))
	}
	if rank >= f.tsRank {
		f.ts, f.tsRank = t, rank
	}
	return nil
}

// parseRFC3339 also accepts a space between date and time, which RFC 3339
// section 5.6 allows "for the sake of readability".
func parseRFC3339(s string) (time.Time, error) {
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// add records a reading for the current name, unless the name is unusable.
func (f *flattener) add(v float64) error {
	if !validMetricName(f.name) {
		return nil
	}
	if len(f.readings) >= MaxReadings {
		return fmt.Errorf("%w: more than %d", ErrTooManyReadings, MaxReadings)
	}
	f.readings = append(f.readings, Reading{Metric: f.names.intern(f.name), Value: v})
	return nil
}

func validMetricName(name []byte) bool {
	if len(name) == 0 || len(name) > MaxMetricName || name[0] == '.' || name[len(name)-1] == '.' {
		return false
	}
	ascii := true
	for i, c := range name {
		switch {
		case c < 0x20 || c == 0x7f:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '.' && name[i+1] == '.': // safe: the last byte is not '.'
			return false
		}
	}
	return ascii || utf8.Valid(name)
}

// number scans a number with JSON's grammar and returns its bytes.
func (f *flattener) number() ([]byte, error) {
	start := f.pos
	d := f.data
	i := f.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		f.pos = i
		return nil, f.syntaxError("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			f.pos = i
			return nil, f.syntaxError("invalid number: want a digit after '.'")
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			f.pos = i
			return nil, f.syntaxError("invalid number: want a digit in the exponent")
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	f.pos = i
	return d[start:i], nil
}

// skipString validates and skips the string at f.pos.
func (f *flattener) skipString() error {
	d := f.data
	for i := f.pos + 1; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			f.pos = i + 1
			return nil
		case c == '\\':
			n, err := escapeLen(d[i:])
			if err != nil {
				f.pos = i
				return f.syntaxError(err.Error())
			}
			i += n - 1
		case c < 0x20:
			f.pos = i
			return f.syntaxError("control character in a string")
		}
	}
	f.pos = len(d)
	return f.syntaxError("unterminated string")
}

// appendString decodes the string at f.pos and appends it to *dst.
func (f *flattener) appendString(dst *[]byte) error {
	d := f.data
	out := *dst
	i := f.pos + 1
	start := i
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			*dst = append(out, d[start:i]...)
			f.pos = i + 1
			return nil
		case c == '\\':
			out = append(out, d[start:i]...)
			n, err := escapeLen(d[i:])
			if err != nil {
				f.pos = i
				return f.syntaxError(err.Error())
			}
			out = appendEscape(out, d[i:i+n])
			i += n
			start = i
		case c < 0x20:
			f.pos = i
			return f.syntaxError("control character in a string")
		default:
			i++
		}
	}
	f.pos = len(d)
	return f.syntaxError("unterminated string")
}

// escapeLen returns the length of the escape sequence at the start of s
// (s[0] == '\\'), including a following low surrogate for a high one.
func escapeLen(s []byte) (int, error) {
	if len(s) < 2 {
		return 0, errors.New("unterminated escape")
	}
	switch s[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		r, ok := hex4(s[2:])
		if !ok {
			return 0, errors.New(`invalid \u escape`)
		}
		if utf16IsHigh(r) && len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
			if lo, ok := hex4(s[8:]); ok && utf16IsLow(lo) {
				return 12, nil
			}
		}
		return 6, nil
	default:
		return 0, fmt.Errorf("invalid escape \\%c", s[1])
	}
}

// appendEscape decodes one escape sequence as measured by escapeLen; a lone
// surrogate becomes U+FFFD, as in encoding/json.
func appendEscape(dst, esc []byte) []byte {
	switch esc[1] {
	case 'b':
		return append(dst, '\b')
	case 'f':
		return append(dst, '\f')
	case 'n':
		return append(dst, '\n')
	case 'r':
		return append(dst, '\r')
	case 't':
		return append(dst, '\t')
	case 'u':
		r, _ := hex4(esc[2:])
		if len(esc) == 12 {
			lo, _ := hex4(esc[8:])
			return utf8.AppendRune(dst, ((r-0xd800)<<10|(lo-0xdc00))+0x10000)
		}
		if utf16IsHigh(r) || utf16IsLow(r) {
			r = utf8.RuneError
		}
		return utf8.AppendRune(dst, r)
	default: // '"', '\\', '/'
		return append(dst, esc[1])
	}
}

func utf16IsHigh(r rune) bool { return 0xd800 <= r && r < 0xdc00 }
func utf16IsLow(r rune) bool  { return 0xdc00 <= r && r < 0xe000 }

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// literal consumes lit if it comes next.
func (f *flattener) literal(lit string) bool {
	if !f.hasLiteral(lit) {
		return false
	}
	f.pos += len(lit)
	return true
}

func (f *flattener) hasLiteral(lit string) bool {
	return len(f.data)-f.pos >= len(lit) && string(f.data[f.pos:f.pos+len(lit)]) == lit
}

func (f *flattener) peek() byte {
	if f.pos < len(f.data) {
		return f.data[f.pos]
	}
	return 0
}

func (f *flattener) skipSpace() {
	for f.pos < len(f.data) {
		switch f.data[f.pos] {
		case ' ', '\t', '\n', '\r':
			f.pos++
		default:
			return
		}
	}
}

func (f *flattener) syntaxError(what string) error {
	if f.pos >= len(f.data) {
		return fmt.Errorf("%w: invalid JSON at offset %d (end of body): %s", ErrNotJSONObject, f.pos, what)
	}
	return fmt.Errorf("%w: invalid JSON at offset %d (%q): %s", ErrNotJSONObject, f.pos, f.data[f.pos], what)
}

func skipBOM(b []byte) int {
	if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		return 3
	}
	return 0
}

// describeStart says what a body that is not a JSON object starts with.
func describeStart(b []byte) string {
	switch {
	case len(b) == 0:
		return "the body is empty"
	case b[0] == '[':
		return "it is a JSON array"
	case b[0] == '"':
		return "it is a JSON string"
	case !utf8.Valid(b[:min(len(b), 16)]):
		return "it is binary data"
	default:
		return fmt.Sprintf("it starts with %q", abbreviate(b))
	}
}

// dedupe keeps one reading per metric, at its first position with the last
// value, matching how encoding/json fills a map from duplicate keys.
func dedupe(rs []Reading) []Reading {
	if len(rs) < 2 {
		return rs
	}
	if len(rs) <= 32 {
		out := rs[:0]
	next:
		for _, r := range rs {
			for j := range out {
				if out[j].Metric == r.Metric {
					out[j].Value = r.Value
					continue next
				}
			}
			out = append(out, r)
		}
		return out
	}
	index := make(map[string]int, len(rs))
	out := rs[:0]
	for _, r := range rs {
		if j, ok := index[r.Metric]; ok {
			out[j].Value = r.Value
			continue
		}
		index[r.Metric] = len(out)
		out = append(out, r)
	}
	return out
}

// abbreviate shortens raw JSON for an error message.
func abbreviate(raw []byte) string {
	const max = 40
	if len(raw) <= max {
		return string(raw)
	}
	return string(raw[:max]) + "…"
}
