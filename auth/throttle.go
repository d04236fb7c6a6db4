package auth

import (
	"container/list"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ThrottleConfig sets a Throttle's limits; zero values take the defaults.
type ThrottleConfig struct {
	Now func() time.Time
	// Window is how long a wrong guess counts (default 15 minutes).
	Window time.Duration
	// PerUser is how many wrong guesses a username gets within Window, from
	// anywhere (default 5); PerAddress how many a client address gets, for
	// any usernames (default 20).
	PerUser    int
	PerAddress int
	// MaxEntries bounds the usernames and, separately, the addresses
	// remembered (default 10,000 each); past it the least recently used
	// entry without an attempt in flight is forgotten.
	MaxEntries int
}

// Throttle limits password guessing per username and per client address. An
// attempt is reserved before the password is checked, atomically against
// both budgets, so parallel guesses cannot all pass the check before the
// first failure is counted; the reservation becomes a failure, or is
// released, once the check is done.
type Throttle struct {
	mu    sync.Mutex
	now   func() time.Time
	users *failureLog
	addrs *failureLog
}

// NewThrottle builds a Throttle.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Minute
	}
	if cfg.PerUser <= 0 {
		cfg.PerUser = 5
	}
	if cfg.PerAddress <= 0 {
		cfg.PerAddress = 20
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 10_000
	}
	return &Throttle{
		now:   cfg.Now,
		users: newFailureLog(cfg.PerUser, cfg.Window, cfg.MaxEntries),
		addrs: newFailureLog(cfg.PerAddress, cfg.Window, cfg.MaxEntries),
	}
}

// Attempt is a reserved login attempt. Exactly one of Fail, Succeed or
// Release should follow; later calls do nothing.
type Attempt struct {
	t          *Throttle
	user, addr string
	done       bool
}

// Reserve takes an attempt from the budgets of username and of the client
// address. When either is spent it returns nil and how long until an
// attempt frees up. Usernames are case-folded and cut (NormalizeUsername),
// IPv6 addresses grouped by /64 (AddressKey).
func (t *Throttle) Reserve(username, address string) (*Attempt, time.Duration) {
	user, addr := NormalizeUsername(username), AddressKey(address)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	wait := max(t.users.wait(user, now), t.addrs.wait(addr, now))
	if wait > 0 {
		return nil, wait
	}
	if !t.users.reserve(user, now) {
		return nil, time.Second
	}
	if !t.addrs.reserve(addr, now) {
		t.users.release(user, false)
		return nil, time.Second
	}
	return &Attempt{t: t, user: user, addr: addr}, 0
}

// Fail counts the attempt as a wrong guess against both budgets.
func (a *Attempt) Fail() {
	a.end(func(now time.Time) {
		a.t.users.fail(a.user, now)
		a.t.addrs.fail(a.addr, now)
	})
}

// Succeed releases the attempt and forgets the username's wrong guesses;
// the address keeps its own, so that signing in to one account does not
// buy more guesses at others.
func (a *Attempt) Succeed() {
	a.end(func(time.Time) {
		a.t.users.release(a.user, true)
		a.t.addrs.release(a.addr, false)
	})
}

// Release gives the attempt back without counting it: the password was
// never checked (the hub was busy, the client went away).
func (a *Attempt) Release() {
	a.end(func(time.Time) {
		a.t.users.release(a.user, false)
		a.t.addrs.release(a.addr, false)
	})
}

// end runs fn under the throttle's lock for the first of Fail, Succeed and
// Release only.
func (a *Attempt) end(fn func(now time.Time)) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	fn(a.t.now())
}

// NormalizeUsername is the throttle's key for a username: usernames are
// unique regardless of letter case, and a key never outgrows a username.
func NormalizeUsername(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// AddressKey is the throttle's key for a client address: the address
// itself for IPv4, its /64 network for IPv6 (one host commonly holds a whole
// /64, so single IPv6 addresses cost an attacker nothing).
func AddressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		if len(ip) > 64 {
			ip = ip[:64]
		}
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}

// failureLog keeps, per key, the times of the wrong guesses within the
// window (at most limit of them) and the attempts in flight, in a map
// bounded by maxEntries with least-recently-used eviction.
type failureLog struct {
	limit      int
	window     time.Duration
	maxEntries int
	entries    map[string]*list.Element // of *failures
	lru        *list.List               // front: most recently used
}

type failures struct {
	key     string
	times   []time.Time // oldest first, within the window
	pending int
}

func newFailureLog(limit int, window time.Duration, maxEntries int) *failureLog {
	return &failureLog{limit: limit, window: window, maxEntries: maxEntries,
		entries: map[string]*list.Element{}, lru: list.New()}
}

// expire drops the guesses that left the window and tells whether f is
// now empty.
func (l *failureLog) expire(f *failures, now time.Time) bool {
	i := 0
	for i < len(f.times) && now.Sub(f.times[i]) >= l.window {
		i++
	}
	f.times = f.times[i:]
	return len(f.times) == 0 && f.pending == 0
}

// wait is how long key must wait for an attempt: 0 when it has one now.
func (l *failureLog) wait(key string, now time.Time) time.Duration {
	el := l.entries[key]
	if el == nil {
		return 0
	}
	f := el.Value.(*failures)
	if l.expire(f, now) {
		l.remove(el)
		return 0
	}
	if len(f.times)+f.pending < l.limit {
		return 0
	}
	if len(f.times) < l.limit {
		// Held by attempts in flight, which end within a password check.
		return time.Second
	}
	return f.times[len(f.times)-l.limit].Add(l.window).Sub(now)
}

// reserve counts an attempt in flight for key; it fails only when the
// log is full of entries with attempts in flight.
func (l *failureLog) reserve(key string, now time.Time) bool {
	if el := l.entries[key]; el != nil {
		el.Value.(*failures).pending++
		l.lru.MoveToFront(el)
		return true
	}
	if len(l.entries) >= l.maxEntries && !l.evict() {
		return false
	}
	l.entries[key] = l.lru.PushFront(&failures{key: key, pending: 1})
	return true
}

// evict forgets the least recently used entry without attempts in flight.
func (l *failureLog) evict() bool {
	for el := l.lru.Back(); el != nil; el = el.Prev() {
		if f := el.Value.(*failures); f.pending == 0 {
			l.remove(el)
			return true
		}
	}
	return false
}

func (l *failureLog) fail(key string, now time.Time) {
	el := l.entries[key]
	if el == nil {
		return
	}
	f := el.Value.(*failures)
	f.pending--
	f.times = append(f.times, now)
	if len(f.times) > l.limit {
		f.times = append(f.times[:0], f.times[len(f.times)-l.limit:]...)
	}
	l.lru.MoveToFront(el)
}

// release ends an attempt in flight without a failure; forget also drops
// the key's earlier failures.
func (l *failureLog) release(key string, forget bool) {
	el := l.entries[key]
	if el == nil {
		return
	}
	f := el.Value.(*failures)
	f.pending--
	if forget {
		f.times = nil
	}
	if len(f.times) == 0 && f.pending == 0 {
		l.remove(el)
	}
}

func (l *failureLog) remove(el *list.Element) {
	delete(l.entries, el.Value.(*failures).key)
	l.lru.Remove(el)
}
