package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"fieldhub/alert"
	"fieldhub/db"
	"fieldhub/storage"
)

// Alerts is the alerting service (*alerting.Service): rules, alerts and
// their lifecycle, webhooks.
type Alerts interface {
	Rules(ctx context.Context) ([]alert.Rule, error)
	Rule(ctx context.Context, id int64) (alert.Rule, error)
	CreateRule(ctx context.Context, actor string, r alert.Rule) (alert.Rule, error)
	UpdateRule(ctx context.Context, actor string, id int64, patch []byte) (alert.Rule, error)
	DeleteRule(ctx context.Context, actor string, id int64) error
	Preview(ctx context.Context, r alert.Rule) (int, error)

	Alerts(ctx context.Context, f db.AlertFilter) ([]alert.Alert, error)
	Alert(ctx context.Context, id int64) (alert.Alert, error)
	Acknowledge(ctx context.Context, actor string, id int64, comment string) (alert.Alert, error)
	Clear(ctx context.Context, actor string, id int64, comment string) (alert.Alert, error)
	OpenCounts() map[alert.Severity]int
	WorstOpen() map[string]alert.Severity
	RuleName(id int64) string

	CreateWebhook(ctx context.Context, actor string, n db.NewWebhook) (db.Webhook, error)
	Webhooks(ctx context.Context) ([]db.Webhook, error)
	Webhook(ctx context.Context, id int64, deliveries int) (db.Webhook, []db.Delivery, error)
	SetWebhookEnabled(ctx context.Context, actor string, id int64, enabled bool) (db.Webhook, error)
	DeleteWebhook(ctx context.Context, actor string, id int64) error
}

// alerting is the service, or 503 when the hub runs without it.
func (s *Server) alerting() (Alerts, error) {
	if s.alerts == nil {
		return nil, errorf(http.StatusServiceUnavailable, "alerting is not running")
	}
	return s.alerts, nil
}

// readBody reads a bounded request body.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", limit)
	case err != nil:
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return body, nil
}

// decodeRule reads a rule from the body: 400 for JSON that is not
// well-formed, 422 naming the field for a bad value.
func decodeRule(c echo.Context) (alert.Rule, error) {
	body, err := readBody(c, alert.MaxRuleJSON)
	if err != nil {
		return alert.Rule{}, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return alert.Rule{}, errorf(http.StatusBadRequest, "request body is empty; send a rule as JSON")
	}
	r, err := alert.DecodeRule(body)
	return r, ruleError(err)
}

func ruleError(err error) error {
	var fe *alert.FieldError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, alert.ErrSyntax):
		return errorf(http.StatusBadRequest, "%v", err)
	case errors.As(err, &fe):
		return storage.Invalid(fe.Field, "%s", fe.Reason)
	}
	return err
}

func idParam(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusNotFound, "not found")
	}
	return id, nil
}

func (s *Server) apiListAlertRules(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	rules, err := al.Rules(c.Request().Context())
	if err != nil {
		return err
	}
	if rules == nil {
		rules = []alert.Rule{}
	}
	return c.JSON(http.StatusOK, map[string]any{"rules": rules})
}

func (s *Server) apiCreateAlertRule(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	r, err := decodeRule(c)
	if err != nil {
		return err
	}
	r, err = al.CreateRule(c.Request().Context(), actor(c), r)
	if err != nil {
		return ruleError(err)
	}
	return c.JSON(http.StatusCreated, r)
}

// apiPreviewAlertRule says on how many devices a rule would have an alert
// open now, without storing it.
func (s *Server) apiPreviewAlertRule(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	r, err := decodeRule(c)
	if err != nil {
		return err
	}
	n, err := al.Preview(c.Request().Context(), r)
	if err != nil {
		return ruleError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"activeDevices": n})
}

func (s *Server) apiShowAlertRule(c echo.Context) error {
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
	return c.JSON(http.StatusOK, r)
}

func (s *Server) apiUpdateAlertRule(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	body, err := readBody(c, alert.MaxRuleJSON)
	if err != nil {
		return err
	}
	r, err := al.UpdateRule(c.Request().Context(), actor(c), id, body)
	if err != nil {
		return ruleError(err)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) apiDeleteAlertRule(c echo.Context) error {
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
	return c.NoContent(http.StatusNoContent)
}

// alertJSON is an alert as the API shows it, with its rule's name.
type alertJSON struct {
	alert.Alert
	RuleName string `json:"ruleName"`
}

// alertFilter reads the list's query: state (active, acknowledged,
// cleared, open), severity, device, rule, before (an id, for paging) and
// limit.
func alertFilter(c echo.Context) (db.AlertFilter, error) {
	f := db.AlertFilter{State: c.QueryParam("state"), Severity: c.QueryParam("severity"), DeviceID: c.QueryParam("device")}
	switch alert.State(f.State) {
	case "", "open", alert.StateActive, alert.StateAcknowledged, alert.StateCleared:
	default:
		return f, errorf(http.StatusBadRequest, "state must be active, acknowledged, cleared or open, got %q", f.State)
	}
	if f.Severity != "" && !alert.Severity(f.Severity).Valid() {
		return f, errorf(http.StatusBadRequest, "severity must be critical, major, minor, warning or info, got %q", f.Severity)
	}
	if len(f.DeviceID) > alert.MaxDeviceIDLen {
		return f, errorf(http.StatusBadRequest, "device is longer than %d bytes", alert.MaxDeviceIDLen)
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"rule", &f.RuleID}, {"before", &f.BeforeID}} {
		if v := c.QueryParam(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return f, errorf(http.StatusBadRequest, "%s must be a positive whole number", p.name)
			}
			*p.dst = n
		}
	}
	limit, err := intParam(c, "limit", 100, 1, db.MaxAlertsListed)
	f.Limit = limit
	return f, err
}

func (s *Server) apiListAlerts(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	f, err := alertFilter(c)
	if err != nil {
		return err
	}
	list, err := al.Alerts(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]alertJSON, len(list))
	for i, a := range list {
		out[i] = alertJSON{a, al.RuleName(a.RuleID)}
	}
	return c.JSON(http.StatusOK, map[string]any{"alerts": out, "open": al.OpenCounts()})
}

func (s *Server) apiShowAlert(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	a, err := al.Alert(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, alertJSON{a, al.RuleName(a.RuleID)})
}

type alertActionRequest struct {
	Comment string `json:"comment"`
}

func (s *Server) apiAcknowledgeAlert(c echo.Context) error { return s.apiAlertAction(c, true) }
func (s *Server) apiClearAlert(c echo.Context) error       { return s.apiAlertAction(c, false) }

// apiAlertAction acknowledges or clears an alert; the body, optional,
// carries a comment.
func (s *Server) apiAlertAction(c echo.Context, ack bool) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	var req alertActionRequest
	if c.Request().ContentLength != 0 {
		if err := bindJSON(c, &req); err != nil {
			return err
		}
	}
	do := al.Clear
	if ack {
		do = al.Acknowledge
	}
	a, err := do(c.Request().Context(), actor(c), id, req.Comment)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, alertJSON{a, al.RuleName(a.RuleID)})
}

// webhookJSON is a hook as the API shows it: never its secret.
type webhookJSON struct {
	ID             int64             `json:"id"`
	URL            string            `json:"url"`
	Events         []alert.EventType `json:"events"`
	Format         string            `json:"format"`
	Enabled        bool              `json:"enabled"`
	DisabledReason string            `json:"disabledReason,omitempty"`
	FailingSince   *time.Time        `json:"failingSince,omitempty"`
	CreatedAt      time.Time         `json:"createdAt"`
	Deliveries     []deliveryJSON    `json:"deliveries,omitempty"`
}

type deliveryJSON struct {
	ID        int64           `json:"id"`
	EventID   string          `json:"eventId"`
	Event     alert.EventType `json:"event"`
	AlertID   int64           `json:"alertId"`
	State     string          `json:"state"`
	Attempts  int             `json:"attempts"`
	NextAt    *time.Time      `json:"nextAt,omitempty"`
	Status    int             `json:"status,omitempty"`
	Error     string          `json:"error,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

func toWebhookJSON(w db.Webhook, log []db.Delivery) webhookJSON {
	out := webhookJSON{ID: w.ID, URL: w.URL, Events: w.Events, Format: w.Format, Enabled: w.Enabled, DisabledReason: w.DisabledReason, CreatedAt: w.CreatedAt}
	if !w.FailingSince.IsZero() {
		out.FailingSince = &w.FailingSince
	}
	for _, d := range log {
		dj := deliveryJSON{ID: d.ID, EventID: d.EventID, Event: d.EventType, AlertID: d.AlertID, State: d.State, Attempts: d.Attempts,
			Status: d.LastStatus, Error: d.LastError, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
		if d.State == db.DeliveryPending {
			dj.NextAt = &d.NextAt
		}
		out.Deliveries = append(out.Deliveries, dj)
	}
	return out
}

type createWebhookRequest struct {
	URL    string            `json:"url"`
	Secret string            `json:"secret"`
	Events []alert.EventType `json:"events"`
	Format string            `json:"format"`
}

func (s *Server) apiCreateWebhook(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	var req createWebhookRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	w, err := al.CreateWebhook(c.Request().Context(), actor(c), db.NewWebhook{URL: req.URL, Secret: req.Secret, Events: req.Events, Format: req.Format})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toWebhookJSON(w, nil))
}

func (s *Server) apiListWebhooks(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	hooks, err := al.Webhooks(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]webhookJSON, len(hooks))
	for i, w := range hooks {
		out[i] = toWebhookJSON(w, nil)
	}
	return c.JSON(http.StatusOK, map[string]any{"webhooks": out})
}

// apiShowWebhook shows a hook with its latest deliveries (?deliveries=,
// default 50).
func (s *Server) apiShowWebhook(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	n, err := intParam(c, "deliveries", 50, 1, db.MaxDeliveriesListed)
	if err != nil {
		return err
	}
	w, log, err := al.Webhook(c.Request().Context(), id, n)
	if err != nil {
		return err
	}
	out := toWebhookJSON(w, log)
	if out.Deliveries == nil {
		out.Deliveries = []deliveryJSON{}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) apiUpdateWebhook(c echo.Context) error {
	al, err := s.alerting()
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Enabled == nil {
		return storage.Invalid("enabled", "is required: true or false (delete the hook and create another to change its address)")
	}
	w, err := al.SetWebhookEnabled(c.Request().Context(), actor(c), id, *req.Enabled)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toWebhookJSON(w, nil))
}

func (s *Server) apiDeleteWebhook(c echo.Context) error {
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
	return c.NoContent(http.StatusNoContent)
}
