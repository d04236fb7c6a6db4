package views

import (
	"net/url"
	"strconv"
	"time"
)

// NavAlerts is the Alerts section of the main navigation.
const NavAlerts = "alerts"

// Severities, worst first, as the pages show them.
var Severities = []string{"critical", "major", "minor", "warning", "info"}

// AlertStates the Alerts page filters by.
var AlertStates = []string{"open", "active", "acknowledged", "cleared"}

// AlertSummary is the fleet's open alerts by severity, for the header of
// every page.
type AlertSummary struct {
	Open map[string]int
}

// Total is the number of open alerts.
func (s *AlertSummary) Total() int {
	n := 0
	for _, c := range s.Open {
		n += c
	}
	return n
}

// AlertRow is one alert in a list.
type AlertRow struct {
	ID           int64
	RuleID       int64
	RuleName     string // "" once the rule is deleted
	DeviceID     string
	Severity     string
	State        string // active, acknowledged, cleared
	Count        int
	FirstAt      time.Time
	LastAt       time.Time
	Value        string
	AckBy        string
	AckComment   string
	ClearedAt    time.Time
	ClearedBy    string
	ClearComment string
	ClearReason  string
}

// Open reports whether the alert has not cleared.
func (a AlertRow) Open() bool { return a.State != "cleared" }

// AlertFilter is the Alerts page's filter, as typed.
type AlertFilter struct {
	State, Severity, Device, Rule string
}

// Query is the filter as a query string (for links and going back).
func (f AlertFilter) Query() string {
	q := url.Values{}
	for k, v := range map[string]string{"state": f.State, "severity": f.Severity, "device": f.Device, "rule": f.Rule} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

// RuleOption is a rule in the filter's list.
type RuleOption struct {
	ID   int64
	Name string
}

// AlertsPage lists alerts with filters, and lets operators acknowledge or
// clear several at once.
type AlertsPage struct {
	Page
	Filter AlertFilter
	Rules  []RuleOption
	Alerts []AlertRow
	// NextBefore pages on (an alert id); 0 on the last page.
	NextBefore int64
	// LiveURL is the fleet stream the page follows for alert events.
	LiveURL string
}

// RuleRow is one rule in the rules list.
type RuleRow struct {
	ID        int64
	Name      string
	Severity  string
	Enabled   bool
	Scope     string // in words
	Condition string // in words
	Open      int    // its open alerts
}

// RulesPage lists the alert rules.
type RulesPage struct {
	Page
	Rules []RuleRow
}

// RuleForm is a rule as its form holds it: every field as typed, so that a
// refused form comes back as the user left it.
type RuleForm struct {
	ID         int64 // 0 for a new rule
	Name       string
	Severity   string
	Enabled    bool
	ScopeKind  string // device, tags, fleet
	DeviceID   string
	Tags       string // "site=berlin, kind=climate"
	Kind       string // threshold, silence, changed
	Metric     string
	Op         string
	Value      string
	ForSeconds string
	Hysteresis string
	Seconds    string
	Property   string // changed: a reported property instead of a metric
	// Error says what is wrong with the form; ErrorField names the field
	// (the API's name, "condition.metric").
	Error      string
	ErrorField string
}

// RuleFormPage is the form to create or edit a rule.
type RuleFormPage struct {
	Page
	Form RuleForm
}

// Ops are the comparisons a threshold rule offers.
var Ops = []string{">", ">=", "<", "<=", "==", "!="}

// DeviceAlerts is the alert panel of a device's page.
type DeviceAlerts struct {
	DeviceID string
	Alerts   []AlertRow // open first, then the latest cleared
	CanAct   bool
	CSRF     string
	Now      time.Time
}

// WebhookRow is one webhook with its latest deliveries.
type WebhookRow struct {
	ID             int64
	URL            string
	Events         []string
	Format         string
	Enabled        bool
	DisabledReason string
	FailingSince   time.Time
	Deliveries     []DeliveryRow
}

// DeliveryRow is one delivery in a hook's log.
type DeliveryRow struct {
	Event     string
	AlertID   int64
	State     string
	Attempts  int
	Status    int
	Error     string
	UpdatedAt time.Time
	NextAt    time.Time
}

// WebhooksPage lists webhooks and adds them (admins).
type WebhooksPage struct {
	Page
	Hooks []WebhookRow
	// Form values of a refused new hook.
	URL, Format string
	Events      []string
	Error       string
}

// EventTypes are the webhook events.
var EventTypes = []string{"alert.raised", "alert.acknowledged", "alert.cleared"}

func alertPath(id int64, action string) string {
	return "/alerts/" + strconv.FormatInt(id, 10) + action
}

func rulePath(id int64, action string) string {
	return "/alerts/rules/" + strconv.FormatInt(id, 10) + action
}

func severityLabel(s string) string {
	if s == "" {
		return ""
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func stateLabel(s string) string {
	switch s {
	case "active":
		return "Active"
	case "acknowledged":
		return "Acknowledged"
	case "cleared":
		return "Cleared"
	case "open":
		return "Open (active or acknowledged)"
	}
	return s
}

func reasonLabel(r, by string) string {
	switch r {
	case "condition":
		return "condition cleared"
	case "operator":
		return "by " + by
	case "ruleChanged":
		return "rule changed"
	case "ruleDisabled":
		return "rule disabled"
	case "ruleDeleted":
		return "rule deleted"
	case "deviceDeleted":
		return "device deleted"
	case "outOfScope":
		return "device out of scope"
	}
	return r
}

func ruleLabel(a AlertRow) string {
	if a.RuleName == "" {
		return "rule " + strconv.FormatInt(a.RuleID, 10) + " (deleted)"
	}
	return a.RuleName
}

func isChecked(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }

func i64(n int64) string { return strconv.FormatInt(n, 10) }
