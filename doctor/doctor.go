// Package doctor checks what a hub needs from the machine before devices find
// out the hard way: free ports, a certificate that names the host devices dial
// and is not about to expire, a clock that agrees with the world (SAS tokens
// depend on it), enough file descriptors, free disk space and a writable data
// folder. Each check returns findings that say what is wrong and how to fix
// it; `fieldhub doctor` prints them and `fieldhub serve` logs them at start.
package doctor

import (
	"context"
	"net/http"
	"time"
)

// Severity grades a finding.
type Severity int

const (
	// OK is a finding that needs nothing done.
	OK Severity = iota
	// Warning is something that works today but will hurt: a certificate
	// that expires within a month, a low file limit, a filling disk.
	Warning
	// Problem is something that stops the hub or its devices.
	Problem
)

func (s Severity) String() string {
	switch s {
	case OK:
		return "ok"
	case Warning:
		return "warning"
	default:
		return "problem"
	}
}

// Finding is one result of a check.
type Finding struct {
	// Check names the concern: "port", "certificate", "clock", "file limit",
	// "disk space", "data folder".
	Check    string
	Severity Severity
	// What says what was found, with the figures that matter.
	What string
	// Fix says what to do; empty for OK.
	Fix string
}

// Config is what Run checks. Zero fields skip their check where that makes
// sense: no Ports, no LockFile and no ClockURL check nothing.
type Config struct {
	// DataDir is the hub's data folder.
	DataDir string
	// LockFile is the data folder's lock (<data>/fieldhub.lock). When set,
	// Run reports whether a hub holds it and counts the ports that hub
	// listens on as its own. serve, which holds the lock, leaves it empty.
	LockFile string
	// Ports are the listen addresses to try.
	Ports []Port
	// Hostname is the name devices dial; "" means localhost.
	Hostname string
	// CertFile and KeyFile are the device endpoints' certificate given with
	// --tls-cert/--tls-key; empty for the one generated in <data>/tls.
	CertFile, KeyFile string
	// ClockURL is a URL whose HTTP Date the local clock is compared with;
	// Client fetches it (nil: a client with a 5-second timeout).
	ClockURL string
	Client   *http.Client
	// Files is what the file limit is checked against; zero means
	// RecommendedFiles.
	Files FileNeed
	// Disk holds the free-space thresholds; zero means DefaultDisk.
	Disk DiskThresholds
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run runs every check cfg asks for, in the order an operator would fix
// them: the data folder, the ports, the certificate, the clock, the file
// limit, the disk.
func Run(ctx context.Context, cfg Config) []Finding {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	var out []Finding
	out = append(out, DataFolder(cfg.DataDir))
	var hub Holder
	if cfg.LockFile != "" {
		var f Finding
		hub, f = Lock(cfg.LockFile)
		out = append(out, f)
	}
	for _, p := range cfg.Ports {
		out = append(out, CheckPort(p, hub))
	}
	out = append(out, Certificate(CertSource{DataDir: cfg.DataDir, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile},
		cfg.Hostname, now(), hub.Running)...)
	if cfg.ClockURL != "" {
		out = append(out, Clock(ctx, cfg.Client, cfg.ClockURL, now, ClockTolerance))
	}
	files := cfg.Files
	if files == (FileNeed{}) {
		files.Recommended = RecommendedFiles
	}
	out = append(out, CheckFileLimit(files))
	th := cfg.Disk
	if th == (DiskThresholds{}) {
		th = DefaultDisk
	}
	out = append(out, DiskSpace(cfg.DataDir, th))
	return out
}

// Worst is the highest severity among findings (OK for none).
func Worst(findings []Finding) Severity {
	worst := OK
	for _, f := range findings {
		worst = max(worst, f.Severity)
	}
	return worst
}
