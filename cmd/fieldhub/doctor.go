package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"

	"fieldhub/doctor"
)

// doctorConfig is what doctor checks for a hub configured as cfg. The
// stand-alone command also tries the ports and looks for a hub running on
// the data folder; serve, about to bind the ports and holding the lock,
// checks the rest.
func doctorConfig(cfg serveConfig, standalone bool) doctor.Config {
	d := doctor.Config{
		DataDir: cfg.DataDir, Hostname: cfg.Hostname,
		CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey,
		ClockURL: cfg.ClockURL,
		Files:    doctor.FileNeed{Required: filesForCaps(cfg.Listen), Recommended: doctor.RecommendedFiles},
	}
	if standalone {
		d.LockFile = filepath.Join(cfg.DataDir, lockFileName)
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
// caps set by hand fit, as connectionCaps shares the limit out; 0 when
// none is set by hand, since then the caps follow the limit.
func filesForCaps(l listenConfig) uint64 {
	if l.DashboardConns.Total == 0 && l.DeviceConns.Total == 0 && l.MQTTConns.Total == 0 {
		return 0
	}
	fits := func(limit int) bool { _, err := connectionCaps(l, limit); return err == nil }
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

// runDoctor is `fieldhub doctor [serve flags]`: every check, printed with
// its fix; a problem makes the exit status 1.
func runDoctor(ctx context.Context, e env, args []string) error {
	cfg, err := parseServeAs(e, "doctor", args)
	if err != nil {
		return err
	}
	findings := doctor.Run(ctx, doctorConfig(cfg, true))
	printFindings(e.stdout, findings)
	if n := count(findings, doctor.Problem); n > 0 {
		return fmt.Errorf("doctor found %s", plural(int64(n), "problem"))
	}
	return nil
}

func printFindings(w io.Writer, findings []doctor.Finding) {
	for _, f := range findings {
		sev := f.Severity.String()
		if f.Severity == doctor.Problem {
			sev = "PROBLEM"
		}
		fmt.Fprintf(w, "%-8s %-12s %s\n", sev, f.Check, f.What)
		if f.Fix != "" {
			fmt.Fprintf(w, "%-8s %-12s fix: %s\n", "", "", f.Fix)
		}
	}
	fmt.Fprintf(w, "\n%s, %s.\n", plural(int64(count(findings, doctor.Problem)), "problem"), plural(int64(count(findings, doctor.Warning)), "warning"))
}

func count(findings []doctor.Finding, s doctor.Severity) int {
	n := 0
	for _, f := range findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// logStartupChecks runs doctor's checks for serve (not the ports it binds
// next, nor its own lock) and logs what they find: a warning as WARN, a
// problem as ERROR, each with its fix. The hub starts either way; what
// stops it stops it with its own error.
func logStartupChecks(ctx context.Context, cfg serveConfig, log *slog.Logger) {
	for _, f := range doctor.Run(ctx, doctorConfig(cfg, false)) {
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
