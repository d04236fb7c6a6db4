package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

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
