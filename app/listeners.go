package app

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"fieldhub/netlimit"
)

// ListenConfig is how long clients of each listener may take and how many
// connections each listener holds. Timeouts are fixed (tests shorten them);
// the caps are `serve` flags.
type ListenConfig struct {
	Dashboard netlimit.HTTPTimeouts
	Device    netlimit.HTTPTimeouts
	// MQTTConnect bounds the TLS handshake and CONNECT on the MQTT
	// listeners, and CONNECT on MQTT over WebSockets.
	MQTTConnect time.Duration
	// Connection caps. A Total of 0 is filled in from the file limit at
	// start (ConnectionCaps); a PerSource of 0 means no per-source cap.
	DashboardConns, DeviceConns, MQTTConns netlimit.Limits
}

// DefaultListenConfig has the fixed timeouts: headers within 10 s, bodies
// within 30 s (dashboard forms and API calls are small) or 60 s (a 256 KB
// device message over a slow cellular link), keep-alive connections idle
// for 2 minutes at most.
func DefaultListenConfig() ListenConfig {
	return ListenConfig{
		Dashboard:   netlimit.HTTPTimeouts{Header: 10 * time.Second, Body: 30 * time.Second, Idle: 2 * time.Minute},
		Device:      netlimit.HTTPTimeouts{Header: 10 * time.Second, Body: 60 * time.Second, Idle: 2 * time.Minute},
		MQTTConnect: 10 * time.Second,
	}
}

// fdReserve is what the budget keeps of the file limit for everything that
// is not an accepted connection: the database's files, logs, certificates,
// the demo's outgoing connections.
func fdReserve(fileLimit int) int { return max(128, fileLimit/16) }

// ConnectionCaps fills in the total caps left at 0 so that the listeners
// together stay below the file limit: the dashboard's share comes first (up
// to 1024, a quarter at most), so that a flood on the device side can never
// take the descriptors operators need; the device listeners share the rest,
// a quarter for HTTPS and three quarters for MQTT, whose devices stay
// connected. Caps set by hand must fit too. fileLimit 0 (unknown) leaves
// the caps as they are.
func ConnectionCaps(l ListenConfig, fileLimit int) (ListenConfig, error) {
	if fileLimit <= 0 {
		return l, nil
	}
	avail := fileLimit - fdReserve(fileLimit)
	if l.DashboardConns.Total == 0 {
		l.DashboardConns.Total = max(1, min(1024, avail/4))
	}
	left := avail - l.DashboardConns.Total
	switch {
	case l.DeviceConns.Total == 0 && l.MQTTConns.Total == 0:
		l.DeviceConns.Total = max(1, left/4)
		l.MQTTConns.Total = max(1, left-left/4)
	case l.DeviceConns.Total == 0:
		l.DeviceConns.Total = max(1, left-l.MQTTConns.Total)
	case l.MQTTConns.Total == 0:
		l.MQTTConns.Total = max(1, left-l.DeviceConns.Total)
	}
	if sum := l.DashboardConns.Total + l.DeviceConns.Total + l.MQTTConns.Total; sum > avail {
		return l, fmt.Errorf("connection caps: the listeners may hold %d connections together (dashboard %d, device %d, MQTT %d), but the file limit of %d leaves %d for connections; lower --dashboard-max-conns, --device-max-conns or --mqtt-max-conns, or raise the hard file limit (ulimit -Hn, systemd LimitNOFILE=)",
			sum, l.DashboardConns.Total, l.DeviceConns.Total, l.MQTTConns.Total, fileLimit, avail)
	}
	return l, nil
}

// listenerCaps raises the file limit and works out the connection caps
// within it, and logs both.
func listenerCaps(l ListenConfig, log *slog.Logger) (ListenConfig, error) {
	limit, err := RaiseFileLimit()
	if err != nil {
		log.Warn("could not read or raise the file limit; connection caps are what the flags say", "err", err)
	}
	l, err = ConnectionCaps(l, limit)
	if err != nil {
		return l, err
	}
	log.Info("connection caps", "file_limit", limit,
		"dashboard", l.DashboardConns.String(), "device", l.DeviceConns.String(), "mqtt", l.MQTTConns.String())
	return l, nil
}

// warnPlainDashboard says so when operators' passwords and session cookies
// would cross a network in clear text.
func warnPlainDashboard(log *slog.Logger, addr string, dashboardTLS bool) {
	if dashboardTLS || IsLoopback(addr) {
		return
	}
	log.Warn("the dashboard is served without TLS on an address other machines can reach: passwords and session cookies cross the network in clear text; use --dashboard-tls, or a TLS proxy in front on a loopback --addr",
		"addr", addr)
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}
