package doctor

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// owner is a process holding a socket, as far as /proc tells.
type owner struct {
	PID     int    // 0 when its file descriptors are out of sight (another user's)
	Command string // /proc/PID/comm
	UID     int
}

func (o owner) String() string {
	if o.PID != 0 {
		return fmt.Sprintf("%s (pid %d)", o.Command, o.PID)
	}
	name := strconv.Itoa(o.UID)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return "a process of user " + name + " (run doctor as root to name it)"
}

// listenerOwner finds who listens on TCP port: the socket's inode and uid
// from /proc/net/tcp{,6}, then the process whose descriptors include that
// socket. It reads every process's fd table, which is cheap enough for a
// port that is known to be taken.
func listenerOwner(port int) (owner, bool) {
	inode, uid, ok := listeningSocket(port)
	if !ok {
		return owner{}, false
	}
	o := owner{UID: uid}
	target := "socket:[" + inode + "]"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or another user's
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && link == target {
				o.PID = pid
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				o.Command = strings.TrimSpace(string(comm))
				return o, true
			}
		}
	}
	return o, true
}

// listeningSocket returns the inode and owner of the socket in state LISTEN
// on port, IPv4 or IPv6.
func listeningSocket(port int) (inode string, uid int, ok bool) {
	want := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
			fields := strings.Fields(sc.Text())
			const listen = "0A"
			if len(fields) < 10 || fields[3] != listen || !strings.HasSuffix(fields[1], want) {
				continue
			}
			uid, _ = strconv.Atoi(fields[7])
			f.Close()
			return fields[9], uid, true
		}
		f.Close()
	}
	return "", 0, false
}

// flockHolder returns the PID that holds a flock on path, from /proc/locks.
// known is false when /proc/locks cannot be read.
func flockHolder(path string) (pid int, known bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, false
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, false
	}
	// "1: FLOCK  ADVISORY  WRITE 26261 fe:00:9982045 0 EOF": major:minor in hex.
	dev := fmt.Sprintf("%02x:%02x:%d", devMajor(st.Dev), devMinor(st.Dev), st.Ino)
	for _, line := range strings.Split(string(locks), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 6 && fields[1] == "FLOCK" && fields[5] == dev {
			pid, _ := strconv.Atoi(fields[4])
			return pid, true
		}
	}
	return 0, true
}

// devMajor and devMinor split a Linux dev_t as the kernel's new_encode_dev does.
func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }

// probeFlock reports whether someone holds an exclusive flock on path, by
// asking for a shared one without waiting and letting go at once. It is
// the fallback when /proc/locks is missing; during the instant it holds
// the shared lock, a hub starting on the folder would be refused.
func probeFlock(path string) (held bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// fileLimit is RLIMIT_NOFILE of this process.
func fileLimit() (Limit, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return Limit{}, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	return Limit{Soft: r.Cur, Hard: r.Max}, nil
}

// diskSpace is the space free to unprivileged users and the size of the
// file system that holds dir.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// writable asks the kernel whether this user may write path, without
// opening it (access(2), by the real user ID, which is the effective one
// for the hub and doctor).
func writable(path string) error {
	const wOK = 2
	return syscall.Access(path, wOK)
}
