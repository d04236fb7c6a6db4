package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Holder is the process holding the data folder's lock: a running hub.
type Holder struct {
	Running bool
	PID     int // 0 when it cannot be told
	// About is what the lock file says of its holder (what it runs and
	// since when), for the report.
	About string
}

// Lock reports whether a hub runs on the data folder whose lock file is
// path. The holder writes its PID, start time and command into the file
// (three lines) after locking; /proc/locks says whether the lock is held
// without taking it.
func Lock(path string) (Holder, Finding) {
	f := Finding{Check: "data folder"}
	dir := filepath.Dir(path)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		f.What = "no hub is running on " + dir
		return Holder{}, f
	}
	pid, known := flockHolder(path)
	held := pid != 0
	if !known {
		var err error
		if held, err = probeFlock(path); err != nil {
			f.Severity = Warning
			f.What = fmt.Sprintf("cannot tell whether a hub is running on %s: %v", dir, err)
			f.Fix = "run doctor as the hub's user or as root"
			return Holder{}, f
		}
	}
	if !held {
		f.What = "no hub is running on " + dir
		return Holder{}, f
	}
	h := Holder{Running: true, PID: pid}
	content, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(content)), "\n")
	if filePID, err := strconv.Atoi(lines[0]); err == nil && h.PID == 0 {
		h.PID = filePID
	}
	if len(lines) >= 3 {
		h.About = lines[2] + ", started " + lines[1]
	}
	f.What = "a hub is running on " + dir
	if h.PID != 0 {
		f.What += fmt.Sprintf(": pid %d", h.PID)
	}
	if h.About != "" {
		f.What += " (" + h.About + ")"
	}
	f.What += "; the ports it holds count as in use by it"
	return h, f
}

// DataFolder checks that dir can hold the hub's data: it exists (or can be
// created) and this user can create files in it and write each file the
// hub keeps there. A data folder left behind by a run as root is the usual
// way to fail this.
func DataFolder(dir string) Finding {
	f := Finding{Check: "data folder"}
	me := currentUser()
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		parent := existingParent(dir)
		if err := tryWrite(parent); err != nil {
			f.Severity = Problem
			f.What = fmt.Sprintf("%s does not exist and %s cannot create it: %v", dir, me, err)
			f.Fix = fmt.Sprintf("create it for the hub's user: mkdir -p %s && chown %s %s", dir, me, dir)
			return f
		}
		f.What = dir + " does not exist yet; serve creates it"
		return f
	case err != nil:
		f.Severity, f.What, f.Fix = Problem, fmt.Sprintf("cannot look at %s: %v", dir, err), "give --data a folder this user can reach"
		return f
	case !st.IsDir():
		f.Severity, f.What, f.Fix = Problem, dir+" is not a folder", "give --data a folder (it is created if missing)"
		return f
	}
	if err := tryWrite(dir); err != nil {
		f.Severity = Problem
		f.What = fmt.Sprintf("%s cannot create files in %s: %v", me, dir, err)
		f.Fix = fmt.Sprintf("give the hub's user the folder: chown -R %s %s", me, dir)
		return f
	}
	for _, sub := range []string{dir, filepath.Join(dir, "tls")} {
		entries, _ := os.ReadDir(sub)
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(sub, e.Name())
			// Asked, not opened: closing a descriptor of the database
			// would drop SQLite's POSIX locks of a hub in this process.
			if err := writable(p); err != nil {
				f.Severity = Problem
				f.What = fmt.Sprintf("%s cannot write %s: %v", me, p, err)
				f.Fix = fmt.Sprintf("give the hub's user its files: chown -R %s %s", me, dir)
				return f
			}
		}
	}
	f.What = dir + " is writable by " + me
	return f
}

// tryWrite creates, syncs and removes a file in dir.
func tryWrite(dir string) error {
	w, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return err
	}
	defer os.Remove(w.Name())
	if _, err := w.WriteString("fieldhub doctor\n"); err != nil {
		w.Close()
		return err
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// existingParent is dir or the nearest folder above it that exists.
func existingParent(dir string) string {
	dir = filepath.Clean(dir)
	for {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}

// DiskThresholds say when free space in the data folder is low.
type DiskThresholds struct {
	// Warning below WarnBytes free or WarnPercent of the file system.
	WarnBytes   uint64
	WarnPercent float64
	// Problem below ProblemBytes free.
	ProblemBytes uint64
}

// DefaultDisk warns below 1 GB or 5 % free and calls less than 100 MB a
// problem: SQLite needs room for its write-ahead log and checkpoints, and
// a full disk stops every acknowledgement.
var DefaultDisk = DiskThresholds{WarnBytes: 1 << 30, WarnPercent: 5, ProblemBytes: 100 << 20}

// DiskSpace checks the free space of the file system that holds dir (or
// would, when dir does not exist yet).
func DiskSpace(dir string, th DiskThresholds) Finding {
	f := Finding{Check: "disk space"}
	free, total, err := diskSpace(existingParent(dir))
	if err != nil {
		f.Severity, f.What, f.Fix = Warning, fmt.Sprintf("cannot read the free space of %s: %v", dir, err), "check it with df"
		return f
	}
	pct := 100.0
	if total > 0 {
		pct = float64(free) / float64(total) * 100
	}
	f.What = fmt.Sprintf("%s free of %s (%.1f %%) on the file system of %s", bytesText(free), bytesText(total), pct, dir)
	switch {
	case free < th.ProblemBytes:
		f.Severity = Problem
	case free < th.WarnBytes || pct < th.WarnPercent:
		f.Severity = Warning
	default:
		return f
	}
	f.Fix = "free space there or move the data folder to a larger disk; a shorter --retention keeps less telemetry. " +
		"When the disk fills, devices are refused (503, no PUBACK) until space is free"
	return f
}

// bytesText writes n in GB, MB or KB (powers of 1024, as df -h).
func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KB", n>>10)
	}
}
