package alert

import (
	"errors"
	"strings"
	"testing"
)

// raised runs a threshold rule to a raise and returns the stored alert.
func raised(t *testing.T) (*Alert, *Evaluator) {
	t.Helper()
	ev := New(Options{UpdateEvery: -1})
	r := thresholdRule(1, "temp", Greater, 30, 0)
	r.Condition.Hysteresis = 2
	if _, err := ev.SetRule(r, t0); err != nil {
		t.Fatal(err)
	}
	ts := ev.Reading("d", nil, at(0), []Sample{{"temp", 31}})
	a, err := NewAlert(ts[0])
	if err != nil {
		t.Fatal(err)
	}
	a.ID = 42
	return &a, ev
}

func TestAlertFromTransitions(t *testing.T) {
	a, ev := raised(t)
	if a.State != StateActive || a.Count != 1 || a.FirstAt != at(0) || a.Value != 31.0 || a.Severity != Major {
		t.Fatalf("new alert = %+v", a)
	}
	for _, s := range []struct {
		at float64
		v  float64
	}{{1, 29}, {2, 33}, {3, 27}} {
		for _, tr := range ev.Reading("d", nil, at(s.at), []Sample{{"temp", s.v}}) {
			if err := a.Apply(tr); err != nil {
				t.Fatalf("Apply(%s): %v", tr.Kind, err)
			}
		}
	}
	if a.State != StateCleared || a.Count != 2 || a.LastAt != at(2) || a.Value != 33.0 ||
		a.ClearedAt != at(3) || a.ClearReason != ReasonCondition || a.ClearedBy != "" {
		t.Fatalf("alert after repeat and clear = %+v", a)
	}
	if _, err := NewAlert(Transition{Kind: Clear}); err == nil {
		t.Error("NewAlert accepted a clear")
	}
	other := Transition{Kind: Repeat, Alert: OpenAlert{RuleID: 1, DeviceID: "e"}}
	b, _ := raised(t)
	if err := b.Apply(other); err == nil {
		t.Error("Apply accepted another device's transition")
	}
	if err := a.Apply(Transition{Kind: Repeat, Alert: OpenAlert{RuleID: 1, DeviceID: "d"}}); !errors.Is(err, ErrCleared) {
		t.Errorf("Apply on a cleared alert: %v, want ErrCleared", err)
	}
}

func TestAlertLifecycle(t *testing.T) {
	type action struct {
		verb    string // ack or clear
		by      string
		comment string
		err     error  // a lifecycle error, or nil
		field   string // a FieldError on this field
	}
	tests := []struct {
		name    string
		actions []action
		state   State
	}{
		{"ack then clear", []action{{verb: "ack", by: "ann", comment: "on it"}, {verb: "clear", by: "bob", comment: "fixed"}}, StateCleared},
		{"clear while unacknowledged", []action{{verb: "clear", by: "bob"}}, StateCleared},
		{"ack twice", []action{{verb: "ack", by: "ann"}, {verb: "ack", by: "bob", err: ErrAcknowledged}}, StateAcknowledged},
		{"ack after clear", []action{{verb: "clear", by: "bob"}, {verb: "ack", by: "ann", err: ErrCleared}}, StateCleared},
		{"clear twice", []action{{verb: "clear", by: "bob"}, {verb: "clear", by: "bob", err: ErrCleared}}, StateCleared},
		{"comment too long", []action{{verb: "ack", by: "ann", comment: strings.Repeat("é", 1001), field: "comment"}}, StateActive},
		{"comment at the limit", []action{{verb: "ack", by: "ann", comment: strings.Repeat("é", 1000)}}, StateAcknowledged},
		{"comment with lines", []action{{verb: "clear", by: "ann", comment: "line 1\r\nline 2\tend"}}, StateCleared},
		{"comment with control", []action{{verb: "clear", by: "ann", comment: "bell\a", field: "comment"}}, StateActive},
		{"nobody", []action{{verb: "ack", by: " ", field: "by"}}, StateActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := raised(t)
			for i, act := range tt.actions {
				when := at(float64(10 + i))
				var err error
				if act.verb == "ack" {
					err = a.Acknowledge(act.by, act.comment, when)
				} else {
					err = a.Clear(act.by, act.comment, when)
				}
				var fe *FieldError
				switch {
				case act.field != "":
					if !errors.As(err, &fe) || fe.Field != act.field {
						t.Fatalf("%s: error %v, want a FieldError on %s", act.verb, err, act.field)
					}
				case !errors.Is(err, act.err) || (act.err == nil && err != nil):
					t.Fatalf("%s: error %v, want %v", act.verb, err, act.err)
				case err == nil && act.verb == "ack":
					if a.AcknowledgedBy != act.by || a.AckComment != act.comment || a.AcknowledgedAt != when {
						t.Fatalf("acknowledged as %+v", a)
					}
				case err == nil:
					if a.ClearedBy != act.by || a.ClearComment != act.comment || a.ClearedAt != when || a.ClearReason != ReasonOperator {
						t.Fatalf("cleared as %+v", a)
					}
				}
			}
			if a.State != tt.state {
				t.Fatalf("state %s, want %s", a.State, tt.state)
			}
		})
	}
}

func TestAcknowledgedAlertKeepsStateOnRepeat(t *testing.T) {
	a, ev := raised(t)
	if err := a.Acknowledge("ann", "", at(1)); err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{29, 35} {
		for _, tr := range ev.Reading("d", nil, at(2), []Sample{{"temp", v}}) {
			if err := a.Apply(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if a.State != StateAcknowledged || a.Count != 2 {
		t.Fatalf("after a repeat: %+v, want acknowledged with count 2", a)
	}
}
