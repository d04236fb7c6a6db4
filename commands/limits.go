package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"fieldhub/db"
	"fieldhub/storage"
)

// Every limit on what operators send to devices, in one place (Azure IoT
// Hub's figures): the services check requests against them (Validate,
// checkCloudMessage, ParseTwinPatch), the MQTT broker the names it puts in
// topics (CheckMethodName), the operator API answers in their words, and the
// device page renders them into its forms' attributes, which the page script
// reads (views.CommandLimits).

// Direct methods.
const (
	MaxMethodName          = 128 // characters, all ASCII (CheckMethodName)
	MaxMethodPayload       = 128 * 1024
	MinResponseTimeout     = 5 * time.Second
	MaxResponseTimeout     = 300 * time.Second
	DefaultResponseTimeout = 30 * time.Second
	MaxConnectTimeout      = 300 * time.Second
)

// methodNameSymbols are the characters besides ASCII letters and digits a
// method name may have: the HTTP token characters, which IoT Hub allows in
// method names, less '#' and '+', which MQTT forbids in the topic the name
// travels in ($iothub/methods/POST/{name}/…), and '$', which IoT Hub refuses.
const methodNameSymbols = "!%&'*-.^_`|~"

// MethodNamePattern is CheckMethodName as a regular expression, written so
// that Go and browsers (an input's pattern attribute, compiled with the v
// flag) read it alike: in the character class the syntax characters are
// escaped, the other symbols are not (v mode refuses escaping them).
var MethodNamePattern = fmt.Sprintf("[A-Za-z0-9%s]{1,%d}",
	strings.NewReplacer("*", `\*`, "-", `\-`, ".", `\.`, "^", `\^`, "|", `\|`).Replace(methodNameSymbols), MaxMethodName)

// MethodNameRule says CheckMethodName's rule in words, for error messages
// and the page's form.
var MethodNameRule = fmt.Sprintf("1 to %d ASCII letters, digits and %s", MaxMethodName,
	strings.Join(strings.Split(methodNameSymbols, ""), " "))

// CheckMethodName is the one rule for direct method names (MethodNameRule).
func CheckMethodName(name string) error {
	if name == "" || len(name) > MaxMethodName {
		return &InvalidMethodError{fmt.Sprintf("method name must be %s", MethodNameRule)}
	}
	for _, r := range name {
		if r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(methodNameSymbols, r)) {
			continue
		}
		return &InvalidMethodError{fmt.Sprintf("method name %q contains %q; a method name is %s", name, r, MethodNameRule)}
	}
	return nil
}

// Cloud-to-device messages.
const (
	MaxCloudQueue           = 50 // waiting or locked, per device
	MaxCloudBody            = 64 * 1024
	MinCloudTTL             = time.Minute
	MaxCloudTTL             = 48 * time.Hour
	DefaultCloudTTL         = time.Hour
	DefaultCloudLock        = time.Minute
	DefaultMaxDeliveryCount = 10
	MaxMaxDeliveryCount     = 100
	MaxCloudProperties      = 64
	MaxCloudPropertyName    = 128
	MaxCloudPropertiesSize  = 8 * 1024 // bytes of names and values
	MaxCloudID              = 128      // characters of messageId and correlationId
)

// checkCloudMessage checks a message against the limits and fills in the
// defaults. Errors are *storage.InvalidError naming the field.
func checkCloudMessage(nm *db.NewCloudMessage) error {
	if len(nm.Body) > MaxCloudBody {
		return invalid("body", "body is %d bytes; at most %d are allowed", len(nm.Body), MaxCloudBody)
	}
	if nm.TTL == 0 {
		nm.TTL = DefaultCloudTTL
	}
	if nm.TTL < MinCloudTTL || nm.TTL > MaxCloudTTL {
		return invalid("ttlSeconds", "time to live is %d seconds; it must be from %d to %d",
			int64(nm.TTL/time.Second), int64(MinCloudTTL/time.Second), int64(MaxCloudTTL/time.Second))
	}
	if nm.MaxDeliveryCount == 0 {
		nm.MaxDeliveryCount = DefaultMaxDeliveryCount
	}
	if nm.MaxDeliveryCount < 1 || nm.MaxDeliveryCount > MaxMaxDeliveryCount {
		return invalid("maxDeliveryCount", "must be from 1 to %d", MaxMaxDeliveryCount)
	}
	for field, v := range map[string]string{"messageId": nm.MessageID, "correlationId": nm.CorrelationID} {
		if len(v) > MaxCloudID {
			return invalid(field, "is %d characters long; at most %d are allowed", len(v), MaxCloudID)
		}
		if !printable(v) {
			return invalid(field, "must be printable characters without control characters")
		}
	}
	return checkCloudProperties(nm.Properties)
}

func checkCloudProperties(props map[string]string) error {
	if len(props) > MaxCloudProperties {
		return invalid("properties", "%d properties; at most %d are allowed", len(props), MaxCloudProperties)
	}
	total := 0
	for k, v := range props {
		if err := checkPropertyName(k); err != nil {
			return err
		}
		if !printable(v) {
			return invalid("properties", "value of %q must be printable characters without control characters", k)
		}
		total += len(k) + len(v)
	}
	if total > MaxCloudPropertiesSize {
		return invalid("properties", "properties take %d bytes; at most %d are allowed", total, MaxCloudPropertiesSize)
	}
	return nil
}

// checkPropertyName accepts names that can travel as HTTP header suffixes
// (iothub-app-<name>) and as MQTT property-bag keys.
func checkPropertyName(k string) error {
	if k == "" || len(k) > MaxCloudPropertyName {
		return invalid("properties", "property name %q must be 1-%d characters", k, MaxCloudPropertyName)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return invalid("properties", "property name %q contains %q; use letters, digits and !#$%%&'*+-.^_`|~", k, c)
	}
	return nil
}

// Device twins.
const (
	MaxTwinSection = 32 * 1024 // bytes of JSON, each of desired and reported
	MaxTwinDepth   = 10        // nesting levels of objects
)

// ParseTwinPatch reads a JSON merge patch (RFC 7386) of a twin section and
// says what is wrong with it (a *storage.InvalidError on "patch"). Numbers stay
// exact (json.Number). The top-level "$version" and "$metadata" a device or
// SDK may include are dropped; other names starting with '$' are reserved.
func ParseTwinPatch(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	patch, isObject := v.(map[string]any)
	switch {
	case err != nil:
	case dec.More():
		err = errors.New("more than one JSON value")
	case !isObject:
		err = errors.New("not a JSON object")
	}
	if err != nil {
		return nil, invalid("patch", "must be a JSON object: %v", err)
	}
	delete(patch, "$version")
	delete(patch, "$metadata")
	if err := checkTwinNames(patch, 1); err != nil {
		return nil, err
	}
	return patch, nil
}

func checkTwinNames(obj map[string]any, depth int) error {
	if depth > MaxTwinDepth {
		return invalid("patch", "objects are nested more than %d levels deep", MaxTwinDepth)
	}
	for k, v := range obj {
		if k == "" || strings.HasPrefix(k, "$") || !printable(k) {
			return invalid("patch", "property name %q is not allowed: names must be non-empty, printable and not start with '$'", k)
		}
		if child, ok := v.(map[string]any); ok {
			if err := checkTwinNames(child, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// printable is valid UTF-8 without control characters, so it is safe in
// headers and topics.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func invalid(field, format string, args ...any) error {
	return &storage.InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
