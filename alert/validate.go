package alert

import (
	"math"
	"sort"
	"strings"
	"unicode/utf8"
)

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
