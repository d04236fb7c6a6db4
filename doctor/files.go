package doctor

import "fmt"

// Limit is RLIMIT_NOFILE: how many files, sockets included, a process may
// hold open.
type Limit struct{ Soft, Hard uint64 }

// FileNeed is what the file limit is held against.
type FileNeed struct {
	// Required is what the connection caps set by hand need, plus what the
	// hub keeps for itself; below it not every capped connection can be
	// held. 0 when the caps follow the file limit.
	Required uint64
	// Recommended is the limit below which a hub serving a real fleet of
	// MQTT devices, each holding a connection, runs short.
	Recommended uint64
}

// RecommendedFiles is the usual production figure (systemd's own unit
// sets more).
const RecommendedFiles = 65536

// CheckFileLimit reads this process's file limit and checks it against need.
func CheckFileLimit(need FileNeed) Finding {
	lim, err := fileLimit()
	if err != nil {
		return Finding{Check: "file limit", Severity: Warning, What: fmt.Sprintf("cannot read the file limit: %v", err), Fix: "check it with ulimit -n"}
	}
	return FileLimit(lim, need)
}

// FileLimit checks lim against need. The hub raises its soft limit to the
// hard one at start (Go programs do anyway), so the hard limit is what it gets.
func FileLimit(lim Limit, need FileNeed) Finding {
	f := Finding{Check: "file limit"}
	f.What = fmt.Sprintf("the hub may hold %d files and connections open (the hard RLIMIT_NOFILE; the hub raises its soft limit, %d here, to it)", lim.Hard, lim.Soft)
	switch {
	case need.Required > 0 && lim.Hard < need.Required:
		f.Severity = Problem
		f.What += fmt.Sprintf("; the connection caps set by hand need %d", need.Required)
	case lim.Hard < need.Recommended:
		f.Severity = Warning
		f.What += fmt.Sprintf("; fewer than %d limits how many devices stay connected (the connection caps follow it)", need.Recommended)
	default:
		return f
	}
	f.Fix = fmt.Sprintf("raise it to %d or more: LimitNOFILE= in the systemd unit (deploy/fieldhub.service sets 524288), ulimit -Hn in the shell that starts the hub, or nofile in /etc/security/limits.conf",
		max(need.Required, need.Recommended))
	return f
}
