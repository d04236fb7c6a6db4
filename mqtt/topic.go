// Package mqtt holds the pure parts of Azure IoT Hub's MQTT protocol: the
// topics a device may use, property bags, and the topics the hub sends on.
package mqtt

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrForbiddenTopic is returned (wrapped with detail) for a publish or
// subscription outside the device's own topics.
var ErrForbiddenTopic = errors.New("topic not allowed for this device")

// Kind says what a device publish is.
type Kind int

// The kinds of device publishes.
const (
	Telemetry         Kind = iota + 1 // devices/<id>/messages/events/<bag>
	TwinGet                           // $iothub/twin/GET/?$rid=<rid>
	TwinPatchReported                 // $iothub/twin/PATCH/properties/reported/?$rid=<rid>
	MethodResponse                    // $iothub/methods/res/<status>/?$rid=<rid>
)

func (k Kind) String() string {
	switch k {
	case Telemetry:
		return "telemetry"
	case TwinGet:
		return "twin get"
	case TwinPatchReported:
		return "reported properties patch"
	case MethodResponse:
		return "method response"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Publish is a parsed device publish topic.
type Publish struct {
	Kind Kind
	// Bag is the telemetry property bag as it appears in the topic (encoded).
	Bag string
	// System and App are Bag decoded: system properties ($.mid, $.ct, …)
	// and application properties. Nil when empty.
	System, App map[string]string
	// RID is the request id ($rid) of twin requests and method responses.
	RID string
	// Status is a method response's status code.
	Status int
}

// Topic prefixes and filters of the protocol.
const (
	twinGetPrefix         = "$iothub/twin/GET/"
	twinReportedPrefix    = "$iothub/twin/PATCH/properties/reported/"
	methodResponsePrefix  = "$iothub/methods/res/"
	methodsFilter         = "$iothub/methods/POST/#"
	twinResponsesFilter   = "$iothub/twin/res/#"
	desiredPatchesFilter  = "$iothub/twin/PATCH/properties/desired/#"
	methodRequestPrefix   = "$iothub/methods/POST/"
	twinResponsePrefix    = "$iothub/twin/res/"
	desiredPatchTopicBase = "$iothub/twin/PATCH/properties/desired/?$version="
)

// ParseDevicePublish parses the topic of a PUBLISH from deviceID and refuses
// anything that is not one of that device's own topics.
func ParseDevicePublish(deviceID, topic string) (Publish, error) {
	if rest, ok := strings.CutPrefix(topic, "devices/"); ok {
		return parseTelemetry(deviceID, topic, rest)
	}
	path, query, _ := strings.Cut(topic, "?")
	var p Publish
	switch {
	case path == twinGetPrefix || path+"/" == twinGetPrefix:
		p.Kind = TwinGet
	case path == twinReportedPrefix || path+"/" == twinReportedPrefix:
		p.Kind = TwinPatchReported
	case strings.HasPrefix(path, methodResponsePrefix):
		status := strings.TrimSuffix(path[len(methodResponsePrefix):], "/")
		n, err := strconv.ParseInt(status, 10, 32)
		if err != nil {
			return Publish{}, fmt.Errorf("method response topic %q: status %q is not an integer", topic, status)
		}
		p.Kind, p.Status = MethodResponse, int(n)
	default:
		return Publish{}, fmt.Errorf("%w: %q: a device publishes on devices/%s/messages/events/, "+
			"$iothub/twin/GET/, $iothub/twin/PATCH/properties/reported/ or $iothub/methods/res/<status>/",
			ErrForbiddenTopic, topic, deviceID)
	}
	sys, _, err := DecodePropertyBag(query)
	if err != nil {
		return Publish{}, fmt.Errorf("%s topic %q: %w", p.Kind, topic, err)
	}
	if p.RID = sys["$rid"]; p.RID == "" {
		return Publish{}, fmt.Errorf("%s topic %q: missing $rid (want …/?$rid=<request id>)", p.Kind, topic)
	}
	return p, nil
}

func parseTelemetry(deviceID, topic, rest string) (Publish, error) {
	id, rest, _ := strings.Cut(rest, "/")
	if id != deviceID {
		return Publish{}, fmt.Errorf("%w: %q belongs to device %q, not %q", ErrForbiddenTopic, topic, id, deviceID)
	}
	bag, ok := strings.CutPrefix(rest, "messages/events/")
	if !ok && rest == "messages/events" {
		bag, ok = "", true
	}
	if !ok {
		if strings.HasPrefix(rest, "modules/") {
			return Publish{}, fmt.Errorf("%w: %q: module identities are not supported", ErrForbiddenTopic, topic)
		}
		return Publish{}, fmt.Errorf("%w: %q: a device publishes telemetry on devices/%s/messages/events/<properties>",
			ErrForbiddenTopic, topic, deviceID)
	}
	sys, app, err := DecodePropertyBag(bag)
	if err != nil {
		return Publish{}, fmt.Errorf("telemetry topic %q: %w", topic, err)
	}
	return Publish{Kind: Telemetry, Bag: bag, System: sys, App: app}, nil
}

// AllowedSubscription reports whether deviceID may subscribe to filter: only
// the exact filters the SDKs use are allowed. The $iothub filters are the
// same for every device, so the broker must deliver method requests and twin
// messages to the one connection they are for, never by topic fan-out.
func AllowedSubscription(deviceID, filter string) error {
	switch filter {
	case "devices/" + deviceID + "/messages/devicebound/#", methodsFilter, twinResponsesFilter, desiredPatchesFilter:
		return nil
	}
	return fmt.Errorf("%w: cannot subscribe to %q; allowed: devices/%s/messages/devicebound/#, %s, %s, %s",
		ErrForbiddenTopic, filter, deviceID, methodsFilter, twinResponsesFilter, desiredPatchesFilter)
}

// ParseUsername splits a CONNECT username "<HostName>/<deviceId>/?api-version=…&…"
// into the host (with any port) and device id. The older form without '?'
// ("…/<deviceId>/api-version=…") is accepted too.
func ParseUsername(u string) (host, deviceID string, err error) {
	host, rest, ok := strings.Cut(u, "/")
	if !ok || host == "" {
		return "", "", fmt.Errorf("mqtt username %q: want <HostName>/<deviceId>/?api-version=…", u)
	}
	deviceID, rest, _ = strings.Cut(rest, "/")
	if deviceID == "" {
		return "", "", fmt.Errorf("mqtt username %q: missing device id (want <HostName>/<deviceId>/?api-version=…)", u)
	}
	if rest != "" && !strings.HasPrefix(rest, "?") && !strings.HasPrefix(rest, "api-version=") {
		return "", "", fmt.Errorf("mqtt username %q: unexpected %q after the device id (module identities are not supported)", u, rest)
	}
	return host, deviceID, nil
}

// DecodePropertyBag decodes "k=v&k2=v2" with percent-decoded keys and values
// ('+' stays '+', as JavaScript's decodeURIComponent does). Keys starting
// with '$' ("$.mid", also sent as "%24.mid"; "$rid") are system properties,
// the rest application properties. A key without '=' has an empty value; a
// repeated key keeps its last value. The maps are nil when empty.
func DecodePropertyBag(bag string) (system map[string]string, app map[string]string, err error) {
	for pair := range strings.SplitSeq(bag, "&") {
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.PathUnescape(rawKey)
		if err != nil {
			return nil, nil, fmt.Errorf("property bag: key %q: %w", rawKey, err)
		}
		value, err := url.PathUnescape(rawValue)
		if err != nil {
			return nil, nil, fmt.Errorf("property bag: value of %q: %w", key, err)
		}
		switch {
		case key == "":
			return nil, nil, fmt.Errorf("property bag: empty property name in %q", pair)
		case !utf8.ValidString(key) || !utf8.ValidString(value):
			return nil, nil, fmt.Errorf("property bag: property %q is not valid UTF-8", key)
		}
		target := &app
		if key[0] == '$' {
			target = &system
		}
		if *target == nil {
			*target = make(map[string]string)
		}
		(*target)[key] = value
	}
	return system, app, nil
}

// EncodePropertyBag encodes properties as one topic segment: system
// properties first, each group sorted by key, keys and values encoded like
// JavaScript's encodeURIComponent (so '/', '&', '=', '+', '#' and '$' are
// escaped). Invalid UTF-8 becomes U+FFFD, because the SDKs' decoders throw
// on it.
func EncodePropertyBag(system, app map[string]string) string {
	var b strings.Builder
	for _, m := range []map[string]string{system, app} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			appendComponent(&b, k)
			b.WriteByte('=')
			appendComponent(&b, m[k])
		}
	}
	return b.String()
}

// appendComponent writes s encoded like encodeURIComponent: everything but
// A-Z a-z 0-9 - _ . ! ~ * ' ( ) is percent-encoded with upper-case hex.
func appendComponent(b *strings.Builder, s string) {
	const upperHex = "0123456789ABCDEF"
	s = strings.ToValidUTF8(s, "\uFFFD")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			strings.IndexByte("-_.!~*'()", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
}

func encodeComponent(s string) string {
	var b strings.Builder
	appendComponent(&b, s)
	return b.String()
}

// C2DTopic is the topic of a cloud-to-device message. It ends with '/' after
// devicebound even when the bag is empty: the Node SDK drops messages whose
// topic does not match devices/…/messages/devicebound/….
func C2DTopic(deviceID string, system, app map[string]string) string {
	return "devices/" + deviceID + "/messages/devicebound/" + EncodePropertyBag(system, app)
}

// MethodRequestTopic is the topic of a direct method call. Check the name
// with commands.CheckMethodName first. Use plain request ids (letters, digits): the
// SDKs echo the decoded rid unencoded in their response topic.
func MethodRequestTopic(method, rid string) string {
	return methodRequestPrefix + method + "/?$rid=" + encodeComponent(rid)
}

// TwinResponseTopic answers a twin request; version 0 leaves out $version
// (twin GET replies), otherwise it carries the new reported version.
func TwinResponseTopic(status int, rid string, version int64) string {
	t := twinResponsePrefix + strconv.Itoa(status) + "/?$rid=" + encodeComponent(rid)
	if version != 0 {
		t += "&$version=" + strconv.FormatInt(version, 10)
	}
	return t
}

// DesiredPatchTopic carries a desired properties patch to the device.
func DesiredPatchTopic(version int64) string {
	return desiredPatchTopicBase + strconv.FormatInt(version, 10)
}
