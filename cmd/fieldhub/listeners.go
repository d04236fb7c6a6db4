package main

import (
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

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
