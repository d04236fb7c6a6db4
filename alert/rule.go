package alert

import (
	"encoding/json"
	"fmt"
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
