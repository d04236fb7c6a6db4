package mqtt

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"fieldhub/netlimit"
)

// awaitServerClose reads c until the hub closes it. The bound is generous
// (the tests set deadlines well under a second), yet shorter than the 30 s
// the hub used to wait for CONNECT.
func awaitServerClose(t *testing.T, what string, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: the hub still holds the connection after 20 s", what)
	}
}

// TestConnectDeadline: a connection that does not complete its TLS
// handshake and CONNECT in time is closed, on every listener, and devices
// that do connect outlive the deadline.
func TestConnectDeadline(t *testing.T) {
	dial := func(t *testing.T, addr string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("silent connections", func(t *testing.T) {
		// Nothing here has to happen within the deadline, so it can be short.
		h := newTestHub(t, func(c *Config) {
			c.PlainAddr = "127.0.0.1:0"
			c.ConnectTimeout = 300 * time.Millisecond
		})
		mux := http.NewServeMux()
		mux.Handle(WebSocketPath, h.broker.WebSocketHandler())
		ws := httptest.NewUnstartedServer(mux)
		ws.TLS = &tls.Config{Certificates: []tls.Certificate{h.cert}}
		ws.StartTLS()
		defer ws.Close()

		silentTLS := dial(t, h.broker.Addr())
		silentPlain := dial(t, h.broker.PlainAddr())
		// The upgrade is the HTTPS server's; the deadline starts when the
		// broker takes the WebSocket over.
		wsDialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: h.roots, ServerName: "localhost"}, Subprotocols: []string{"mqtt"}}
		wsConn, _, err := wsDialer.Dial("wss://"+strings.TrimPrefix(ws.URL, "https://")+WebSocketPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer wsConn.Close()

		awaitServerClose(t, "TLS, no handshake", silentTLS)
		awaitServerClose(t, "plain, no CONNECT", silentPlain)
		awaitServerClose(t, "WebSocket, no CONNECT", wsConn.NetConn())
	})
	t.Run("after the handshake", func(t *testing.T) {
		// These clients must finish their handshake, and the device its
		// CONNECT, within the deadline: it is generous, as the default
		// (10 s) is, for a loaded machine. 300 ms cut the device off now
		// and then ("connect dev1: EOF").
		h := newTestHub(t, func(c *Config) { c.ConnectTimeout = 3 * time.Second })
		d := h.connect(h.device("dev1"))
		// Accepted after the device: once the hub closes it, the device's
		// own connect deadline has passed too.
		handshaken, err := tls.Dial("tcp", h.broker.Addr(), &tls.Config{RootCAs: h.roots, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer handshaken.Close()
		awaitServerClose(t, "TLS, no CONNECT", handshaken)

		tok := d.publish(t, "devices/dev1/messages/events/", 1, `{"n":1}`)
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish after the connect deadline: no PUBACK (%v)", tok.Error())
		}
	})
}

// TestConnectionCaps: one source holding its cap of sockets gets no more,
// while another source still connects.
func TestConnectionCaps(t *testing.T) {
	h := newTestHub(t, func(c *Config) {
		c.Limits = netlimit.Limits{PerSource: 3}
		c.ConnectTimeout = time.Minute // the held sockets stay for the test
	})
	from := func(src string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		return d.Dial("tcp", h.broker.Addr())
	}
	for i := range 3 {
		c, err := from("127.0.0.2")
		if err != nil {
			t.Fatalf("socket %d of 3: %v", i+1, err)
		}
		defer c.Close()
		// A completed handshake shows the socket was admitted.
		tc := tls.Client(c, &tls.Config{RootCAs: h.roots, ServerName: "localhost"})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("socket %d of 3 within the cap: handshake: %v", i+1, err)
		}
	}
	c, err := from("127.0.0.2")
	if err == nil {
		defer c.Close()
		awaitServerClose(t, "fourth socket from one source", c)
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	// Another source (paho dials from 127.0.0.1).
	h.connect(h.device("dev1"))
}
