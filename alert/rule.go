package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds of a rule, checked by Validate before a rule costs anything.
const (
	MaxNameLen       = 128               // characters of a rule's name
	MaxMetricLen     = 256               // bytes, as ingest's longest metric name
	MaxPropertyLen   = 256               // bytes of a reported property path
	MaxPropertyDepth = 16                // names in a reported property path
	MaxScopeTags     = 32                // tag pairs a scope may require
	MaxTagKeyLen     = 128               // bytes, as the device registry
	MaxTagValueLen   = 512               // bytes, as the device registry
	MaxDeviceIDLen   = 128               // bytes, as Azure IoT Hub
	MaxForSeconds    = 7 * 24 * 60 * 60  // a threshold held for at most 7 days
	MaxSilence       = 30 * 24 * 60 * 60 // silence of at most 30 days
	MaxRuleJSON      = 64 << 10          // bytes of a rule's JSON
)

// Severity says how bad an alert is. The order, worst first, is critical,
// major, minor, warning, info.
type Severity string

// The severities, worst first.
const (
	Critical Severity = "critical"
	Major    Severity = "major"
	Minor    Severity = "minor"
	Warning  Severity = "warning"
	Info     Severity = "info"
)

// Severities lists every severity, worst first.
func Severities() []Severity { return []Severity{Critical, Major, Minor, Warning, Info} }

// Rank orders severities: critical is 5, info 1, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 5
	case Major:
		return 4
	case Minor:
		return 3
	case Warning:
		return 2
	case Info:
		return 1
	}
	return 0
}

// Worse reports whether s is worse than other.
func (s Severity) Worse(other Severity) bool { return s.Rank() > other.Rank() }

// Valid reports whether s is one of the five severities.
func (s Severity) Valid() bool { return s.Rank() > 0 }

// Op is a comparison of a reading with a rule's value.
type Op string

// The comparisons.
const (
	Greater      Op = ">"
	GreaterEqual Op = ">="
	Less         Op = "<"
	LessEqual    Op = "<="
	Equal        Op = "=="
	NotEqual     Op = "!="
)

// Holds reports whether "v op x" is true.
func (op Op) Holds(v, x float64) bool {
	switch op {
	case Greater:
		return v > x
	case GreaterEqual:
		return v >= x
	case Less:
		return v < x
	case LessEqual:
		return v <= x
	case Equal:
		return v == x
	case NotEqual:
		return v != x
	}
	return false
}

func (op Op) valid() bool {
	switch op {
	case Greater, GreaterEqual, Less, LessEqual, Equal, NotEqual:
		return true
	}
	return false
}

// Kind is what a condition watches.
type Kind string

// The kinds of condition.
const (
	// Threshold compares a metric with a value.
	Threshold Kind = "threshold"
	// Silence fires when a device sent nothing for a while.
	Silence Kind = "silence"
	// Changed fires when a metric or a reported property takes a new value.
	Changed Kind = "changed"
)

// Rule is an alert rule: which devices it watches (Scope), what it watches
// for (Condition) and how bad it is when that happens (Severity).
type Rule struct {
	ID        int64     `json:"id,omitempty"`
	Name      string    `json:"name"`
	Severity  Severity  `json:"severity"`
	Enabled   bool      `json:"enabled"`
	Scope     Scope     `json:"scope"`
	Condition Condition `json:"condition"`
}

// Scope is the devices a rule watches: one device, the devices that carry
// all of Tags, or the whole fleet. Exactly one of the three is set.
type Scope struct {
	DeviceID string            `json:"deviceId,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	Fleet    bool              `json:"fleet,omitempty"`
}

// Matches reports whether a device with this id and these tags is in scope.
func (s Scope) Matches(deviceID string, tags map[string]string) bool {
	switch {
	case s.Fleet:
		return true
	case s.DeviceID != "":
		return s.DeviceID == deviceID
	case len(s.Tags) > 0:
		for k, v := range s.Tags {
			if got, ok := tags[k]; !ok || got != v {
				return false
			}
		}
		return true
	}
	return false
}

// String describes the scope as a person reads it: "device pump-1",
// "devices with site=berlin, kind=climate" or "every device".
func (s Scope) String() string {
	switch {
	case s.Fleet:
		return "every device"
	case s.DeviceID != "":
		return "device " + s.DeviceID
	case len(s.Tags) > 0:
		return "devices with " + FormatTags(s.Tags)
	}
	return "no device"
}

// Condition is what a rule watches for. Which fields apply depends on Kind:
//
//   - threshold: Metric, Op, Value, ForSeconds, and at most one of
//     Hysteresis and Clear;
//   - silence: Seconds;
//   - changed: Metric or Property.
type Condition struct {
	Kind Kind `json:"kind"`

	// Metric is a metric name as ingest makes them ("engine.temp").
	Metric string `json:"metric,omitempty"`
	// Property is a path into the device's reported properties: names
	// joined by dots ("firmware", "modem.version"), optionally written
	// with the twin's prefix ("properties.reported.firmware" is the same
	// path). Names containing dots, and twin metadata ($version,
	// $metadata), cannot be addressed.
	Property string `json:"property,omitempty"`

	Op    Op      `json:"op,omitempty"`
	Value float64 `json:"value"`
	// ForSeconds is how long the comparison must hold before the alert is
	// raised; 0 raises at once.
	ForSeconds int `json:"forSeconds"`
	// Hysteresis moves the clearing point away from Value: "> 30" with
	// hysteresis 2 clears only at 28 or below. Only for >, >=, <, <=.
	Hysteresis float64 `json:"hysteresis,omitempty"`
	// Clear, when set, is the comparison that clears the alert instead of
	// "the comparison no longer holds". It must not hold for any value
	// that raises the alert.
	Clear *Comparison `json:"clear,omitempty"`

	// Seconds is how long a device must be silent (silence).
	Seconds int `json:"seconds,omitempty"`
}

// Comparison is "op value", a custom clear condition.
type Comparison struct {
	Op    Op      `json:"op"`
	Value float64 `json:"value"`
}

// Matches reports whether a reading raises a threshold condition.
func (c Condition) Matches(v float64) bool { return c.Kind == Threshold && c.Op.Holds(v, c.Value) }

// Clears reports whether a reading clears an open threshold alert: the
// clear comparison (by default, the raising comparison no longer holding;
// with hysteresis, its negation at the moved value) holds and the raising
// comparison does not.
func (c Condition) Clears(v float64) bool {
	if c.Kind != Threshold || c.Op.Holds(v, c.Value) {
		return false
	}
	switch {
	case c.Clear != nil:
		return c.Clear.Op.Holds(v, c.Clear.Value)
	case c.Hysteresis > 0:
		switch c.Op {
		case Greater, GreaterEqual:
			return !c.Op.Holds(v, c.Value-c.Hysteresis)
		case Less, LessEqual:
			return !c.Op.Holds(v, c.Value+c.Hysteresis)
		}
	}
	return true
}

// String describes the condition: "temperature > 30 for 120s",
// "silent for 300s", "firmware changed".
func (c Condition) String() string {
	switch c.Kind {
	case Threshold:
		s := fmt.Sprintf("%s %s %s", c.Metric, c.Op, formatNumber(c.Value))
		if c.ForSeconds > 0 {
			s += fmt.Sprintf(" for %ds", c.ForSeconds)
		}
		return s
	case Silence:
		return fmt.Sprintf("silent for %ds", c.Seconds)
	case Changed:
		if c.Property != "" {
			return c.Property + " changed"
		}
		return c.Metric + " changed"
	}
	return string(c.Kind)
}

func formatNumber(v float64) string {
	b, _ := json.Marshal(v) // finite by validation; JSON's form is what users typed
	return string(b)
}

// FieldError is a rule or alert field with a bad value. Field is the JSON
// path of the field ("condition.forSeconds").
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ErrSyntax wraps rule JSON that is not well-formed, as opposed to a
// FieldError for a well-formed rule with a bad field.
var ErrSyntax = errors.New("rule is not valid JSON")

// DecodeRule reads a rule from JSON, refusing unknown fields and fields of
// another kind of condition, and validates it. A missing "enabled" means
// enabled. The error is a *FieldError naming the field, or wraps ErrSyntax.
func DecodeRule(data []byte) (Rule, error) {
	var r Rule
	if len(data) > MaxRuleJSON {
		return Rule{}, fmt.Errorf("%w: %d bytes; at most %d", ErrSyntax, len(data), MaxRuleJSON)
	}
	if err := r.UnmarshalJSON(data); err != nil {
		return Rule{}, err
	}
	return r, r.Validate()
}

// ruleJSON is Rule's wire form with presence made visible.
type ruleJSON struct {
	ID        int64           `json:"id"`
	Name      *string         `json:"name"`
	Severity  *Severity       `json:"severity"`
	Enabled   *bool           `json:"enabled"`
	Scope     json.RawMessage `json:"scope"`
	Condition json.RawMessage `json:"condition"`
}

// UnmarshalJSON decodes strictly (unknown fields are errors) and defaults
// Enabled to true. It does not validate; DecodeRule does both.
func (r *Rule) UnmarshalJSON(data []byte) error {
	var w ruleJSON
	if err := strictDecode(data, &w, ""); err != nil {
		return err
	}
	*r = Rule{ID: w.ID, Enabled: true}
	if w.Name != nil {
		r.Name = *w.Name
	}
	if w.Severity != nil {
		r.Severity = *w.Severity
	}
	if w.Enabled != nil {
		r.Enabled = *w.Enabled
	}
	if isAbsent(w.Scope) {
		return invalid("scope", "is required: give deviceId, tags or fleet")
	}
	if err := strictDecode(w.Scope, &r.Scope, "scope."); err != nil {
		return err
	}
	if isAbsent(w.Condition) {
		return invalid("condition", "is required")
	}
	return r.Condition.UnmarshalJSON(w.Condition)
}

func isAbsent(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// conditionJSON is Condition's wire form with presence made visible, so that
// a field of another kind is refused by name.
type conditionJSON struct {
	Kind       *Kind           `json:"kind"`
	Metric     *string         `json:"metric"`
	Property   *string         `json:"property"`
	Op         *Op             `json:"op"`
	Value      json.RawMessage `json:"value"`
	ForSeconds json.RawMessage `json:"forSeconds"`
	Hysteresis json.RawMessage `json:"hysteresis"`
	Clear      *struct {
		Op    *Op             `json:"op"`
		Value json.RawMessage `json:"value"`
	} `json:"clear"`
	Seconds json.RawMessage `json:"seconds"`
}

// UnmarshalJSON decodes strictly: unknown fields, and fields that belong to
// another kind of condition, are errors naming the field.
func (c *Condition) UnmarshalJSON(data []byte) error {
	var w conditionJSON
	if err := strictDecode(data, &w, "condition."); err != nil {
		return err
	}
	*c = Condition{}
	if w.Kind == nil {
		return invalid("condition.kind", "is required: threshold, silence or changed")
	}
	c.Kind = *w.Kind
	present := map[string]bool{
		"metric": w.Metric != nil, "property": w.Property != nil, "op": w.Op != nil, "value": w.Value != nil,
		"forSeconds": w.ForSeconds != nil, "hysteresis": w.Hysteresis != nil, "clear": w.Clear != nil,
		"seconds": w.Seconds != nil,
	}
	allowed := map[Kind][]string{
		Threshold: {"metric", "op", "value", "forSeconds", "hysteresis", "clear"},
		Silence:   {"seconds"},
		Changed:   {"metric", "property"},
	}[c.Kind]
	if allowed == nil {
		return invalid("condition.kind", "%q is not a kind; use threshold, silence or changed", c.Kind)
	}
	for _, name := range []string{"metric", "property", "op", "value", "forSeconds", "hysteresis", "clear", "seconds"} {
		if present[name] && !contains(allowed, name) {
			return invalid("condition."+name, "is not used by %s conditions", c.Kind)
		}
	}
	var err error
	if w.Metric != nil {
		c.Metric = *w.Metric
	}
	if w.Property != nil {
		c.Property = *w.Property
	}
	switch c.Kind {
	case Threshold:
		if w.Op == nil {
			return invalid("condition.op", "is required: one of > >= < <= == !=")
		}
		c.Op = *w.Op
		if w.Value == nil {
			return invalid("condition.value", "is required")
		}
		if c.Value, err = finite("condition.value", w.Value); err != nil {
			return err
		}
		if w.ForSeconds != nil {
			if c.ForSeconds, err = whole("condition.forSeconds", w.ForSeconds, 0, MaxForSeconds, "7 days"); err != nil {
				return err
			}
		}
		if w.Hysteresis != nil {
			if c.Hysteresis, err = finite("condition.hysteresis", w.Hysteresis); err != nil {
				return err
			}
		}
		if w.Clear != nil {
			c.Clear = &Comparison{}
			if w.Clear.Op == nil {
				return invalid("condition.clear.op", "is required: one of > >= < <= == !=")
			}
			c.Clear.Op = *w.Clear.Op
			if w.Clear.Value == nil {
				return invalid("condition.clear.value", "is required")
			}
			if c.Clear.Value, err = finite("condition.clear.value", w.Clear.Value); err != nil {
				return err
			}
		}
	case Silence:
		if w.Seconds == nil {
			return invalid("condition.seconds", "is required")
		}
		if c.Seconds, err = whole("condition.seconds", w.Seconds, 1, MaxSilence, "30 days"); err != nil {
			return err
		}
	}
	return nil
}

// MarshalJSON writes only the fields of the condition's kind, as the API
// documents them: a threshold always carries op, value and forSeconds.
func (c Condition) MarshalJSON() ([]byte, error) {
	switch c.Kind {
	case Threshold:
		return marshal(struct {
			Kind       Kind        `json:"kind"`
			Metric     string      `json:"metric"`
			Op         Op          `json:"op"`
			Value      float64     `json:"value"`
			ForSeconds int         `json:"forSeconds"`
			Hysteresis float64     `json:"hysteresis,omitempty"`
			Clear      *Comparison `json:"clear,omitempty"`
		}{c.Kind, c.Metric, c.Op, c.Value, c.ForSeconds, c.Hysteresis, c.Clear})
	case Silence:
		return marshal(struct {
			Kind    Kind `json:"kind"`
			Seconds int  `json:"seconds"`
		}{c.Kind, c.Seconds})
	case Changed:
		return marshal(struct {
			Kind     Kind   `json:"kind"`
			Metric   string `json:"metric,omitempty"`
			Property string `json:"property,omitempty"`
		}{c.Kind, c.Metric, c.Property})
	}
	return marshal(struct {
		Kind Kind `json:"kind"`
	}{c.Kind})
}

// marshal leaves escaping < > & to the encoder that writes the whole
// document, as encoding/json does for values without a MarshalJSON.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// trailing data. Errors name the field under prefix.
func strictDecode(data []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return invalid(prefix+typeErr.Field, "must be a JSON %s, got %s", jsonType(typeErr.Type.Kind().String()), typeErr.Value)
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if name = strings.Trim(name, `"`); name == "" {
				name = `""` // the empty name
			}
			return invalid(prefix+name, "is not a field of a rule")
		}
		return fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: unexpected data after the object", ErrSyntax)
	}
	return nil
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "Boolean"
	case "map", "struct":
		return "object"
	}
	return "number"
}

// number reads a JSON number token; a quoted number is refused, although
// json.Number would take it.
func number(field string, raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	n, ok := v.(json.Number)
	if !ok {
		return "", invalid(field, "must be a JSON number, got %s", jsonKindOf(v))
	}
	return n.String(), nil
}

func jsonKindOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "Boolean"
	case nil:
		return "null"
	case []any:
		return "array"
	}
	return "object"
}

func finite(field string, raw json.RawMessage) (float64, error) {
	n, err := number(field, raw)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, invalid(field, "must be a finite number, got %s", n)
	}
	return f, nil
}

func whole(field string, raw json.RawMessage, lo, hi int, hiWords string) (int, error) {
	n, err := number(field, raw)
	if err != nil {
		return 0, err
	}
	i, err := strconv.ParseInt(n, 10, 64)
	if err != nil || i < int64(lo) || i > int64(hi) {
		return 0, invalid(field, "must be a whole number from %d to %d (%s), got %s", lo, hi, hiWords, n)
	}
	return int(i), nil
}

// Validate checks every field and says which one is wrong and why.
func (r Rule) Validate() error {
	if r.ID < 0 {
		return invalid("id", "must not be negative, got %d", r.ID)
	}
	if err := validateName(r.Name); err != nil {
		return err
	}
	if !r.Severity.Valid() {
		return invalid("severity", "%q is not a severity; use critical, major, minor, warning or info", r.Severity)
	}
	if err := r.Scope.Validate(); err != nil {
		return err
	}
	return r.Condition.Validate()
}

func validateName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return invalid("name", "is required")
	case !utf8.ValidString(name):
		return invalid("name", "is not valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return invalid("name", "is %d characters; at most %d", utf8.RuneCountInString(name), MaxNameLen)
	case hasControl(name):
		return invalid("name", "must not contain control characters")
	}
	return nil
}

func hasControl(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return true
		}
	}
	return false
}

// Validate checks that exactly one kind of scope is given and bounded.
func (s Scope) Validate() error {
	n := 0
	if s.DeviceID != "" {
		n++
	}
	if s.Tags != nil {
		n++
	}
	if s.Fleet {
		n++
	}
	switch {
	case n == 0:
		return invalid("scope", "give one of deviceId, tags or fleet")
	case n > 1:
		return invalid("scope", "give only one of deviceId, tags or fleet")
	case s.DeviceID != "":
		return validateDeviceID(s.DeviceID)
	case s.Tags != nil:
		return validateScopeTags(s.Tags)
	}
	return nil
}

// validateDeviceID applies Azure IoT Hub's device id rules, as the device
// registry does, so that a rule cannot name a device that cannot exist.
func validateDeviceID(id string) error {
	if len(id) > MaxDeviceIDLen {
		return invalid("scope.deviceId", "is %d bytes; at most %d", len(id), MaxDeviceIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.:+%_#*?!(),=@$'", c) >= 0 {
			continue
		}
		return invalid("scope.deviceId", "contains %q at position %d; allowed are ASCII letters, digits and - . : + %% _ # * ? ! ( ) , = @ $ '", c, i+1)
	}
	return nil
}

func validateScopeTags(tags map[string]string) error {
	switch {
	case len(tags) == 0:
		return invalid("scope.tags", "give at least one tag; use fleet for every device")
	case len(tags) > MaxScopeTags:
		return invalid("scope.tags", "%d tags; at most %d", len(tags), MaxScopeTags)
	}
	for _, k := range sortedKeys(tags) {
		if err := validateTag(k, tags[k]); err != nil {
			return err
		}
	}
	return nil
}

func validateTag(k, v string) error {
	switch {
	case k == "":
		return invalid("scope.tags", "a tag name is empty")
	case len(k) > MaxTagKeyLen:
		return invalid("scope.tags", "tag name %.20q… is %d bytes; at most %d", k, len(k), MaxTagKeyLen)
	case strings.ContainsAny(k, "=,\n") || !utf8.ValidString(k) || hasControl(k):
		return invalid("scope.tags", "tag name %q must not contain '=', ',' or control characters", k)
	case len(v) > MaxTagValueLen:
		return invalid("scope.tags", "value of tag %q is %d bytes; at most %d", k, len(v), MaxTagValueLen)
	case strings.ContainsAny(v, ",\n") || !utf8.ValidString(v) || hasControl(v):
		return invalid("scope.tags", "value of tag %q must not contain ',' or control characters", k)
	}
	return nil
}

// ParseTags reads a tag scope as typed in forms: "site=berlin,kind=climate".
// Spaces around names and values are ignored; every name must have a value
// (it may be empty: "site=") and may appear once.
func ParseTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, invalid("scope.tags", "%q (item %d) is not name=value", part, i+1)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := tags[k]; dup {
			return nil, invalid("scope.tags", "tag %q is given twice", k)
		}
		if err := validateTag(k, v); err != nil {
			return nil, err
		}
		tags[k] = v
		if len(tags) > MaxScopeTags {
			return nil, invalid("scope.tags", "more than %d tags", MaxScopeTags)
		}
	}
	if len(tags) == 0 {
		return nil, invalid("scope.tags", "no tags given; write name=value[,name=value]…")
	}
	return tags, nil
}

// FormatTags writes tags as ParseTags reads them, in name order:
// "kind=climate, site=berlin".
func FormatTags(tags map[string]string) string {
	keys := sortedKeys(tags)
	for i, k := range keys {
		keys[i] = k + "=" + tags[k]
	}
	return strings.Join(keys, ", ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Validate checks the condition's fields for its kind.
func (c Condition) Validate() error {
	switch c.Kind {
	case Threshold:
		return c.validateThreshold()
	case Silence:
		if err := c.only("seconds"); err != nil {
			return err
		}
		if c.Seconds < 1 || c.Seconds > MaxSilence {
			return invalid("condition.seconds", "must be a whole number from 1 to %d (30 days), got %d", MaxSilence, c.Seconds)
		}
	case Changed:
		if err := c.only("metric", "property"); err != nil {
			return err
		}
		switch {
		case c.Metric == "" && c.Property == "":
			return invalid("condition.metric", "give a metric or a property")
		case c.Metric != "" && c.Property != "":
			return invalid("condition.property", "give a metric or a property, not both")
		case c.Metric != "":
			return validateMetric(c.Metric)
		}
		_, err := PropertyPath(c.Property)
		return err
	case "":
		return invalid("condition.kind", "is required: threshold, silence or changed")
	default:
		return invalid("condition.kind", "%q is not a kind; use threshold, silence or changed", c.Kind)
	}
	return nil
}

// only refuses fields set that the condition's kind does not use.
func (c Condition) only(allowed ...string) error {
	set := map[string]bool{
		"metric": c.Metric != "", "property": c.Property != "", "op": c.Op != "", "value": c.Value != 0,
		"forSeconds": c.ForSeconds != 0, "hysteresis": c.Hysteresis != 0, "clear": c.Clear != nil,
		"seconds": c.Seconds != 0,
	}
	for _, name := range []string{"metric", "property", "op", "value", "forSeconds", "hysteresis", "clear", "seconds"} {
		if set[name] && !contains(allowed, name) {
			return invalid("condition."+name, "is not used by %s conditions", c.Kind)
		}
	}
	return nil
}

func (c Condition) validateThreshold() error {
	if err := c.only("metric", "op", "value", "forSeconds", "hysteresis", "clear"); err != nil {
		return err
	}
	if err := validateMetric(c.Metric); err != nil {
		return err
	}
	if !c.Op.valid() {
		return invalid("condition.op", "%q is not a comparison; use one of > >= < <= == !=", c.Op)
	}
	if math.IsInf(c.Value, 0) || math.IsNaN(c.Value) {
		return invalid("condition.value", "must be a finite number")
	}
	if c.ForSeconds < 0 || c.ForSeconds > MaxForSeconds {
		return invalid("condition.forSeconds", "must be a whole number from 0 to %d (7 days), got %d", MaxForSeconds, c.ForSeconds)
	}
	switch {
	case math.IsInf(c.Hysteresis, 0) || math.IsNaN(c.Hysteresis) || c.Hysteresis < 0:
		return invalid("condition.hysteresis", "must be a finite number, 0 or more")
	case c.Hysteresis > 0 && c.Clear != nil:
		return invalid("condition.hysteresis", "give hysteresis or a clear condition, not both")
	case c.Hysteresis > 0 && (c.Op == Equal || c.Op == NotEqual):
		return invalid("condition.hysteresis", "applies only to > >= < <=, not %s", c.Op)
	case c.Hysteresis > 0 && (math.IsInf(c.Value-c.Hysteresis, 0) || math.IsInf(c.Value+c.Hysteresis, 0)):
		return invalid("condition.hysteresis", "moves the clearing point out of range")
	}
	if c.Clear == nil {
		return nil
	}
	if !c.Clear.Op.valid() {
		return invalid("condition.clear.op", "%q is not a comparison; use one of > >= < <= == !=", c.Clear.Op)
	}
	if math.IsInf(c.Clear.Value, 0) || math.IsNaN(c.Clear.Value) {
		return invalid("condition.clear.value", "must be a finite number")
	}
	if v, ok := overlap(c.Op, c.Value, c.Clear.Op, c.Clear.Value); ok {
		return invalid("condition.clear", "%s %s %s overlaps the raising condition %s %s %s (both hold for %s)",
			c.Metric, c.Clear.Op, formatNumber(c.Clear.Value), c.Metric, c.Op, formatNumber(c.Value), formatNumber(v))
	}
	return nil
}

// overlap finds a value for which both comparisons hold. Each comparison's
// truth changes only at its own value, so trying both values, a point
// between them and one beyond each is exhaustive.
func overlap(op1 Op, x1 float64, op2 Op, x2 float64) (float64, bool) {
	lo, hi := min(x1, x2), max(x1, x2)
	for _, v := range []float64{lo, hi, lo + (hi-lo)/2, lo - 1 - math.Abs(lo), hi + 1 + math.Abs(hi)} {
		if op1.Holds(v, x1) && op2.Holds(v, x2) {
			return v, true
		}
	}
	return 0, false
}

func validateMetric(m string) error {
	switch {
	case m == "":
		return invalid("condition.metric", "is required")
	case len(m) > MaxMetricLen:
		return invalid("condition.metric", "is %d bytes; at most %d", len(m), MaxMetricLen)
	case !utf8.ValidString(m) || hasControl(m):
		return invalid("condition.metric", "must be UTF-8 without control characters")
	case m[0] == '.' || m[len(m)-1] == '.' || strings.Contains(m, ".."):
		return invalid("condition.metric", "%q has an empty name between dots", m)
	}
	return nil
}

// reportedPrefix is the twin document's path to the reported properties,
// which a property path may start with.
const reportedPrefix = "properties.reported."

// PropertyPath splits a reported property path into its names, dropping a
// leading "properties.reported.". Names are non-empty, have no control
// characters and do not start with '$' (the twin's metadata).
func PropertyPath(p string) ([]string, error) {
	switch {
	case p == "":
		return nil, invalid("condition.property", "is required")
	case len(p) > MaxPropertyLen:
		return nil, invalid("condition.property", "is %d bytes; at most %d", len(p), MaxPropertyLen)
	case !utf8.ValidString(p) || hasControl(p):
		return nil, invalid("condition.property", "must be UTF-8 without control characters")
	}
	names := strings.Split(strings.TrimPrefix(p, reportedPrefix), ".")
	if len(names) > MaxPropertyDepth {
		return nil, invalid("condition.property", "has %d names; at most %d", len(names), MaxPropertyDepth)
	}
	for _, n := range names {
		switch {
		case n == "":
			return nil, invalid("condition.property", "%q has an empty name between dots", p)
		case n[0] == '$':
			return nil, invalid("condition.property", "%q: names starting with $ are twin metadata, not properties", p)
		}
	}
	return names, nil
}
