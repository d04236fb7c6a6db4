package mqtt

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// defaultConnectTimeout bounds the TLS handshake and the CONNECT packet;
// after CONNECT mochi sets deadlines from the keep-alive.
const defaultConnectTimeout = 10 * time.Second

// listener is a mochi listener over an already bound socket, so the address
// (port 0 in tests) is known before serving. It tracks its connections and
// closes them all on Close, so shutdown never waits on a silent client.
type listener struct {
	id  string
	ln  net.Listener
	tls *tls.Config // nil: plain MQTT
	// connectTimeout bounds the TLS handshake and CONNECT (0: the default).
	connectTimeout time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	log    *slog.Logger
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return "tcp" }

func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	l.conns = map[net.Conn]struct{}{}
	return nil
}

// Serve accepts connections until the listener is closed.
func (l *listener) Serve(establish listeners.EstablishFn) {
	for {
		raw, err := l.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors and the like: wait rather than stop
			// serving for good.
			l.log.Error("accept MQTT connection", "listener", l.id, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var c net.Conn = raw
		if l.tls != nil {
			c = tls.Server(raw, l.tls)
		}
		timeout := l.connectTimeout
		if timeout <= 0 {
			timeout = defaultConnectTimeout
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = c.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		go func() {
			// The error is the reason the client left; the hooks log it.
			_ = establish(l.id, c)
			_ = c.Close()
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

// Close stops accepting, lets mochi disconnect its clients, then closes any
// connection still open (those still in handshake or CONNECT).
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	closeClients(l.id)
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
}

// closeNow closes the socket of a listener that may never have served.
func (l *listener) closeNow() {
	if l != nil {
		_ = l.ln.Close()
	}
}
