// Package netlimit bounds what network clients can hold: how many
// connections each source and each listener may have open at once, and how
// long an HTTP client may take over a request. Every Fieldhub listener
// (dashboard, HTTPS device endpoint, MQTT) accepts through it, so that no
// client, or flood of clients, can take the file descriptors the others need.
package netlimit

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Limits caps the connections a listener (or a group of listeners sharing a
// Limiter) holds at once. Zero values mean no cap.
type Limits struct {
	// Total is the most connections open at once.
	Total int
	// PerSource is the most connections open at once from one source: an
	// IPv4 address or an IPv6 /64 (one site's prefix, whose addresses a
	// single host can rotate through).
	PerSource int
	// Exempt sources (trusted proxies, which carry many clients each) count
	// toward Total only.
	Exempt []netip.Prefix
}

func (l Limits) String() string {
	limit := func(n int) string {
		if n <= 0 {
			return "no cap"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("total %s, per source %s", limit(l.Total), limit(l.PerSource))
}

// refusalLogInterval is how often refusals are logged at most, per Limiter:
// a flood must not turn into a flood of log lines.
const refusalLogInterval = time.Minute

// Limiter counts the connections of the listeners it wraps against one set
// of Limits.
type Limiter struct {
	name   string
	limits Limits
	log    *slog.Logger

	mu       sync.Mutex
	open     int
	bySource map[netip.Addr]int
	refused  int       // since the last log line
	lastLog  time.Time // of the last refusal logged
}

// New returns a Limiter named for the log (e.g. "dashboard").
func New(name string, limits Limits, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{name: name, limits: limits, log: log, bySource: map[netip.Addr]int{}}
}

// Limits returns the limits the Limiter enforces.
func (l *Limiter) Limits() Limits { return l.limits }

// Open is how many connections are open now, in total and from the source
// of addr (as counted: 0 for exempt sources).
func (l *Limiter) Open(addr netip.Addr) (total, fromSource int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.bySource[sourceOf(addr)]
}

// Wrap returns ln accepting under the Limiter: a connection over a cap is
// closed as soon as it is accepted, and running out of file descriptors
// makes Accept wait and retry instead of failing.
func (l *Limiter) Wrap(ln net.Listener) net.Listener {
	return &listener{Listener: ln, lim: l, closed: make(chan struct{})}
}

// admit counts c in, or reports which cap refuses it.
func (l *Limiter) admit(c net.Conn) (release func(), refusedBy string) {
	addr := remoteAddr(c)
	src := sourceOf(addr)
	counted := src.IsValid() && !l.exempt(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.limits.Total > 0 && l.open >= l.limits.Total:
		return nil, fmt.Sprintf("the listener's cap of %d connections", l.limits.Total)
	case counted && l.limits.PerSource > 0 && l.bySource[src] >= l.limits.PerSource:
		return nil, fmt.Sprintf("the cap of %d connections per source", l.limits.PerSource)
	}
	l.open++
	if counted {
		l.bySource[src]++
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.open--
		if counted {
			if l.bySource[src]--; l.bySource[src] <= 0 {
				delete(l.bySource, src)
			}
		}
	}, ""
}

// refuse closes a connection over a cap at once, with a reset rather than
// an orderly close, so that no TIME_WAIT is left behind for a flood.
func (l *Limiter) refuse(c net.Conn, reason string) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
	l.mu.Lock()
	l.refused++
	now := time.Now()
	if now.Sub(l.lastLog) < refusalLogInterval {
		l.mu.Unlock()
		return
	}
	n := l.refused
	l.refused, l.lastLog = 0, now
	l.mu.Unlock()
	l.log.Warn("connections refused: "+reason+" is reached; raise it with the listener's --*-max-conns flags if these clients are legitimate",
		"listener", l.name, "source", remoteAddr(c).String(), "refused", n, "since", refusalLogInterval)
}

func (l *Limiter) exempt(addr netip.Addr) bool {
	for _, p := range l.limits.Exempt {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// remoteAddr is the IP address a connection comes from (invalid for
// connections that are not TCP, which are not counted per source).
func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// sourceOf is the unit counted per source: the IPv4 address, or the /64 an
// IPv6 address belongs to.
func sourceOf(addr netip.Addr) netip.Addr {
	addr = addr.Unmap()
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().Addr()
	}
	return addr
}

// listener is a net.Listener under a Limiter.
type listener struct {
	net.Listener
	lim       *Limiter
	closed    chan struct{}
	closeOnce sync.Once
}

// Accept returns the next connection within the caps. Out of file
// descriptors (EMFILE, ENFILE), it waits, 5 ms doubling up to 1 s, and
// tries again: the connections in the backlog stay queued until descriptors
// are freed, and the loop does not spin.
func (ln *listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
				return nil, err
			}
			if delay == 0 {
				ln.lim.log.Error("out of file descriptors; accepting again once some are free", "listener", ln.lim.name, "err", err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ln.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		release, refusedBy := ln.lim.admit(c)
		if release == nil {
			ln.lim.refuse(c, refusedBy)
			continue
		}
		return &conn{Conn: c, release: release}, nil
	}
}

func (ln *listener) Close() error {
	ln.closeOnce.Do(func() { close(ln.closed) })
	return ln.Listener.Close()
}

// conn is an admitted connection; closing it frees its place.
type conn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection: net/http does it before closing
// a connection whose request body it did not read, so that the client gets
// the answer (a 413, say) rather than a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
