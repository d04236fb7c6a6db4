package mqtt

import (
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// WebSocketPath is where the SDKs' MqttWs transport connects:
// wss://<host>:443/$iothub/websocket, on the HTTPS device listener.
const WebSocketPath = "/$iothub/websocket"

// WebSocketHandler serves MQTT over WebSockets (subprotocol "mqtt"): the
// connection is upgraded and handed to the broker like a TLS one, with the
// same authentication, rules and shutdown. TLS is the HTTPS listener's.
func (b *Broker) WebSocketHandler() http.Handler {
	up := &websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Devices are not browsers; a page elsewhere would still need a
		// device's SAS token to get anywhere.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil) // answers the client itself on failure
		if err != nil {
			return
		}
		wc := &wsConn{Conn: ws.NetConn(), ws: ws}
		if r.TLS != nil {
			wc.peerCerts = r.TLS.PeerCertificates // X.509 devices (peerCertificates)
		}
		if !b.wsConns.push(wc) {
			ws.Close()
		}
	})
}

// wsConn is a WebSocket as the byte stream mochi reads and writes: MQTT
// packets travel in binary messages, possibly split or combined.
type wsConn struct {
	net.Conn // deadlines, addresses and Close act on the socket
	ws       *websocket.Conn
	r        io.Reader // the message being read, if any
	// peerCerts is the client certificate chain of the HTTPS connection.
	peerCerts []*x509.Certificate
	wmu       sync.Mutex
}

var errTextMessage = errors.New("websocket: MQTT travels in binary messages, got a text message")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextMessage
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// connQueue is a net.Listener fed by the WebSocket handler, so that mochi
// serves (and on shutdown closes) WebSocket clients through a listener like
// any other.
type connQueue struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands a connection to the listener; false once it is closed.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return wsAddr{} }

type wsAddr struct{}

func (wsAddr) Network() string { return "websocket" }
func (wsAddr) String() string  { return WebSocketPath }
