package handlers

import (
	"context"

	"fieldhub/alert"
	"fieldhub/db"
	"fieldhub/views"
)

// maxChartAlerts bounds the alerts the device page's charts mark.
const maxChartAlerts = 200

// chartMarks is what the device page's charts mark (web/telemetry.js): the
// threshold of every enabled threshold rule that applies to the device, when
// each of its newest alerts on a metric was raised, and the metric of every
// rule, so that an alert raised while the page is open finds its chart.
func (s *Server) chartMarks(ctx context.Context, d db.Device) (views.ChartMarks, error) {
	m := views.ChartMarks{Thresholds: []views.ChartThreshold{}, Alerts: []views.ChartAlert{}, RuleMetrics: map[int64]string{}}
	if s.alerts == nil {
		return m, nil
	}
	rules, err := s.alerts.Rules(ctx)
	if err != nil {
		return m, err
	}
	byID := make(map[int64]alert.Rule, len(rules))
	for _, r := range rules {
		byID[r.ID] = r
		if r.Condition.Metric == "" || !r.Scope.Matches(d.DeviceID, d.Tags) {
			continue
		}
		m.RuleMetrics[r.ID] = r.Condition.Metric
		if r.Enabled && r.Condition.Kind == alert.Threshold {
			m.Thresholds = append(m.Thresholds, views.ChartThreshold{Metric: r.Condition.Metric, Op: string(r.Condition.Op),
				Value: r.Condition.Value, Severity: string(r.Severity), Rule: r.Name})
		}
	}
	alerts, err := s.alerts.Alerts(ctx, db.AlertFilter{DeviceID: d.DeviceID, Limit: maxChartAlerts})
	if err != nil {
		return m, err
	}
	for _, a := range alerts {
		r, ok := byID[a.RuleID]
		if !ok || r.Condition.Metric == "" {
			continue
		}
		m.Alerts = append(m.Alerts, views.ChartAlert{Metric: r.Condition.Metric, T: a.FirstAt.UnixMilli(), Severity: string(a.Severity), Rule: r.Name})
	}
	return m, nil
}
