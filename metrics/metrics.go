// Package metrics is the hub's Prometheus exposition (GET /metrics): a
// collector that reads the parts' own counters at scrape time, so nothing
// on the ingest path pays for metrics, plus Go's runtime and process
// metrics. Every name starts with fieldhub_.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"fieldhub/alert"
	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/ingest"
)

// Ingest is the pipeline's counters (*ingest.Pipeline).
type Ingest interface{ Stats() ingest.Stats }

// Live is the SSE hub (*live.Hub).
type Live interface {
	Connected() int64
	Dropped() int64
}

// Alerts is the alerting service (*alerting.Service).
type Alerts interface {
	OpenCounts() map[alert.Severity]int
	Dropped() int64
	QueueDepth() int
	DeliveryCounts() map[string]int64
}

// Fleet counts devices by status (the store).
type Fleet interface {
	FleetCounts(ctx context.Context) (db.FleetCounts, error)
}

// Methods is the direct method invoker (*commands.Invoker).
type Methods interface {
	Outcomes() [len(commands.MethodOutcomes)]int64
}

// Store is what the metrics count in the store at scrape time.
type Store interface {
	// CloudMessageCounts counts cloud-to-device messages by state.
	CloudMessageCounts(ctx context.Context) (map[string]int, error)
}

// Sources are the parts the metrics read; nil ones are left out.
type Sources struct {
	Ingest Ingest
	Live   Live
	Alerts Alerts
	Fleet  Fleet
	// Store is counted at most once every storeEvery.
	Store Store
	// Methods counts direct method calls by outcome.
	Methods Methods
	Logger  *slog.Logger
}

// Handler serves the exposition of src with Go's runtime and process
// metrics, in the text format Prometheus scrapes.
func Handler(src Sources) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{src: src, now: time.Now})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errorLog{src.Logger}, Timeout: 10 * time.Second, MaxRequestsInFlight: 4})
}

type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	if l.log != nil {
		l.log.Error("metrics", "err", v)
	}
}

var (
	committed     = prometheus.NewDesc("fieldhub_messages_committed_total", "Device-to-cloud messages stored (committed), all protocols.", nil, nil)
	batches       = prometheus.NewDesc("fieldhub_commit_batches_total", "Transactions the ingest writer committed (group commits).", nil, nil)
	refused       = prometheus.NewDesc("fieldhub_ingest_refused_total", "Device messages refused, by protocol and reason: too_large (HTTPS 413), throttled (HTTPS 429, over the device's quota), overloaded (HTTPS 503 or MQTT refused: ingest queue full, or ingest not running), storage_fault (HTTPS 503 or no MQTT PUBACK: the commit failed). A refused HTTPS batch counts once.", []string{"protocol", "reason"}, nil)
	ingestedMsgs  = prometheus.NewDesc("fieldhub_ingested_messages_total", "Device-to-cloud messages stored (committed), by protocol (other: a message its sender did not mark as either).", []string{"protocol"}, nil)
	ingestedReads = prometheus.NewDesc("fieldhub_ingested_readings_total", "Numeric values stored as time series from committed messages, by protocol.", []string{"protocol"}, nil)
	ingestedBytes = prometheus.NewDesc("fieldhub_ingested_bytes_total", "Size of committed messages as Azure IoT Hub counts it (body and properties), by protocol.", []string{"protocol"}, nil)
	commitTime    = prometheus.NewDesc("fieldhub_commit_duration_seconds", "Duration of the ingest writer's group commits (one transaction each, failed ones included).", nil, nil)
	stepTime      = prometheus.NewDesc("fieldhub_ingest_step_duration_seconds", "Duration of the ingest writer's steps between group commits (message index, telemetry checkpoint, retention), during which commits wait.", []string{"step"}, nil)
	queueDepth    = prometheus.NewDesc("fieldhub_ingest_queue_messages", "Messages waiting for the ingest writer or being written.", nil, nil)
	devices       = prometheus.NewDesc("fieldhub_devices", "Registered devices by status.", []string{"status"}, nil)
	connected     = prometheus.NewDesc("fieldhub_devices_connected", "Enabled devices online by protocol: mqtt holds a live MQTT connection (to any instance; MQTT over WebSockets included), https has none but was heard from within the last 2 minutes.", []string{"protocol"}, nil)
	subscribers   = prometheus.NewDesc("fieldhub_sse_subscribers", "Open live streams (server-sent events).", nil, nil)
	sseDropped    = prometheus.NewDesc("fieldhub_sse_dropped_total", "Live stream subscribers dropped for falling behind.", nil, nil)
	openAlerts    = prometheus.NewDesc("fieldhub_alerts_open", "Open alerts (active or acknowledged) by severity.", []string{"severity"}, nil)
	evalDropped   = prometheus.NewDesc("fieldhub_alert_evaluation_dropped_total", "Messages not evaluated for alerts because the evaluation queue was full.", nil, nil)
	evalQueue     = prometheus.NewDesc("fieldhub_alert_evaluation_queue_batches", "Committed batches waiting for alert evaluation.", nil, nil)
	c2dMessages   = prometheus.NewDesc("fieldhub_c2d_messages", "Cloud-to-device messages by state (waiting: queued, locked, abandoned; final ones until retention deletes them), counted at most every 5 s.", []string{"state"}, nil)
	methodCalls   = prometheus.NewDesc("fieldhub_method_calls_total", "Direct method calls by outcome: ok (the device answered, whatever its status), timeout, not_connected, unreachable (the instance holding the connection), error.", []string{"outcome"}, nil)
	deliveries    = prometheus.NewDesc("fieldhub_webhook_deliveries_total", "Webhook delivery attempts and outcomes: delivered, failed (attempt failed, retried), given_up, dropped (outbox full).", []string{"outcome"}, nil)
)

// storeEvery bounds how often a scrape counts in the store: scrapers are
// many, and a count scans its table.
const storeEvery = 5 * time.Second

// cloudStates are the states fieldhub_c2d_messages shows, each even at 0.
var cloudStates = []string{db.CloudQueued, db.CloudLocked, db.CloudAbandoned, db.CloudCompleted, db.CloudRejected, db.CloudExpired, db.CloudDead, db.CloudPurged}

// collector reads the sources at scrape time.
type collector struct {
	src Sources
	now func() time.Time

	mu      sync.Mutex // guards what was counted in the store, and when
	countAt time.Time
	cloud   map[string]int
}

// cloudCounts counts C2D messages by state, or returns the last count when
// it is less than storeEvery old (or the count fails: a scrape still
// shows the last known numbers, and the error is logged).
func (c *collector) cloudCounts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.cloud == nil || now.Sub(c.countAt) >= storeEvery {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		counts, err := c.src.Store.CloudMessageCounts(ctx)
		cancel()
		c.countAt = now
		if err == nil {
			c.cloud = counts
		} else if c.src.Logger != nil {
			c.src.Logger.Warn("metrics: count cloud-to-device messages", "err", err)
		}
	}
	return c.cloud
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{committed, batches, refused, ingestedMsgs, ingestedReads, ingestedBytes, commitTime, stepTime, queueDepth, devices, subscribers, sseDropped, openAlerts, evalDropped, evalQueue, deliveries, methodCalls, c2dMessages, connected} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if p := c.src.Ingest; p != nil {
		st := p.Stats()
		ch <- prometheus.MustNewConstMetric(committed, prometheus.CounterValue, float64(st.Committed))
		ch <- prometheus.MustNewConstMetric(batches, prometheus.CounterValue, float64(st.Batches))
		ch <- prometheus.MustNewConstMetric(queueDepth, prometheus.GaugeValue, float64(st.Queued))
		for i, proto := range ingest.Protocols {
			in := st.ByProtocol[i]
			ch <- prometheus.MustNewConstMetric(ingestedMsgs, prometheus.CounterValue, float64(in.Messages), proto)
			ch <- prometheus.MustNewConstMetric(ingestedReads, prometheus.CounterValue, float64(in.Readings), proto)
			ch <- prometheus.MustNewConstMetric(ingestedBytes, prometheus.CounterValue, float64(in.Bytes), proto)
			for r, reason := range ingest.Reasons {
				ch <- prometheus.MustNewConstMetric(refused, prometheus.CounterValue, float64(st.Refused[i][r]), proto, reason)
			}
		}
		ch <- histogram(commitTime, st.CommitSeconds)
		for i, step := range ingest.Steps {
			ch <- histogram(stepTime, st.StepSeconds[i], step)
		}
	}
	if f := c.src.Fleet; f != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		counts, err := f.FleetCounts(ctx)
		cancel()
		if err == nil {
			for status, n := range map[string]int{db.StatusOnline: counts.Online, db.StatusOffline: counts.Offline, db.StatusDisabled: counts.Disabled} {
				ch <- prometheus.MustNewConstMetric(devices, prometheus.GaugeValue, float64(n), status)
			}
			ch <- prometheus.MustNewConstMetric(connected, prometheus.GaugeValue, float64(counts.Connected), ingest.ProtocolMQTT)
			ch <- prometheus.MustNewConstMetric(connected, prometheus.GaugeValue, float64(max(counts.Online-counts.Connected, 0)), ingest.ProtocolHTTPS)
		}
	}
	if l := c.src.Live; l != nil {
		ch <- prometheus.MustNewConstMetric(subscribers, prometheus.GaugeValue, float64(l.Connected()))
		ch <- prometheus.MustNewConstMetric(sseDropped, prometheus.CounterValue, float64(l.Dropped()))
	}
	if c.src.Store != nil {
		if counts := c.cloudCounts(); counts != nil {
			for _, state := range cloudStates {
				ch <- prometheus.MustNewConstMetric(c2dMessages, prometheus.GaugeValue, float64(counts[state]), state)
			}
		}
	}
	if m := c.src.Methods; m != nil {
		n := m.Outcomes()
		for k, outcome := range commands.MethodOutcomes {
			ch <- prometheus.MustNewConstMetric(methodCalls, prometheus.CounterValue, float64(n[k]), outcome)
		}
	}
	if a := c.src.Alerts; a != nil {
		for sev, n := range a.OpenCounts() {
			ch <- prometheus.MustNewConstMetric(openAlerts, prometheus.GaugeValue, float64(n), string(sev))
		}
		ch <- prometheus.MustNewConstMetric(evalDropped, prometheus.CounterValue, float64(a.Dropped()))
		ch <- prometheus.MustNewConstMetric(evalQueue, prometheus.GaugeValue, float64(a.QueueDepth()))
		for outcome, n := range a.DeliveryCounts() {
			ch <- prometheus.MustNewConstMetric(deliveries, prometheus.CounterValue, float64(n), outcome)
		}
	}
}

// histogram is one of ingest's latency histograms as a metric.
func histogram(d *prometheus.Desc, lat ingest.Latency, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(ingest.CommitBuckets))
	for i, le := range ingest.CommitBuckets {
		buckets[le] = lat.Buckets[i]
	}
	return prometheus.MustNewConstHistogram(d, lat.Count, lat.Sum, buckets, labels...)
}
