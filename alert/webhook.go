package alert

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Headers of a webhook delivery.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body
	// with the hook's secret.
	SignatureHeader = "X-Fieldhub-Signature"
	// TimestampHeader carries the delivery's time in Unix seconds. It is
	// not signed; the same time is in the signed body as "sentAt", which
	// is what a receiver checks against replays.
	TimestampHeader = "X-Fieldhub-Timestamp"
)

// EventType is what a webhook is told about.
type EventType string

// The webhook events.
const (
	EventRaised       EventType = "alert.raised"
	EventAcknowledged EventType = "alert.acknowledged"
	EventCleared      EventType = "alert.cleared"
)

// EventTypes lists the events a hook can subscribe to.
func EventTypes() []EventType { return []EventType{EventRaised, EventAcknowledged, EventCleared} }

// Valid reports whether t is one of EventTypes.
func (t EventType) Valid() bool {
	return t == EventRaised || t == EventAcknowledged || t == EventCleared
}

// EventFor says which event a transition is announced as; repeats and
// updates are not announced.
func EventFor(k TransitionKind) (EventType, bool) {
	switch k {
	case Raise:
		return EventRaised, true
	case Clear:
		return EventCleared, true
	}
	return "", false
}

// Event is the JSON body of a webhook delivery. ID is the same on every
// attempt of one delivery (receivers drop duplicates by it); SentAt is the
// attempt's time.
type Event struct {
	ID     string    `json:"id"`
	Type   EventType `json:"type"`
	SentAt time.Time `json:"sentAt"`
	Alert  Alert     `json:"alert"`
	Rule   Rule      `json:"rule"`
	Device Device    `json:"device"`
	// Value is what caused the event, when a reading did: the reading that
	// cleared a threshold, how long a silent device was silent.
	Value any `json:"value,omitempty"`
}

// UnmarshalJSON reads an event leniently, as a receiver should: fields a
// newer hub adds are ignored, and the rule is taken as it comes, without
// the API's strict checks.
func (ev *Event) UnmarshalJSON(b []byte) error {
	type looseCondition Condition // without Condition's strict UnmarshalJSON
	var w struct {
		ID     string    `json:"id"`
		Type   EventType `json:"type"`
		SentAt time.Time `json:"sentAt"`
		Alert  Alert     `json:"alert"`
		Rule   struct {
			ID        int64          `json:"id"`
			Name      string         `json:"name"`
			Severity  Severity       `json:"severity"`
			Enabled   bool           `json:"enabled"`
			Scope     Scope          `json:"scope"`
			Condition looseCondition `json:"condition"`
		} `json:"rule"`
		Device Device `json:"device"`
		Value  any    `json:"value"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r := w.Rule
	*ev = Event{ID: w.ID, Type: w.Type, SentAt: w.SentAt, Alert: w.Alert, Device: w.Device, Value: w.Value,
		Rule: Rule{ID: r.ID, Name: r.Name, Severity: r.Severity, Enabled: r.Enabled, Scope: r.Scope, Condition: Condition(r.Condition)}}
	return nil
}

// Device names the alert's device and links to its dashboard page.
type Device struct {
	ID  string `json:"id"`
	URL string `json:"url,omitempty"`
}

// DeviceURL is the dashboard page of a device under baseURL
// ("https://hub.example.com"); empty when baseURL is.
func DeviceURL(baseURL, deviceID string) string {
	if baseURL == "" {
		return ""
	}
	return strings.TrimRight(baseURL, "/") + "/devices/" + url.PathEscape(deviceID)
}

// Payload is the body of a delivery in the JSON format.
func (ev Event) Payload() ([]byte, error) {
	return json.Marshal(ev)
}

// Sign is the X-Fieldhub-Signature of a body: "sha256=" and the hex
// HMAC-SHA256 of the body with the secret. The timestamp is not signed
// separately: it is inside the body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// FormatTimestamp writes a time as X-Fieldhub-Timestamp carries it.
func FormatTimestamp(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook signature does not match the body")
	ErrStale        = errors.New("webhook delivery is too old or from the future")
)

// Verify is for receivers of the JSON format: it checks the signature
// header against the body in constant time, decodes the event, and refuses
// it when its sentAt is more than maxAge away from now (a replay).
func Verify(secret, body []byte, signature string, now time.Time, maxAge time.Duration) (Event, error) {
	got, ok := strings.CutPrefix(signature, "sha256=")
	sum, err := hex.DecodeString(got)
	if !ok || err != nil {
		return Event{}, fmt.Errorf("%w: %q is not sha256=<hex>", ErrBadSignature, signature)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(sum, m.Sum(nil)) {
		return Event{}, ErrBadSignature
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return Event{}, fmt.Errorf("webhook body is not an event: %w", err)
	}
	if age := now.Sub(ev.SentAt); age > maxAge || age < -maxAge {
		return Event{}, fmt.Errorf("%w: sent at %s, now %s", ErrStale, ev.SentAt.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return ev, nil
}

// Slack is the body of a delivery in the Slack format (incoming webhooks):
// a plain "text" for notifications and "blocks" with the same facts.
func (ev Event) Slack() ([]byte, error) {
	headline := ev.headline()
	detail := ev.detail()
	device := slackEscape(ev.Device.ID)
	if ev.Device.URL != "" {
		device = "<" + strings.ReplaceAll(ev.Device.URL, "&", "%26") + "|" + device + ">"
	}
	text := fmt.Sprintf("%s: %s on %s. %s", headline, slackEscape(ev.Rule.Name), device, slackEscape(detail))
	context := fmt.Sprintf("Severity %s · rule: %s · first %s · count %d",
		ev.Alert.Severity, slackEscape(ev.Rule.Condition.String()), ev.Alert.FirstAt.UTC().Format(time.RFC3339), ev.Alert.Count)
	type textObject struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type     string       `json:"type"`
		Text     *textObject  `json:"text,omitempty"`
		Elements []textObject `json:"elements,omitempty"`
	}
	return json.Marshal(struct {
		Text   string  `json:"text"`
		Blocks []block `json:"blocks"`
	}{
		Text: text,
		Blocks: []block{
			{Type: "section", Text: &textObject{"mrkdwn", text}},
			{Type: "context", Elements: []textObject{{"mrkdwn", context}}},
		},
	})
}

func (ev Event) headline() string {
	sev := strings.ToUpper(string(ev.Alert.Severity))
	switch ev.Type {
	case EventRaised:
		return "[" + sev + "] Alert"
	case EventAcknowledged:
		return "[" + sev + "] Acknowledged by " + slackEscape(ev.Alert.AcknowledgedBy)
	case EventCleared:
		return "[" + sev + "] Cleared"
	}
	return "[" + sev + "] " + slackEscape(string(ev.Type))
}

// detail says in words what the alert is about.
func (ev Event) detail() string {
	c := ev.Rule.Condition
	var s string
	switch {
	case ev.Type == EventCleared && ev.Alert.ClearReason != ReasonCondition:
		s = "Reason: " + describeReason(ev.Alert.ClearReason, ev.Alert.ClearedBy)
	case c.Kind == Threshold && ev.Type == EventCleared && ev.Value != nil:
		s = fmt.Sprintf("%s is %s again (raised at %s %s).", c.Metric, describeValue(ev.Value), c.Op, formatNumber(c.Value))
	case c.Kind == Threshold:
		s = fmt.Sprintf("%s is %s (%s %s).", c.Metric, describeValue(ev.Alert.Value), c.Op, formatNumber(c.Value))
	case c.Kind == Silence && ev.Type == EventCleared && ev.Value != nil:
		s = "The device spoke again after " + describeSeconds(ev.Value) + " of silence."
	case c.Kind == Silence:
		s = fmt.Sprintf("No message for %s.", seconds(c.Seconds))
	case c.Kind == Changed:
		name := c.Metric
		if name == "" {
			name = c.Property
		}
		s = fmt.Sprintf("%s changed to %s.", name, describeValue(ev.Alert.Value))
	}
	if ev.Type == EventAcknowledged && ev.Alert.AckComment != "" {
		s += " Comment: " + ev.Alert.AckComment
	}
	if ev.Type == EventCleared && ev.Alert.ClearComment != "" {
		s += " Comment: " + ev.Alert.ClearComment
	}
	return truncate(s, 2000) // a section's text holds 3,000 characters
}

func describeReason(r Reason, by string) string {
	switch r {
	case ReasonOperator:
		return "cleared by " + by + "."
	case ReasonOutOfScope:
		return "the device is no longer in the rule's scope."
	case ReasonRuleChanged:
		return "the rule's condition was changed."
	case ReasonRuleDisabled:
		return "the rule was disabled."
	case ReasonRuleDeleted:
		return "the rule was deleted."
	case ReasonDeviceDeleted:
		return "the device was deleted."
	}
	return string(r) + "."
}

func describeValue(v any) string {
	if f, ok := v.(float64); ok {
		return formatNumber(f)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return truncate(string(b), 200)
}

func describeSeconds(v any) string {
	f, ok := toFloat(v)
	if !ok {
		return "?"
	}
	return time.Duration(f * float64(time.Second)).Round(time.Second).String()
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
