package auth

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable time for throttle tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestThrottle(c *clock, maxEntries int) *Throttle {
	return NewThrottle(ThrottleConfig{Now: c.now, MaxEntries: maxEntries})
}

// TestThrottleReservesBeforeChecking: 200 parallel wrong guesses for one user
// from one address once got 182 bcrypt checks, because the throttle checked,
// hashed, then recorded. Attempts are reserved first now.
func TestThrottleReservesBeforeChecking(t *testing.T) {
	c := &clock{time.Unix(1_000_000, 0)}
	th := newTestThrottle(c, 0)
	hash, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	checker := NewPasswordChecker(4, time.Minute)
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range 200 {
		wg.Go(func() {
			a, wait := th.Reserve("alice", "10.0.0.1")
			if a == nil {
				if wait <= 0 {
					t.Errorf("refused with wait %v, want a positive wait", wait)
				}
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			if err := checker.Check(context.Background(), hash, "wrong guess"); err != ErrBadPassword {
				t.Errorf("check = %v, want ErrBadPassword", err)
			}
			a.Fail()
		})
	}
	wg.Wait()
	if got := checker.Checks(); got != 5 || refused != 195 {
		t.Errorf("%d bcrypt checks, %d refused; want 5 and 195", got, refused)
	}
	// The window is 15 minutes from the guesses: one second before, still refused.
	c.t = c.t.Add(15*time.Minute - time.Second)
	if a, wait := th.Reserve("ALICE", "10.9.9.9"); a != nil || wait != time.Second {
		t.Errorf("alice from another address a second before the window ends: attempt %v, wait %v; want refused for 1s", a != nil, wait)
	}
	c.t = c.t.Add(time.Second)
	if a, _ := th.Reserve("alice", "10.0.0.1"); a == nil {
		t.Error("alice still refused after the window")
	}
}

func TestThrottleBudgets(t *testing.T) {
	c := &clock{time.Unix(1_000_000, 0)}
	th := newTestThrottle(c, 0)
	guess := func(user, addr string) (ok bool, wait time.Duration) {
		a, wait := th.Reserve(user, addr)
		if a == nil {
			return false, wait
		}
		a.Fail()
		return true, 0
	}
	t.Run("per user, sliding window, case-folded", func(t *testing.T) {
		for i := range 5 {
			if ok, _ := guess([]string{"bob", "Bob", "BOB"}[i%3], "10.0.1."+strconv.Itoa(i)); !ok {
				t.Fatalf("guess %d refused", i+1)
			}
			c.t = c.t.Add(time.Minute)
		}
		// Guesses at 0..4 min; now is 5 min: the first leaves the window at 15.
		if ok, wait := guess("bob", "10.0.2.1"); ok || wait != 10*time.Minute {
			t.Errorf("6th guess: ok=%v wait=%v, want refused for 10m", ok, wait)
		}
		c.t = c.t.Add(10 * time.Minute)
		if ok, _ := guess("bob", "10.0.2.1"); !ok {
			t.Error("refused after the oldest guess left the window")
		}
		if ok, wait := guess("bob", "10.0.2.1"); ok || wait != time.Minute {
			t.Errorf("next guess: ok=%v wait=%v, want refused for 1m", ok, wait)
		}
	})
	t.Run("per address, many usernames", func(t *testing.T) {
		for i := range 20 {
			if ok, _ := guess("user"+strconv.Itoa(i), "10.0.3.1"); !ok {
				t.Fatalf("guess %d for a new username refused", i+1)
			}
		}
		if ok, wait := guess("someone-else", "10.0.3.1"); ok || wait != 15*time.Minute {
			t.Errorf("21st username from one address: ok=%v wait=%v, want refused for 15m", ok, wait)
		}
		if ok, _ := guess("someone-else", "10.0.3.2"); !ok {
			t.Error("another address was refused")
		}
	})
	t.Run("IPv6 by /64", func(t *testing.T) {
		for i := range 20 {
			if ok, _ := guess("v6user"+strconv.Itoa(i), "2001:db8:1:2::"+strconv.FormatInt(int64(i+1), 16)); !ok {
				t.Fatalf("guess %d refused", i+1)
			}
		}
		if ok, _ := guess("v6other", "2001:db8:1:2:ffff::1"); ok {
			t.Error("another address of the same /64 was not refused")
		}
		if ok, _ := guess("v6other", "2001:db8:1:3::1"); !ok {
			t.Error("an address of another /64 was refused")
		}
	})
	t.Run("success forgets the username's guesses, not the address's", func(t *testing.T) {
		for range 4 {
			guess("carol", "10.0.4.1")
		}
		a, _ := th.Reserve("carol", "10.0.4.1")
		a.Succeed()
		a.Fail() // after Succeed: nothing
		for i := range 5 {
			if ok, _ := guess("carol", "10.0.4."+strconv.Itoa(i+2)); !ok {
				t.Fatalf("guess %d after a success refused", i+1)
			}
		}
		for range 16 { // with carol's 4: the address's 20
			guess("x"+strconv.Itoa(rand.Int()), "10.0.4.1")
		}
		if ok, _ := guess("dave", "10.0.4.1"); ok {
			t.Error("the address's failures were forgotten by a success")
		}
	})
	t.Run("release does not count", func(t *testing.T) {
		for range 50 {
			a, _ := th.Reserve("erin", "10.0.5.1")
			if a == nil {
				t.Fatal("released attempts were counted")
			}
			a.Release()
		}
	})
}

// TestThrottleMemoryBound: the throttle once grew one entry per username
// tried, cleaned only past 10,000 entries of a day's age. Now the entries
// are capped, and attempts in flight are never forgotten.
func TestThrottleMemoryBound(t *testing.T) {
	c := &clock{time.Unix(1_000_000, 0)}
	const limit = 1000
	th := newTestThrottle(c, limit)
	held, _ := th.Reserve("victim", "192.0.2.1")
	if held == nil {
		t.Fatal("first attempt refused")
	}
	for i := range 100_000 {
		a, _ := th.Reserve("user-"+strconv.Itoa(i), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String())
		if a == nil {
			t.Fatalf("attempt %d refused", i)
		}
		a.Fail()
		if n, m := len(th.users.entries), len(th.addrs.entries); n > limit || m > limit || th.users.lru.Len() != n || th.addrs.lru.Len() != m {
			t.Fatalf("after %d usernames: %d users, %d addresses remembered; want at most %d each", i+1, n, m, limit)
		}
	}
	if th.users.entries["victim"] == nil || th.addrs.entries["192.0.2.1"] == nil {
		t.Error("an attempt in flight was forgotten")
	}
	held.Release()

	// Every entry in flight: a new one cannot be made, so it is refused.
	small := newTestThrottle(c, 2)
	a1, _ := small.Reserve("a", "10.1.0.1")
	a2, _ := small.Reserve("b", "10.1.0.2")
	if a, wait := small.Reserve("c", "10.1.0.3"); a != nil || wait != time.Second {
		t.Errorf("full of attempts in flight: attempt %v, wait %v; want refused for 1s", a != nil, wait)
	}
	a1.Release()
	a2.Release()
	if a, _ := small.Reserve("c", "10.1.0.3"); a == nil {
		t.Error("refused after the attempts in flight ended")
	}
}

func TestNormalizeAndAddressKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{" Alice ", "alice"},
		{strings.Repeat("A", 100), strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		if got := NormalizeUsername(tt.in); got != tt.want {
			t.Errorf("NormalizeUsername(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	addrs := []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8::1", "2001:db8::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
		{strings.Repeat("x", 100), strings.Repeat("x", 64)},
	}
	for _, tt := range addrs {
		if got := AddressKey(tt.in); got != tt.want {
			t.Errorf("AddressKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPasswordCheckerBoundsWork: no more checks run at once than slots; a
// check that finds none free within the wait gets ErrBusy.
func TestPasswordCheckerBoundsWork(t *testing.T) {
	p := NewPasswordChecker(2, time.Millisecond)
	p.slots <- struct{}{}
	p.slots <- struct{}{}
	if err := p.Check(context.Background(), "", "x"); err != ErrBusy {
		t.Errorf("all slots taken: %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewPasswordChecker(1, time.Hour).Check(ctx, "", "x"); err == nil || p.Checks() != 0 {
		t.Errorf("cancelled request: %v after %d checks, want its context's error and no check", err, p.Checks())
	}
	<-p.slots
	if err := p.Check(context.Background(), "", "x"); err != ErrBadPassword || p.Checks() != 1 {
		t.Errorf("unknown user's check = %v after %d checks, want ErrBadPassword after 1", err, p.Checks())
	}
}

// TestPasswordRules: "password" and "12345678" were accepted. New passwords
// need 10 characters and must not be one of the 10,000 most common.
func TestPasswordRules(t *testing.T) {
	if n := len(commonPasswords()); n != 10_000 {
		t.Errorf("common password list has %d entries, want 10,000", n)
	}
	tests := []struct {
		password string
		want     string // "" = accepted
	}{
		{"password", "at least 10 characters"},
		{"12345678", "at least 10 characters"},
		{"ÄÖÜäöüßéè", "at least 10 characters"}, // 9 characters, 18 bytes
		{"1234567890", "10,000 most common"},
		{"QwertyUiop", "10,000 most common"},
		{"password123", "10,000 most common"},
		{"manchester", "10,000 most common"},
		{strings.Repeat("x", 73), "at most 72 bytes"},
		{"ÄÖÜäöüßéèê", ""},
		{"correct horse", ""},
		{"password-root", ""},
		{NewPassword(), ""}, // the first admin's
	}
	for _, tt := range tests {
		err := CheckPasswordRules(tt.password)
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckPasswordRules(%q) = %v, want %q", tt.password, err, tt.want)
		}
		if _, herr := HashPassword(tt.password); (herr == nil) != (err == nil) {
			t.Errorf("HashPassword(%q) = %v, CheckPasswordRules = %v; want the same verdict", tt.password, herr, err)
		}
	}
}

func TestPassword(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, "correct horse"); err != nil {
		t.Errorf("right password refused: %v", err)
	}
	if err := CheckPassword(h, "wrong horse"); err != ErrBadPassword {
		t.Errorf("wrong password: %v", err)
	}
}
