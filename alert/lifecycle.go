package alert

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// State is where an alert is in its lifecycle: active (not acknowledged),
// acknowledged, or cleared. An alert can clear from either open state.
type State string

// The states of an alert.
const (
	StateActive       State = "active"
	StateAcknowledged State = "acknowledged"
	StateCleared      State = "cleared"
)

// Bounds of what operators write on an alert.
const (
	MaxCommentLen = 1000 // characters
	MaxByLen      = 128  // characters of who acted
)

// Errors of lifecycle transitions that the alert's state does not allow.
var (
	ErrCleared      = errors.New("the alert is already cleared")
	ErrAcknowledged = errors.New("the alert is already acknowledged")
)

// Alert is one alert as stored and shown: one row per (rule, device)
// episode, from raise to clear. Repeats while it is open raise Count and
// move LastAt and Value instead of making new alerts.
type Alert struct {
	ID       int64     `json:"id"`
	RuleID   int64     `json:"ruleId"`
	DeviceID string    `json:"deviceId"`
	Severity Severity  `json:"severity"`
	State    State     `json:"state"`
	Count    int       `json:"count"`
	FirstAt  time.Time `json:"firstAt"`
	LastAt   time.Time `json:"lastAt"`
	Value    any       `json:"value"`

	AcknowledgedAt time.Time `json:"acknowledgedAt,omitzero"`
	AcknowledgedBy string    `json:"acknowledgedBy,omitempty"`
	AckComment     string    `json:"ackComment,omitempty"`

	ClearedAt    time.Time `json:"clearedAt,omitzero"`
	ClearedBy    string    `json:"clearedBy,omitempty"` // empty when the condition cleared it
	ClearComment string    `json:"clearComment,omitempty"`
	ClearReason  Reason    `json:"clearReason,omitempty"`
}

// NewAlert starts an alert from a Raise transition.
func NewAlert(t Transition) (Alert, error) {
	if t.Kind != Raise {
		return Alert{}, fmt.Errorf("alert: a new alert comes from a raise, not a %s", t.Kind)
	}
	a := t.Alert
	return Alert{RuleID: a.RuleID, DeviceID: a.DeviceID, Severity: a.Severity, State: StateActive,
		Count: a.Count, FirstAt: a.FirstAt, LastAt: a.LastAt, Value: a.Value}, nil
}

// Open reports whether the alert has not cleared.
func (a *Alert) Open() bool { return a.State != StateCleared }

// Apply takes a Repeat, Update or Clear transition of the evaluator for
// this alert's (rule, device). Acknowledgement survives repeats: an
// operator who acknowledged a problem is not asked again while it lasts.
func (a *Alert) Apply(t Transition) error {
	if t.Alert.RuleID != a.RuleID || t.Alert.DeviceID != a.DeviceID {
		return fmt.Errorf("alert: transition for rule %d on %q applied to the alert of rule %d on %q",
			t.Alert.RuleID, t.Alert.DeviceID, a.RuleID, a.DeviceID)
	}
	if !a.Open() {
		return ErrCleared
	}
	switch t.Kind {
	case Repeat, Update:
		a.Count, a.LastAt, a.Value = t.Alert.Count, t.Alert.LastAt, t.Alert.Value
	case Clear:
		a.Count, a.LastAt, a.Value = t.Alert.Count, t.Alert.LastAt, t.Alert.Value
		a.State, a.ClearedAt, a.ClearReason = StateCleared, t.At, t.Reason
	default:
		return fmt.Errorf("alert: a %s does not apply to an existing alert", t.Kind)
	}
	return nil
}

// Acknowledge marks an active alert as seen by an operator.
func (a *Alert) Acknowledge(by, comment string, at time.Time) error {
	if err := validateAction(by, comment); err != nil {
		return err
	}
	switch a.State {
	case StateCleared:
		return ErrCleared
	case StateAcknowledged:
		return ErrAcknowledged
	}
	a.State, a.AcknowledgedAt, a.AcknowledgedBy, a.AckComment = StateAcknowledged, at, by, comment
	return nil
}

// Clear closes an open alert on an operator's word (ReasonOperator),
// acknowledged or not. Tell the evaluator with ClearedByOperator.
func (a *Alert) Clear(by, comment string, at time.Time) error {
	if err := validateAction(by, comment); err != nil {
		return err
	}
	if !a.Open() {
		return ErrCleared
	}
	a.State, a.ClearedAt, a.ClearedBy, a.ClearComment, a.ClearReason = StateCleared, at, by, comment, ReasonOperator
	return nil
}

func validateAction(by, comment string) error {
	switch {
	case strings.TrimSpace(by) == "":
		return invalid("by", "who acts on the alert is required")
	case !utf8.ValidString(by) || hasControl(by):
		return invalid("by", "must be UTF-8 without control characters")
	case utf8.RuneCountInString(by) > MaxByLen:
		return invalid("by", "is %d characters; at most %d", utf8.RuneCountInString(by), MaxByLen)
	case !utf8.ValidString(comment):
		return invalid("comment", "is not valid UTF-8")
	case utf8.RuneCountInString(comment) > MaxCommentLen:
		return invalid("comment", "is %d characters; at most %d", utf8.RuneCountInString(comment), MaxCommentLen)
	case hasControl(strings.NewReplacer("\n", "", "\r", "", "\t", "").Replace(comment)):
		return invalid("comment", "must not contain control characters other than line breaks and tabs")
	}
	return nil
}
