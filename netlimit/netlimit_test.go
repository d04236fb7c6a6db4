package netlimit

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoServer accepts through lim and echoes every connection, until the test ends.
func echoServer(t *testing.T, lim *Limiter) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := lim.Wrap(raw)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return raw.Addr().String()
}

// dialFrom connects to addr from the loopback address src (127.0.0.0/8 is
// all local on Linux, so each address is a separate source). A refusal can
// come back as a reset of the connect itself; then the connection is nil.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// served reports whether the server echoes on c: true once it echoed, false
// once it closed c. The generous deadline only bounds a broken test.
func served(t *testing.T, c net.Conn) bool {
	t.Helper()
	if c == nil {
		return false
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false
	}
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	if err != nil && isTimeout(err) {
		t.Fatalf("the server neither answered nor closed the connection from %s", c.LocalAddr())
	}
	return err == nil && string(buf) == "ping"
}

// waitOpen waits until lim counts total open connections.
func waitOpen(t *testing.T, lim *Limiter, total int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, _ := lim.Open(netip.Addr{}); n == total {
			return
		}
		if time.Now().After(deadline) {
			n, _ := lim.Open(netip.Addr{})
			t.Fatalf("%d connections open, want %d", n, total)
		}
	}
}

func TestPerSourceCap(t *testing.T) {
	lim := New("test", Limits{PerSource: 3}, nil)
	addr := echoServer(t, lim)
	var first []net.Conn
	for i := range 3 {
		c := dialFrom(t, "127.0.0.2", addr)
		if !served(t, c) {
			t.Fatalf("connection %d of 3 from 127.0.0.2 was refused", i+1)
		}
		first = append(first, c)
	}
	for i := range 2 {
		if served(t, dialFrom(t, "127.0.0.2", addr)) {
			t.Fatalf("connection %d over the cap from 127.0.0.2 was served", i+1)
		}
	}
	if !served(t, dialFrom(t, "127.0.0.3", addr)) {
		t.Fatal("another source was refused while 127.0.0.2 was at its cap")
	}
	for i, c := range first {
		if !served(t, c) {
			t.Errorf("connection %d within the cap was closed", i+1)
		}
	}
	// A closed connection frees its place.
	first[0].Close()
	waitOpen(t, lim, 3)
	if !served(t, dialFrom(t, "127.0.0.2", addr)) {
		t.Error("127.0.0.2 was refused after closing one of its connections")
	}
}

func TestTotalCap(t *testing.T) {
	lim := New("test", Limits{Total: 2, PerSource: 10}, nil)
	addr := echoServer(t, lim)
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		if !served(t, dialFrom(t, src, addr)) {
			t.Fatalf("%s refused below the total cap", src)
		}
	}
	if served(t, dialFrom(t, "127.0.0.4", addr)) {
		t.Error("a third connection was served over a total cap of 2")
	}
}

func TestExemptSourceCountsTowardTotalOnly(t *testing.T) {
	lim := New("test", Limits{Total: 5, PerSource: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, nil)
	addr := echoServer(t, lim)
	for i := range 3 {
		if !served(t, dialFrom(t, "127.0.0.2", addr)) {
			t.Fatalf("connection %d from the exempt proxy was refused", i+1)
		}
	}
	if !served(t, dialFrom(t, "127.0.0.3", addr)) {
		t.Fatal("first connection from 127.0.0.3 refused")
	}
	if served(t, dialFrom(t, "127.0.0.3", addr)) {
		t.Error("second connection from 127.0.0.3 served over a per-source cap of 1")
	}
	if !served(t, dialFrom(t, "127.0.0.2", addr)) {
		t.Fatal("fifth connection (exempt) refused below the total cap")
	}
	if served(t, dialFrom(t, "127.0.0.2", addr)) {
		t.Error("sixth connection served over a total cap of 5: exempt sources count toward the total")
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct{ a, b string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"},
	}
	for _, tt := range tests {
		if got, want := sourceOf(netip.MustParseAddr(tt.a)), netip.MustParseAddr(tt.b); got != want {
			t.Errorf("sourceOf(%s) = %s, want %s", tt.a, got, want)
		}
	}
	if sourceOf(netip.MustParseAddr("2001:db8:1:2::1")) == sourceOf(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two IPv6 /64s count as one source")
	}
}

func TestRefusalsAreLoggedOncePerInterval(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	lim := New("test", Limits{PerSource: 1}, log)
	addr := echoServer(t, lim)
	served(t, dialFrom(t, "127.0.0.2", addr))
	for range 5 {
		if served(t, dialFrom(t, "127.0.0.2", addr)) {
			t.Fatal("served over the cap")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "connections refused"); n != 1 {
		t.Errorf("%d log lines for 5 refusals, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "per source") {
		t.Errorf("the log does not say which cap refused:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// fdExhausted is a listener that fails with EMFILE a number of times
// before accepting, as a process out of file descriptors does.
type fdExhausted struct {
	mu       sync.Mutex
	failures int
	calls    int
	closed   chan struct{}
}

func (l *fdExhausted) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	fail := l.calls <= l.failures
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *fdExhausted) Close() error   { close(l.closed); return nil }
func (l *fdExhausted) Addr() net.Addr { return &net.TCPAddr{} }

func TestAcceptWaitsOutFileDescriptorExhaustion(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	fake := &fdExhausted{failures: 4, closed: make(chan struct{})}
	ln := New("test", Limits{}, slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))).Wrap(fake)
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	// Accept keeps waiting through the failures, then blocks in the fifth call.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		fake.mu.Lock()
		calls := fake.calls
		fake.mu.Unlock()
		if calls == 5 {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("Accept returned %v after %d calls; want it to wait out EMFILE", err, calls)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Accept made %d calls, want 5", calls)
		}
	}
	ln.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "out of file descriptors"); n != 1 {
		t.Errorf("%d log lines for one episode of EMFILE, want 1:\n%s", n, logs.String())
	}
}

func TestCloseDuringBackOff(t *testing.T) {
	fake := &fdExhausted{failures: 1 << 30, closed: make(chan struct{})}
	ln := New("test", Limits{}, nil).Wrap(fake)
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	ln.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept = %v, want net.ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Accept still waiting 20 s after Close")
	}
}
