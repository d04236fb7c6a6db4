package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"fieldhub/netlimit"
)

// listenConfig is how long clients of each listener may take and how many
// connections each listener holds. Timeouts are fixed (tests shorten them);
// the caps are `serve` flags.
type listenConfig struct {
	Dashboard netlimit.HTTPTimeouts
	Device    netlimit.HTTPTimeouts
	// MQTTConnect bounds the TLS handshake and CONNECT on the MQTT
	// listeners, and CONNECT on MQTT over WebSockets.
	MQTTConnect time.Duration
	// Connection caps. A Total of 0 is filled in from the file limit at
	// start (connectionCaps); a PerSource of 0 means no per-source cap.
	DashboardConns, DeviceConns, MQTTConns netlimit.Limits
}

// defaultListenConfig: headers within 10 s, bodies within 30 s (dashboard
// forms and API calls are small) or 60 s (a 256 KB device message over a
// slow cellular link), keep-alive connections idle for 2 minutes at most.
func defaultListenConfig() listenConfig {
	return listenConfig{
		Dashboard:   netlimit.HTTPTimeouts{Header: 10 * time.Second, Body: 30 * time.Second, Idle: 2 * time.Minute},
		Device:      netlimit.HTTPTimeouts{Header: 10 * time.Second, Body: 60 * time.Second, Idle: 2 * time.Minute},
		MQTTConnect: 10 * time.Second,
	}
}

// Per-source defaults: a browser opens a handful of connections, so 64
// leaves room for several operators behind one address; device listeners
// allow a NATed site of a thousand devices, and a larger fleet behind one
// address raises the flag.
const (
	defaultDashboardPerSource = 64
	defaultDevicePerSource    = 1024
	defaultMQTTPerSource      = 1024
)

// listenFlags defines the connection-cap and proxy flags on fs. The
// returned function finishes the parsing once fs has parsed.
func listenFlags(fs *flag.FlagSet, e env, cfg *serveConfig) (finish func() error) {
	var errs []error
	intFlag := func(p *int, name, key string, def int, usage string) {
		if v := e.getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, usagef("serve: %s=%q is not a whole number", key, v))
			}
			def = n
		}
		fs.IntVar(p, name, def, usage+" (env "+key+")")
	}
	l := &cfg.Listen
	intFlag(&l.DashboardConns.Total, "dashboard-max-conns", "FIELDHUB_DASHBOARD_MAX_CONNS", 0, "most connections the dashboard holds at once; 0: up to 1024, within the file limit")
	intFlag(&l.DashboardConns.PerSource, "dashboard-max-conns-per-ip", "FIELDHUB_DASHBOARD_MAX_CONNS_PER_IP", defaultDashboardPerSource, "most dashboard connections from one IPv4 address or IPv6 /64; 0: no cap")
	intFlag(&l.DeviceConns.Total, "device-max-conns", "FIELDHUB_DEVICE_MAX_CONNS", 0, "most connections the HTTPS device endpoint holds at once, MQTT over WebSockets included; 0: a quarter of what the file limit leaves")
	intFlag(&l.DeviceConns.PerSource, "device-max-conns-per-ip", "FIELDHUB_DEVICE_MAX_CONNS_PER_IP", defaultDevicePerSource, "most HTTPS device endpoint connections from one IPv4 address or IPv6 /64; 0: no cap")
	intFlag(&l.MQTTConns.Total, "mqtt-max-conns", "FIELDHUB_MQTT_MAX_CONNS", 0, "most MQTT connections held at once; 0: three quarters of what the file limit leaves")
	intFlag(&l.MQTTConns.PerSource, "mqtt-max-conns-per-ip", "FIELDHUB_MQTT_MAX_CONNS_PER_IP", defaultMQTTPerSource, "most MQTT connections from one IPv4 address or IPv6 /64; 0: no cap")
	proxies := fs.String("trusted-proxies", envOr(e, "FIELDHUB_TRUSTED_PROXIES", ""),
		"comma-separated addresses or CIDR ranges of reverse proxies whose X-Forwarded-For names the client; their connections are exempt from the per-IP caps (env FIELDHUB_TRUSTED_PROXIES)")
	return func() error {
		if len(errs) > 0 {
			return errs[0]
		}
		for _, c := range []struct {
			name string
			n    int
		}{
			{"dashboard-max-conns", l.DashboardConns.Total}, {"dashboard-max-conns-per-ip", l.DashboardConns.PerSource},
			{"device-max-conns", l.DeviceConns.Total}, {"device-max-conns-per-ip", l.DeviceConns.PerSource},
			{"mqtt-max-conns", l.MQTTConns.Total}, {"mqtt-max-conns-per-ip", l.MQTTConns.PerSource},
		} {
			if c.n < 0 {
				return usagef("serve: --%s must be 0 or more, got %d", c.name, c.n)
			}
		}
		var err error
		if cfg.TrustedProxies, err = parsePrefixes(*proxies); err != nil {
			return usagef("serve: --trusted-proxies: %v", err)
		}
		l.DashboardConns.Exempt, l.DeviceConns.Exempt = cfg.TrustedProxies, cfg.TrustedProxies
		return nil
	}
}

// parsePrefixes reads "10.0.0.0/8, 192.168.1.10": ranges and single addresses.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR range like 10.0.0.0/8", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// fdReserve is what the budget keeps of the file limit for everything that
// is not an accepted connection: the database's files, logs, certificates,
// the demo's outgoing connections.
func fdReserve(fileLimit int) int { return max(128, fileLimit/16) }

// connectionCaps fills in the total caps left at 0 so that the listeners
// together stay below the file limit: the dashboard's share comes first (up
// to 1024, a quarter at most), so that a flood on the device side can never
// take the descriptors operators need; the device listeners share the rest,
// a quarter for HTTPS and three quarters for MQTT, whose devices stay
// connected. Caps set by hand must fit too. fileLimit 0 (unknown) leaves
// the caps as they are.
func connectionCaps(l listenConfig, fileLimit int) (listenConfig, error) {
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
func listenerCaps(l listenConfig, log *slog.Logger) (listenConfig, error) {
	limit, err := raiseFileLimit()
	if err != nil {
		log.Warn("could not read or raise the file limit; connection caps are what the flags say", "err", err)
	}
	l, err = connectionCaps(l, limit)
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
	if dashboardTLS || isLoopback(addr) {
		return
	}
	log.Warn("the dashboard is served without TLS on an address other machines can reach: passwords and session cookies cross the network in clear text; use --dashboard-tls, or a TLS proxy in front on a loopback --addr",
		"addr", addr)
}
