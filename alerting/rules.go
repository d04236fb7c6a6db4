package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"fieldhub/alert"
	"fieldhub/db"
	"fieldhub/storage"
)

// Rules lists every rule.
func (s *Service) Rules(ctx context.Context) ([]alert.Rule, error) {
	return s.cfg.Store.AlertRules(ctx)
}

// Rule reads one rule.
func (s *Service) Rule(ctx context.Context, id int64) (alert.Rule, error) {
	return s.cfg.Store.AlertRule(ctx, id)
}

// DecodeRule reads a rule's JSON (the API's and the form's), with errors
// that name the field.
func DecodeRule(body []byte) (alert.Rule, error) {
	r, err := alert.DecodeRule(body)
	return r, ruleError(err)
}

// ruleError turns the alert package's errors into storage's, which every
// handler maps to a status that says what was wrong.
func ruleError(err error) error {
	var fe *alert.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return storage.Invalid(fe.Field, "%s", fe.Reason)
	case errors.Is(err, alert.ErrSyntax):
		return storage.Invalid("body", "%v", err)
	}
	return err
}

// CreateRule stores a rule and starts evaluating it.
func (s *Service) CreateRule(ctx context.Context, actor string, r alert.Rule) (alert.Rule, error) {
	if err := ruleError(r.Validate()); err != nil {
		return alert.Rule{}, err
	}
	s.ruleMu.Lock()
	r, err := s.cfg.Store.CreateAlertRule(ctx, r)
	if err == nil {
		s.setRule(ctx, r)
	}
	s.ruleMu.Unlock()
	if err != nil {
		return alert.Rule{}, err
	}
	s.announceRule(r.ID)
	s.audit(ctx, actor, ActionRuleCreate, ruleTarget(r), describeRule(r))
	return r, nil
}

// UpdateRule applies a merge patch to a rule: each top-level field given
// replaces the rule's (scope and condition whole). Editing the condition
// clears the rule's open alerts; disabling it too.
func (s *Service) UpdateRule(ctx context.Context, actor string, id int64, patch []byte) (alert.Rule, error) {
	s.ruleMu.Lock()
	r, err := s.updateRule(ctx, id, patch)
	s.ruleMu.Unlock()
	if err != nil {
		return alert.Rule{}, err
	}
	s.announceRule(r.ID)
	s.audit(ctx, actor, ActionRuleUpdate, ruleTarget(r), describeRule(r))
	return r, nil
}

func (s *Service) updateRule(ctx context.Context, id int64, patch []byte) (alert.Rule, error) {
	old, err := s.cfg.Store.AlertRule(ctx, id)
	if err != nil {
		return alert.Rule{}, err
	}
	r, err := PatchRule(old, patch)
	if err != nil {
		return alert.Rule{}, err
	}
	if r, err = s.cfg.Store.UpdateAlertRule(ctx, r); err != nil {
		return alert.Rule{}, err
	}
	s.setRule(ctx, r)
	return r, nil
}

// PatchRule merges a JSON patch into a rule and validates the result.
func PatchRule(old alert.Rule, patch []byte) (alert.Rule, error) {
	if len(patch) > alert.MaxRuleJSON {
		return alert.Rule{}, storage.Invalid("body", "is %d bytes; at most %d", len(patch), alert.MaxRuleJSON)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(patch))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return alert.Rule{}, storage.Invalid("body", "must be a JSON object of the fields to change")
	}
	if raw, ok := fields["id"]; ok && string(raw) != strconv.FormatInt(old.ID, 10) {
		return alert.Rule{}, storage.Invalid("id", "cannot be changed")
	}
	base, err := json.Marshal(old)
	if err != nil {
		return alert.Rule{}, err
	}
	var merged map[string]json.RawMessage
	if err := json.Unmarshal(base, &merged); err != nil {
		return alert.Rule{}, err
	}
	for k, v := range fields {
		merged[k] = v
	}
	body, err := json.Marshal(merged)
	if err != nil {
		return alert.Rule{}, err
	}
	r, err := DecodeRule(body)
	if err != nil {
		return alert.Rule{}, err
	}
	r.ID = old.ID
	return r, nil
}

// DeleteRule deletes a rule; its open alerts clear (ReasonRuleDeleted) and
// its alerts stay in the history.
func (s *Service) DeleteRule(ctx context.Context, actor string, id int64) error {
	s.ruleMu.Lock()
	r, err := s.cfg.Store.AlertRule(ctx, id)
	if err == nil {
		err = s.cfg.Store.DeleteAlertRule(ctx, id)
	}
	if err == nil {
		s.removeRule(ctx, id)
	}
	s.ruleMu.Unlock()
	if err != nil {
		return err
	}
	s.announceRule(id)
	s.audit(ctx, actor, ActionRuleDelete, ruleTarget(r), "")
	return nil
}

// setRule puts a rule into the evaluator; called with ruleMu held.
func (s *Service) setRule(ctx context.Context, r alert.Rule) {
	s.rules[r.ID] = r
	s.mu.Lock()
	s.names[r.ID] = r.Name
	s.silent[r.ID] = r.Condition.Kind == alert.Silence
	s.mu.Unlock()
	trs, err := s.eval().SetRule(r, s.cfg.Now())
	if err != nil { // validated and bounded by the store already
		s.log.Error("evaluate alert rule", "rule", r.ID, "err", err)
		return
	}
	s.apply(ctx, trs)
}

// removeRule takes a deleted rule out of the evaluator; called with
// ruleMu held.
func (s *Service) removeRule(ctx context.Context, id int64) {
	delete(s.rules, id)
	s.apply(ctx, s.eval().RemoveRule(id, s.cfg.Now()))
}

func (s *Service) announceRule(id int64) {
	if s.cfg.Rules != nil {
		s.cfg.Rules.AnnounceRule(id)
	}
}

// reloadQueue bounds the announced rule ids waiting to be reloaded; when
// it is full every rule is reloaded instead.
const reloadQueue = 256

// RuleChanged takes another instance's announcement that a rule was
// created, changed or deleted: the rule is read again from the store and
// evaluated as it stands. It never waits (the bus calls it).
func (s *Service) RuleChanged(id int64) {
	select {
	case s.reloads <- id:
	default:
		select {
		case s.reloads <- 0: // 0: all of them
		default:
		}
	}
}

// reloadRules reloads each announced rule, and every rule every
// RuleReload, for announcements that were lost.
func (s *Service) reloadRules(ctx context.Context) {
	tick := time.NewTicker(s.cfg.RuleReload)
	defer tick.Stop()
	for {
		select {
		case id := <-s.reloads:
			if id == 0 {
				s.reloadAll(ctx)
			} else {
				s.reloadRule(ctx, id)
			}
		case <-tick.C:
			s.reloadAll(ctx)
		case <-ctx.Done():
			return
		}
	}
}

// reloadRule reads one rule again: changed, it replaces the evaluator's;
// gone, it is removed.
func (s *Service) reloadRule(ctx context.Context, id int64) {
	s.ruleMu.Lock()
	defer s.ruleMu.Unlock()
	r, err := s.cfg.Store.AlertRule(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if _, ok := s.rules[id]; ok {
			s.removeRule(ctx, id)
		}
	case err != nil:
		if ctx.Err() == nil {
			s.log.Error("reload alert rule", "rule", id, "err", err)
		}
	case !reflect.DeepEqual(s.rules[id], r):
		s.setRule(ctx, r)
	}
}

// reloadAll reads every rule again (at most alert.MaxRules).
func (s *Service) reloadAll(ctx context.Context) {
	s.ruleMu.Lock()
	defer s.ruleMu.Unlock()
	rules, err := s.cfg.Store.AlertRules(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("reload alert rules", "err", err)
		}
		return
	}
	stored := make(map[int64]bool, len(rules))
	for _, r := range rules {
		stored[r.ID] = true
		if old, ok := s.rules[r.ID]; !ok || !reflect.DeepEqual(old, r) {
			s.setRule(ctx, r)
		}
	}
	for id := range s.rules {
		if !stored[id] {
			s.removeRule(ctx, id)
		}
	}
}

func ruleTarget(r alert.Rule) string {
	return "alert rule " + strconv.FormatInt(r.ID, 10) + " (" + r.Name + ")"
}

func describeRule(r alert.Rule) string {
	state := ""
	if !r.Enabled {
		state = ", disabled"
	}
	return fmt.Sprintf("%s: %s on %s%s", r.Severity, r.Condition, r.Scope, state)
}

// Preview is how many devices the rule would have an alert open on now:
// threshold rules by each device's last value of the metric, silence rules
// by its last message; changed rules, which wait for a change, none.
func (s *Service) Preview(ctx context.Context, r alert.Rule) (int, error) {
	if err := ruleError(r.Validate()); err != nil {
		return 0, err
	}
	now := s.cfg.Now()
	n := 0
	for offset := 0; ; {
		page, _, err := s.cfg.Fleet.Devices(ctx, db.DeviceFilter{Offset: offset, Limit: 1000})
		if err != nil {
			return 0, err
		}
		for _, d := range page {
			if !r.Scope.Matches(d.DeviceID, d.Tags) {
				continue
			}
			active, err := s.wouldBeActive(ctx, r, d, now)
			if err != nil {
				return 0, err
			}
			if active {
				n++
			}
		}
		if len(page) < 1000 {
			return n, nil
		}
		offset += len(page)
	}
}

func (s *Service) wouldBeActive(ctx context.Context, r alert.Rule, d db.Device, now time.Time) (bool, error) {
	c := r.Condition
	switch c.Kind {
	case alert.Silence:
		return !d.LastActivity.IsZero() && now.Sub(d.LastActivity) >= time.Duration(c.Seconds)*time.Second, nil
	case alert.Threshold:
		if s.cfg.Latest == nil {
			return false, nil
		}
		metrics, err := s.cfg.Latest.Metrics(ctx, d.DeviceID)
		if err != nil {
			return false, err
		}
		for _, m := range metrics {
			if m.Name == c.Metric && !m.LastTime.IsZero() {
				return c.Matches(m.LastValue), nil
			}
		}
	}
	return false, nil
}
