package alerting

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"fieldhub/alert"
	"fieldhub/db"
	"fieldhub/live"
	"fieldhub/storage"
)

// apply stores the evaluator's transitions in one transaction, announces
// them live and queues their webhooks. A failed write is logged
// (storage.Health reports the fault): the evaluator's state stands, and an
// alert not stored yet (ID 0) is inserted by its next write.
func (s *Service) apply(ctx context.Context, trs []alert.Transition) {
	if len(trs) == 0 {
		return
	}
	ctx, cancel := storeCtx(ctx)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	type note struct {
		a     alert.Alert
		write int
		event alert.EventType
		value any
	}
	var (
		writes []alert.Alert
		notes  []note
		slot   = map[alert.Key]int{} // the write of each open alert in this batch
	)
	for _, t := range trs {
		if s.cfg.Silence != nil && !s.leading.Load() && (t.Kind == alert.Raise || t.Kind == alert.Update) && s.silent[t.Alert.RuleID] {
			continue // the instance holding the silence lock raises silence alerts
		}
		k := alert.Key{RuleID: t.Alert.RuleID, DeviceID: t.Alert.DeviceID}
		var a alert.Alert
		var event alert.EventType
		if t.Kind == alert.Raise {
			var err error
			if a, err = alert.NewAlert(t); err != nil {
				continue
			}
			event = alert.EventRaised
			if old, ok := s.open[k]; ok { // open in the store already (a restart raced a write)
				a.ID, a.State, a.AcknowledgedAt, a.AcknowledgedBy, a.AckComment = old.ID, old.State, old.AcknowledgedAt, old.AcknowledgedBy, old.AckComment
			} else {
				s.count(a, 1)
			}
		} else {
			old, ok := s.open[k]
			if !ok {
				continue // cleared by an operator meanwhile
			}
			a = old
			if err := a.Apply(t); err != nil {
				continue
			}
			if t.Kind == alert.Clear {
				event = alert.EventCleared
			}
		}
		i, ok := slot[k]
		if !ok {
			i = len(writes)
			writes = append(writes, a)
		}
		writes[i] = a
		if a.Open() {
			s.open[k], slot[k] = a, i
		} else {
			s.forget(k, a)
			delete(slot, k) // a raise later in the batch is a new alert
		}
		notes = append(notes, note{a, i, event, t.Value})
	}
	saved, errs, err := s.cfg.Store.SaveAlerts(ctx, writes)
	if err != nil {
		s.log.Error("store alert changes", "alerts", len(writes), "err", err)
		return
	}
	for k, i := range slot { // alerts inserted and still open learn their IDs
		if a := s.open[k]; a.ID == 0 && errs[i] == nil {
			a.ID = saved[i].ID
			s.open[k] = a
		}
	}
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, storage.ErrConflict) && writes[i].ID != 0: // cleared in the store already
			s.forget(alert.Key{RuleID: writes[i].RuleID, DeviceID: writes[i].DeviceID}, writes[i])
		default:
			s.log.Error("store alert change", "rule", writes[i].RuleID, "device", writes[i].DeviceID, "err", err)
		}
	}
	for _, n := range notes {
		if errs[n.write] != nil {
			continue
		}
		n.a.ID = saved[n.write].ID
		s.announce(ctx, n.a, n.event, n.value)
	}
}

// forget drops an alert that cleared from the open ones.
func (s *Service) forget(k alert.Key, a alert.Alert) {
	if old, ok := s.open[k]; ok {
		delete(s.open, k)
		s.count(old, -1)
	}
}

// count adds n open alerts of a's severity, to the fleet's counts and its
// device's.
func (s *Service) count(a alert.Alert, n int) {
	s.counts[a.Severity] += n
	c := s.byDev[a.DeviceID]
	if c == nil {
		c = new([6]int)
		s.byDev[a.DeviceID] = c
	}
	c[a.Severity.Rank()] += n
	if *c == ([6]int{}) {
		delete(s.byDev, a.DeviceID)
	}
}

// worst is the worst severity open on a device, "" for none.
func (s *Service) worst(deviceID string) alert.Severity {
	c := s.byDev[deviceID]
	if c == nil {
		return ""
	}
	for _, sev := range alert.Severities() {
		if c[sev.Rank()] > 0 {
			return sev
		}
	}
	return ""
}

// announce publishes an alert's change live and, for the events webhooks
// hear of, queues their deliveries. Called with mu held.
func (s *Service) announce(ctx context.Context, a alert.Alert, event alert.EventType, value any) {
	if s.cfg.Live != nil {
		s.cfg.Live.PublishAlert(live.AlertEvent{Alert: a, RuleName: s.names[a.RuleID], Open: s.openCounts(), DeviceWorst: s.worst(a.DeviceID)})
	}
	if event != "" && s.hooks != nil {
		rule, err := s.cfg.Store.AlertRule(ctx, a.RuleID)
		if err != nil { // deleted: the event still names it
			rule = alert.Rule{ID: a.RuleID, Name: s.names[a.RuleID], Severity: a.Severity}
		}
		s.hooks.queue(ctx, alert.Event{
			ID: fmt.Sprintf("%d-%s-%d", a.ID, event, a.Count), Type: event, Alert: a, Rule: rule,
			Device: alert.Device{ID: a.DeviceID, URL: alert.DeviceURL(s.cfg.BaseURL, a.DeviceID)}, Value: value,
		})
	}
}

// openCounts is the open alerts by severity, every severity present.
func (s *Service) openCounts() map[alert.Severity]int {
	out := make(map[alert.Severity]int, 5)
	for _, sev := range alert.Severities() {
		out[sev] = s.counts[sev]
	}
	return out
}

// OpenCounts is the open alerts by severity, for the header of every page.
func (s *Service) OpenCounts() map[alert.Severity]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openCounts()
}

// WorstOpen is the worst severity of each device's open alerts, for the
// fleet list.
func (s *Service) WorstOpen() map[string]alert.Severity {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]alert.Severity, len(s.byDev))
	for id := range s.byDev {
		out[id] = s.worst(id)
	}
	return out
}

// Alerts lists alerts (the API and the Alerts page).
func (s *Service) Alerts(ctx context.Context, f db.AlertFilter) ([]alert.Alert, error) {
	return s.cfg.Store.Alerts(ctx, f)
}

// Alert reads one alert.
func (s *Service) Alert(ctx context.Context, id int64) (alert.Alert, error) {
	return s.cfg.Store.Alert(ctx, id)
}

// RuleName names a rule for pages ("" once deleted).
func (s *Service) RuleName(id int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[id]
}

// Acknowledge marks an active alert as seen by actor, with an optional
// comment, in the audit log. An alert already acknowledged or cleared is
// storage.ErrConflict.
func (s *Service) Acknowledge(ctx context.Context, actor string, id int64, comment string) (alert.Alert, error) {
	return s.act(ctx, actor, id, comment, ActionAcknowledge)
}

// Clear closes an open alert on an operator's word; the evaluator raises
// no new alert for it until its condition has cleared on its own.
func (s *Service) Clear(ctx context.Context, actor string, id int64, comment string) (alert.Alert, error) {
	return s.act(ctx, actor, id, comment, ActionClear)
}

func (s *Service) act(ctx context.Context, actor string, id int64, comment, action string) (alert.Alert, error) {
	ctx, cancel := storeCtx(ctx)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.cfg.Store.Alert(ctx, id)
	if err != nil {
		return alert.Alert{}, err
	}
	k := alert.Key{RuleID: a.RuleID, DeviceID: a.DeviceID}
	if cur, ok := s.open[k]; ok && cur.ID == id {
		a = cur // the count and value the store may not have yet
	}
	now := s.cfg.Now()
	event := alert.EventAcknowledged
	if action == ActionAcknowledge {
		err = a.Acknowledge(actor, comment, now)
	} else {
		event = alert.EventCleared
		err = a.Clear(actor, comment, now)
	}
	switch {
	case errors.Is(err, alert.ErrCleared), errors.Is(err, alert.ErrAcknowledged):
		return alert.Alert{}, fmt.Errorf("alert %d: %w: %w", id, storage.ErrConflict, err)
	case err != nil:
		var fe *alert.FieldError
		if errors.As(err, &fe) {
			return alert.Alert{}, storage.Invalid(fe.Field, "%s", fe.Reason)
		}
		return alert.Alert{}, err
	}
	if err := s.cfg.Store.UpdateAlert(ctx, a); err != nil {
		return alert.Alert{}, err
	}
	if a.Open() {
		s.open[k] = a
	} else {
		s.forget(k, a)
		s.eval().ClearedByOperator(a.RuleID, a.DeviceID)
	}
	target := "alert " + strconv.FormatInt(id, 10) + " (" + s.names[a.RuleID] + " on " + a.DeviceID + ")"
	s.audit(ctx, actor, action, target, comment)
	s.announce(ctx, a, event, nil)
	return a, nil
}

// audit records an operator's action; a failure is logged, since the
// action stands either way.
func (s *Service) audit(ctx context.Context, actor, action, target, detail string) {
	if err := s.cfg.Audit.RecordAudit(ctx, db.AuditEntry{Actor: actor, Action: action, Target: target, Detail: detail}); err != nil {
		s.log.Error("record audit", "action", action, "target", target, "err", err)
	}
}
