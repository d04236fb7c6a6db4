package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"fieldhub/netlimit"
)

// metricsConns caps the --metrics-addr listener: a scraper or two, and a
// curl, hold a connection each.
var metricsConns = netlimit.Limits{Total: 32, PerSource: 16}

// serveMetrics serves GET /metrics on Config.MetricsAddr, a loopback
// address, without sign-in, for a Prometheus on this machine; with the
// dashboard's timeouts and a cap of its own. Off unless --metrics-addr is
// given; the dashboard's /metrics (any API token or session) is always on.
func (a *App) serveMetrics(context.Context) error {
	if a.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics endpoint: listen on %s: %w", a.cfg.MetricsAddr, err)
	}
	ln = netlimit.New("metrics", metricsConns, a.log).Wrap(ln)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics)
	srv := a.caps.Dashboard.Server(mux, slog.NewLogLogger(a.log.Handler(), slog.LevelDebug))
	a.serve("metrics endpoint", func() error { return srv.Serve(ln) })
	a.onStop("metrics endpoint", serverStop, srv.Shutdown)
	a.metricsAddr = ln.Addr().String()
	a.log.Info("Prometheus metrics are served without sign-in", "addr", a.metricsAddr, "path", "/metrics")
	return nil
}

// MetricsAddr is where --metrics-addr listens; "" when it is off.
func (a *App) MetricsAddr() string { return a.metricsAddr }
