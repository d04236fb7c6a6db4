package app

import (
	"context"
	"fmt"
	"time"

	"fieldhub/alerting"
	"fieldhub/commands"
	"fieldhub/ingest"
	"fieldhub/telemetry"
)

// startAlerts recovers alerting (rules, open alerts, timers) and starts
// its evaluation loop and webhook deliverer. It starts before the command
// services and ingest, which feed it, so that it stops after them: what
// ingest commits while draining is still evaluated.
func (a *App) startAlerts(ctx context.Context) error {
	svc, err := alerting.New(ctx, alerting.Config{
		Store: a.be.store, Webhooks: a.be.store, Fleet: a.be.store, Audit: a.be.store, Live: a.hub,
		Latest: latestReadings{a}, Retention: a.cfg.AlertRetention, Rules: a.bus,
		Silence: a.be.silence, Node: clusterNode(a),
		Delivery: alerting.DeliveryOptions{AllowLoopback: a.cfg.WebhookAllowLoopback, Claimer: a.node},
		Logger:   a.log,
	})
	if err != nil {
		return fmt.Errorf("start alerting: %w", err)
	}
	a.alerts = svc
	a.onStop("alerting", quickStop, svc.Close)
	// Rules changed through another instance of a cluster.
	if err := a.bus.OnRules(svc.RuleChanged); err != nil {
		return fmt.Errorf("start alerting: %w", err)
	}
	return nil
}

// clusterNode is this instance's node name in a cluster, "" for one
// instance (whose saved alert state keeps its key from before clusters).
func clusterNode(a *App) string {
	if !a.bus.Clustered() {
		return ""
	}
	return a.node
}

// latestReadings reads metrics from the telemetry store, which opens after
// alerting (startIngest) and before anything can ask for a preview.
type latestReadings struct{ a *App }

func (l latestReadings) Metrics(ctx context.Context, deviceID string) ([]telemetry.Metric, error) {
	if l.a.telemetry == nil {
		return nil, nil
	}
	return l.a.telemetry.Metrics(ctx, deviceID)
}

// committed hands each committed batch to the live streams and to
// alerting; both return at once.
type committed struct {
	live   ingest.Publisher
	alerts *alerting.Service
}

func (c committed) Committed(batch []telemetry.Record) {
	c.live.Committed(batch)
	c.alerts.Committed(batch)
}

// twinPublisher announces twins live and hands reported properties to
// alerting (changed rules on reported properties).
type twinPublisher struct {
	commands.Publisher
	alerts *alerting.Service
	now    func() time.Time
}

func (p twinPublisher) PublishTwin(v commands.TwinView) {
	p.Publisher.PublishTwin(v)
	p.alerts.Reported(v.DeviceID, v.Properties.Reported, p.now())
}
