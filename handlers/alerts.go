package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"fieldhub/alert"
	"fieldhub/db"
	"fieldhub/storage"
	"fieldhub/views"
)

// The alert pages: the Alerts list, rules and their form, the device
// page's panel, webhooks. The API beside them is api_alerts.go.

// maxAlertForm bounds a rule or webhook form's body.
const maxAlertForm = 64 << 10

// alertSummary is the header's count of open alerts, nil without alerting.
func (s *Server) alertSummary() *views.AlertSummary {
	if s.alerts == nil {
		return nil
	}
	open := map[string]int{}
	for sev, n := range s.alerts.OpenCounts() {
		open[string(sev)] = n
	}
	return &views.AlertSummary{Open: open}
}

func (s *Server) alertRows(list []alert.Alert) []views.AlertRow {
	rows := make([]views.AlertRow, len(list))
	for i, a := range list {
		rows[i] = views.AlertRow{
			ID: a.ID, RuleID: a.RuleID, RuleName: s.alerts.RuleName(a.RuleID), DeviceID: a.DeviceID,
			Severity: string(a.Severity), State: string(a.State), Count: a.Count, FirstAt: a.FirstAt, LastAt: a.LastAt,
			Value: describeAlertValue(a.Value), AckBy: a.AcknowledgedBy, AckComment: a.AckComment,
			ClearedAt: a.ClearedAt, ClearedBy: a.ClearedBy, ClearComment: a.ClearComment, ClearReason: string(a.ClearReason),
		}
	}
	return rows
}

// describeAlertValue writes an alert's value for a page: numbers as JSON
// writes them, anything else as its JSON, cut.
func describeAlertValue(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	if len(b) > 80 {
		return string(b[:77]) + "…"
	}
	return string(b)
}

func (s *Server) showAlerts(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	f, err := alertFilter(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	list, err := al.Alerts(ctx, f)
	if err != nil {
		return err
	}
	rules, err := al.Rules(ctx)
	if err != nil {
		return err
	}
	m := views.AlertsPage{
		Page:   s.page(c, "Alerts", views.NavAlerts),
		Filter: views.AlertFilter{State: f.State, Severity: f.Severity, Device: f.DeviceID, Rule: c.QueryParam("rule")},
		Alerts: s.alertRows(list),
	}
	for _, r := range rules {
		m.Rules = append(m.Rules, views.RuleOption{ID: r.ID, Name: r.Name})
	}
	if len(list) == f.Limit {
		m.NextBefore = list[len(list)-1].ID
	}
	return s.render(c, http.StatusOK, views.AlertsView(m))
}

// actOnAlerts acknowledges or clears the alerts checked in a list (or the
// one of a device panel's button), and goes back where the form came from.
func (s *Server) actOnAlerts(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	back := c.FormValue("back")
	if !strings.HasPrefix(back, "/alerts") && !strings.HasPrefix(back, "/devices/") {
		back = "/alerts"
	}
	form, err := c.FormParams()
	if err != nil {
		return errorf(http.StatusBadRequest, "the form could not be read")
	}
	ids := form["id"]
	if len(ids) == 0 {
		return s.redirectWith(c, back, "Select the alerts to act on.", true)
	}
	if len(ids) > db.MaxAlertsListed {
		return s.redirectWith(c, back, fmt.Sprintf("Act on at most %d alerts at once.", db.MaxAlertsListed), true)
	}
	do, verb := al.Acknowledge, "Acknowledged"
	switch c.FormValue("action") {
	case "ack":
	case "clear":
		do, verb = al.Clear, "Cleared"
	default:
		return errorf(http.StatusBadRequest, "action must be ack or clear")
	}
	comment := c.FormValue("comment")
	done, skipped := 0, 0
	for _, raw := range ids {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			skipped++
			continue
		}
		_, err = do(c.Request().Context(), actor(c), id, comment)
		var inv *storage.InvalidError
		switch {
		case err == nil:
			done++
		case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
			skipped++
		case errors.As(err, &inv):
			return s.redirectWith(c, back, inv.Error(), true)
		default:
			return err
		}
	}
	msg := fmt.Sprintf("%s %d alert%s.", verb, done, plural(done))
	if skipped > 0 {
		msg += fmt.Sprintf(" %d %s already acknowledged or cleared.", skipped, map[bool]string{true: "was", false: "were"}[skipped == 1])
	}
	return s.redirectWith(c, back, msg, done == 0)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// showDeviceAlerts is the device page's alert panel alone, which the page
// reloads when an alert of the device changes.
func (s *Server) showDeviceAlerts(c echo.Context) error {
	if _, err := s.store.Device(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	panel, err := s.deviceAlertsPanel(c, c.Param("id"))
	if err != nil {
		return err
	}
	if panel == nil {
		return errorf(http.StatusServiceUnavailable, "alerting is not running")
	}
	return s.render(c, http.StatusOK, panel)
}

// deviceAlertsPanel is the device page's alert panel: open alerts, then
// the latest cleared ones; nil without alerting.
func (s *Server) deviceAlertsPanel(c echo.Context, deviceID string) (templ.Component, error) {
	if s.alerts == nil {
		return nil, nil
	}
	ctx := c.Request().Context()
	open, err := s.alerts.Alerts(ctx, db.AlertFilter{State: "open", DeviceID: deviceID, Limit: 50})
	if err != nil {
		return nil, err
	}
	cleared, err := s.alerts.Alerts(ctx, db.AlertFilter{State: string(alert.StateCleared), DeviceID: deviceID, Limit: 5})
	if err != nil {
		return nil, err
	}
	p, _ := principal(c)
	m := views.DeviceAlerts{DeviceID: deviceID, Alerts: s.alertRows(append(open, cleared...)),
		CanAct: p.Role == db.RoleAdmin || p.Role == db.RoleOperator, CSRF: p.CSRF, Now: s.now()}
	return views.DeviceAlertsPanel(m), nil
}

func (s *Server) showRules(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	rules, err := al.Rules(c.Request().Context())
	if err != nil {
		return err
	}
	open := map[int64]int{}
	if list, err := al.Alerts(c.Request().Context(), db.AlertFilter{State: "open", Limit: db.MaxAlertsListed}); err == nil {
		for _, a := range list {
			open[a.RuleID]++
		}
	}
	m := views.RulesPage{Page: s.page(c, "Alert rules", views.NavAlerts)}
	for _, r := range rules {
		m.Rules = append(m.Rules, views.RuleRow{ID: r.ID, Name: r.Name, Severity: string(r.Severity), Enabled: r.Enabled,
			Scope: r.Scope.String(), Condition: r.Condition.String(), Open: open[r.ID]})
	}
	return s.render(c, http.StatusOK, views.RulesView(m))
}

func (s *Server) newRule(c echo.Context) error {
	if _, err := s.alerting(); err != nil {
		return err
	}
	f := views.RuleForm{Severity: "major", Enabled: true, ScopeKind: "fleet", Kind: "threshold", Op: ">", ForSeconds: "0", Seconds: "300"}
	return s.render(c, http.StatusOK, views.RuleFormView(views.RuleFormPage{Page: s.page(c, "New rule", views.NavAlerts), Form: f}))
}

func (s *Server) showRule(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	r, err := al.Rule(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, views.RuleFormView(views.RuleFormPage{Page: s.page(c, "Edit rule", views.NavAlerts), Form: ruleToForm(r)}))
}

func ruleToForm(r alert.Rule) views.RuleForm {
	f := views.RuleForm{ID: r.ID, Name: r.Name, Severity: string(r.Severity), Enabled: r.Enabled, Kind: string(r.Condition.Kind),
		Metric: r.Condition.Metric, Op: string(r.Condition.Op), Property: r.Condition.Property, ForSeconds: "0", Seconds: "300"}
	switch {
	case r.Scope.Fleet:
		f.ScopeKind = "fleet"
	case r.Scope.DeviceID != "":
		f.ScopeKind, f.DeviceID = "device", r.Scope.DeviceID
	default:
		f.ScopeKind, f.Tags = "tags", alert.FormatTags(r.Scope.Tags)
	}
	switch r.Condition.Kind {
	case alert.Threshold:
		f.Value = strconv.FormatFloat(r.Condition.Value, 'g', -1, 64)
		f.ForSeconds = strconv.Itoa(r.Condition.ForSeconds)
		if r.Condition.Hysteresis > 0 {
			f.Hysteresis = strconv.FormatFloat(r.Condition.Hysteresis, 'g', -1, 64)
		}
	case alert.Silence:
		f.Seconds = strconv.Itoa(r.Condition.Seconds)
	}
	return f
}

// readRuleForm reads the rule form into the form as typed and the rule it
// describes; the error names the field.
func readRuleForm(c echo.Context) (views.RuleForm, alert.Rule, error) {
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxAlertForm)
	v := func(name string) string { return strings.TrimSpace(c.FormValue(name)) }
	f := views.RuleForm{Name: v("name"), Severity: v("severity"), Enabled: v("enabled") == "true", ScopeKind: v("scope"), DeviceID: v("deviceId"),
		Tags: v("tags"), Kind: v("kind"), Metric: v("metric"), Op: v("op"), Value: v("value"), ForSeconds: v("forSeconds"),
		Hysteresis: v("hysteresis"), Seconds: v("seconds"), Property: v("property")}
	r := alert.Rule{Name: f.Name, Severity: alert.Severity(f.Severity), Enabled: f.Enabled}
	switch f.ScopeKind {
	case "device":
		r.Scope.DeviceID = f.DeviceID
		if f.DeviceID == "" {
			return f, r, storage.Invalid("scope.deviceId", "give the device's id")
		}
	case "tags":
		tags, err := alert.ParseTags(f.Tags)
		if err != nil {
			return f, r, ruleError(err)
		}
		if len(tags) == 0 {
			return f, r, storage.Invalid("scope.tags", "give at least one tag, as site=berlin")
		}
		r.Scope.Tags = tags
	default:
		r.Scope.Fleet = true
	}
	c1 := &r.Condition
	c1.Kind = alert.Kind(f.Kind)
	number := func(field, s string, def float64) (float64, error) {
		if s == "" {
			return def, nil
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, storage.Invalid(field, "%q is not a number", s)
		}
		return x, nil
	}
	whole := func(field, s string, def int) (int, error) {
		if s == "" {
			return def, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, storage.Invalid(field, "%q is not a whole number", s)
		}
		return n, nil
	}
	var err error
	switch c1.Kind {
	case alert.Threshold:
		c1.Metric, c1.Op = f.Metric, alert.Op(f.Op)
		if f.Value == "" {
			return f, r, storage.Invalid("condition.value", "give the value to compare with")
		}
		if c1.Value, err = number("condition.value", f.Value, 0); err != nil {
			return f, r, err
		}
		if c1.ForSeconds, err = whole("condition.forSeconds", f.ForSeconds, 0); err != nil {
			return f, r, err
		}
		if c1.Hysteresis, err = number("condition.hysteresis", f.Hysteresis, 0); err != nil {
			return f, r, err
		}
	case alert.Silence:
		if c1.Seconds, err = whole("condition.seconds", f.Seconds, 0); err != nil {
			return f, r, err
		}
	case alert.Changed:
		if f.Property != "" {
			c1.Property = f.Property
		} else {
			c1.Metric = f.Metric
		}
	}
	return f, r, ruleError(r.Validate())
}

// saveRule creates (id 0) or replaces a rule from the form; a refused form
// comes back with what was typed and what is wrong.
func (s *Server) saveRule(c echo.Context, id int64) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	f, r, err := readRuleForm(c)
	f.ID = id
	if err == nil {
		if id == 0 {
			r, err = al.CreateRule(c.Request().Context(), actor(c), r)
		} else {
			var body []byte
			if body, err = json.Marshal(r); err == nil {
				r, err = al.UpdateRule(c.Request().Context(), actor(c), id, body)
			}
		}
	}
	var inv *storage.InvalidError
	switch {
	case errors.As(err, &inv):
		f.Error, f.ErrorField = inv.Error(), inv.Field
		return s.render(c, http.StatusUnprocessableEntity, views.RuleFormView(views.RuleFormPage{Page: s.page(c, "Rule", views.NavAlerts), Form: f}))
	case err != nil:
		return err
	}
	return s.redirectWith(c, "/alerts/rules", fmt.Sprintf("Rule %q saved.", r.Name), false)
}

func (s *Server) createRule(c echo.Context) error { return s.saveRule(c, 0) }

func (s *Server) updateRule(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	return s.saveRule(c, id)
}

// previewRule answers the form's preview with JSON.
func (s *Server) previewRule(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	_, r, err := readRuleForm(c)
	if err == nil {
		var n int
		if n, err = al.Preview(c.Request().Context(), r); err == nil {
			return c.JSON(http.StatusOK, map[string]int{"activeDevices": n})
		}
	}
	var inv *storage.InvalidError
	if errors.As(err, &inv) {
		return c.JSON(http.StatusUnprocessableEntity, map[string]string{"error": inv.Error()})
	}
	return err
}

func (s *Server) setRuleEnabled(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	enabled := c.FormValue("enabled") == "true"
	r, err := al.UpdateRule(c.Request().Context(), actor(c), id, []byte(`{"enabled":`+strconv.FormatBool(enabled)+`}`))
	if err != nil {
		return err
	}
	msg := "Rule %q enabled."
	if !enabled {
		msg = "Rule %q disabled; its open alerts cleared."
	}
	return s.redirectWith(c, "/alerts/rules", fmt.Sprintf(msg, r.Name), false)
}

func (s *Server) deleteRule(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := al.DeleteRule(c.Request().Context(), actor(c), id); err != nil {
		return err
	}
	return s.redirectWith(c, "/alerts/rules", "Rule deleted; its open alerts cleared.", false)
}

func (s *Server) showWebhooks(c echo.Context) error {
	return s.renderWebhooks(c, http.StatusOK, views.WebhooksPage{})
}

func (s *Server) renderWebhooks(c echo.Context, status int, m views.WebhooksPage) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	hooks, err := al.Webhooks(c.Request().Context())
	if err != nil {
		return err
	}
	m.Page = s.page(c, "Webhooks", views.NavAlerts)
	for _, h := range hooks {
		_, log, err := al.Webhook(c.Request().Context(), h.ID, 20)
		if err != nil {
			return err
		}
		row := views.WebhookRow{ID: h.ID, URL: h.URL, Format: h.Format, Enabled: h.Enabled, DisabledReason: h.DisabledReason, FailingSince: h.FailingSince}
		for _, e := range h.Events {
			row.Events = append(row.Events, string(e))
		}
		for _, d := range log {
			row.Deliveries = append(row.Deliveries, views.DeliveryRow{Event: string(d.EventType), AlertID: d.AlertID, State: d.State,
				Attempts: d.Attempts, Status: d.LastStatus, Error: d.LastError, UpdatedAt: d.UpdatedAt, NextAt: d.NextAt})
		}
		m.Hooks = append(m.Hooks, row)
	}
	return s.render(c, status, views.WebhooksView(m))
}

func (s *Server) createWebhook(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxAlertForm)
	form, err := c.FormParams()
	if err != nil {
		return errorf(http.StatusBadRequest, "the form could not be read")
	}
	n := db.NewWebhook{URL: strings.TrimSpace(form.Get("url")), Secret: form.Get("secret"), Format: form.Get("format")}
	for _, e := range form["events"] {
		n.Events = append(n.Events, alert.EventType(e))
	}
	if _, err := al.CreateWebhook(c.Request().Context(), actor(c), n); err != nil {
		var inv *storage.InvalidError
		if errors.As(err, &inv) {
			return s.renderWebhooks(c, http.StatusUnprocessableEntity, views.WebhooksPage{URL: n.URL, Format: n.Format, Events: form["events"], Error: inv.Error()})
		}
		return err
	}
	return s.redirectWith(c, "/webhooks", "Webhook added.", false)
}

func (s *Server) setWebhookEnabled(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	enabled := c.FormValue("enabled") == "true"
	if _, err := al.SetWebhookEnabled(c.Request().Context(), actor(c), id, enabled); err != nil {
		return err
	}
	return s.redirectWith(c, "/webhooks", map[bool]string{true: "Webhook enabled.", false: "Webhook disabled."}[enabled], false)
}

func (s *Server) deleteWebhook(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := al.DeleteWebhook(c.Request().Context(), actor(c), id); err != nil {
		return err
	}
	return s.redirectWith(c, "/webhooks", "Webhook deleted.", false)
}
