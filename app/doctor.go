package app

import (
	"context"
	"log/slog"
	"math"
	"path/filepath"

	"fieldhub/datadir"
	"fieldhub/doctor"
)

// Doctor is what doctor checks for a hub configured as cfg. The stand-alone
// command (`fieldhub doctor`) also tries the ports and looks for a hub
// running on the data folder; serve, about to bind the ports and holding
// the lock, checks the rest at start.
func (cfg Config) Doctor(standalone bool) doctor.Config {
	d := doctor.Config{
		DataDir: cfg.DataDir, Hostname: cfg.Hostname,
		CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey,
		ClockURL: cfg.ClockURL,
		Files:    doctor.FileNeed{Required: filesForCaps(cfg.Listen), Recommended: doctor.RecommendedFiles},
	}
	if standalone {
		d.LockFile = filepath.Join(cfg.DataDir, datadir.LockFile)
		d.Ports = []doctor.Port{
			{Name: "dashboard", Addr: cfg.Addr, Flag: "--addr (env FIELDHUB_ADDR)"},
			{Name: "device HTTPS endpoint", Addr: cfg.DeviceAddr, Flag: "--device-addr (env FIELDHUB_DEVICE_ADDR)"},
		}
		if cfg.MQTTAddr != "" {
			d.Ports = append(d.Ports, doctor.Port{Name: "MQTT/TLS endpoint", Addr: cfg.MQTTAddr, Flag: "--mqtt-addr (env FIELDHUB_MQTT_ADDR)"})
		}
		if cfg.MQTTPlainAddr != "" {
			d.Ports = append(d.Ports, doctor.Port{Name: "plain MQTT endpoint", Addr: cfg.MQTTPlainAddr, Flag: "--mqtt-plain-addr (env FIELDHUB_MQTT_PLAIN_ADDR)"})
		}
	}
	return d
}

// filesForCaps is the smallest file limit within which the connection
// caps set by hand fit, as ConnectionCaps shares the limit out; 0 when
// none is set by hand, since then the caps follow the limit.
func filesForCaps(l ListenConfig) uint64 {
	if l.DashboardConns.Total == 0 && l.DeviceConns.Total == 0 && l.MQTTConns.Total == 0 {
		return 0
	}
	fits := func(limit int) bool { _, err := ConnectionCaps(l, limit); return err == nil }
	lo, hi := 1, math.MaxInt32
	if !fits(hi) {
		return uint64(hi)
	}
	// More files never make the caps fit worse.
	for lo < hi {
		if mid := lo + (hi-lo)/2; fits(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return uint64(lo)
}

// logStartupChecks runs doctor's checks for serve (not the ports it binds
// next, nor its own lock) and logs what they find: a warning as WARN, a
// problem as ERROR, each with its fix. The hub starts either way; what
// stops it stops it with its own error.
func logStartupChecks(ctx context.Context, cfg Config, log *slog.Logger) {
	for _, f := range doctor.Run(ctx, cfg.Doctor(false)) {
		switch f.Severity {
		case doctor.OK:
			log.Debug("start-up check", "check", f.Check, "found", f.What)
		case doctor.Warning:
			log.Warn("start-up check", "check", f.Check, "found", f.What, "fix", f.Fix)
		default:
			log.Error("start-up check", "check", f.Check, "found", f.What, "fix", f.Fix)
		}
	}
}
