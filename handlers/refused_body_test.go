package handlers_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the bytes the server reads off its connections.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, read: l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// CloseWrite keeps net/http's half-close before closing a connection.
func (c countingConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// deviceServer serves the device listener's router on a listener that
// counts what the server reads.
func deviceServer(t *testing.T, h *ingestHub) (addr string, read *atomic.Int64) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h.server.DeviceRouter())
	read = new(atomic.Int64)
	srv.Listener = countingListener{Listener: srv.Listener, read: read}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), read
}

// dialSmall connects with a small, fixed send buffer, so that what the
// server does not read stays on the client's side instead of in a
// kernel buffer that loopback would grow to megabytes.
func dialSmall(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	if err := tc.SetWriteBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc
}

// TestRefusedBodyIsDrained: a client that writes its whole oversized body
// before it reads the answer (as many device stacks do) gets to finish
// writing and reads the 413 and its reason, instead of a broken pipe; a
// hostile one is cut off once the server has thrown a bounded amount away.
func TestRefusedBodyIsDrained(t *testing.T) {
	h := newIngestHub(t, nil)
	dev := h.addDevice("dev1")
	authz := token(t, "dev1", dev.PrimaryKey, time.Now().Add(time.Hour))

	t.Run("a body just over the limit", func(t *testing.T) {
		for _, size := range []int{300 << 10, 2 << 20} {
			t.Run(fmt.Sprint(size), func(t *testing.T) {
				addr, _ := deviceServer(t, h)
				c := dialSmall(t, addr)
				head := fmt.Sprintf("POST /devices/dev1/messages/events?api-version=2021-04-12 HTTP/1.1\r\nHost: hub.test\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", authz, size)
				if _, err := io.WriteString(c, head); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write([]byte(strings.Repeat("x", size))); err != nil {
					t.Fatalf("writing the %d-byte body: %v; want the server to read it so that the client can read the 413", size, err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("reading the answer: %v", err)
				}
				defer resp.Body.Close()
				var body struct{ Error string }
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					t.Fatalf("the 413's JSON: %v", err)
				}
				if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body.Error, "larger than") {
					t.Errorf("answer %d %q, want 413 saying the body is larger than the limit", resp.StatusCode, body.Error)
				}
				if !resp.Close {
					t.Errorf("Connection: %q, want close (the refused body is not worth keeping the connection for)", resp.Header.Get("Connection"))
				}
			})
		}
	})

	// A client sending a gigabyte is cut off after the bound: the server
	// neither reads nor stores the rest.
	const gigabyte = 1 << 30
	const bound = 8 << 20 // the drain's bound, the handler's limit and buffers, generously
	t.Run("a gigabyte, chunked", func(t *testing.T) {
		addr, read := deviceServer(t, h)
		c := dialSmall(t, addr)
		head := fmt.Sprintf("POST /devices/dev1/messages/events?api-version=2021-04-12 HTTP/1.1\r\nHost: hub.test\r\nAuthorization: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", authz)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("x", 64<<10)))
		sent := 0
		for sent < gigabyte {
			if _, err := c.Write(chunk); err != nil {
				break
			}
			sent += 64 << 10
		}
		if sent >= gigabyte {
			t.Fatalf("the server took the whole gigabyte")
		}
		if n := read.Load(); n > bound {
			t.Errorf("the server read %d bytes of a refused body, want at most %d", n, bound)
		}
	})
	t.Run("a gigabyte, with its Content-Length", func(t *testing.T) {
		addr, read := deviceServer(t, h)
		c := dialSmall(t, addr)
		head := fmt.Sprintf("POST /devices/dev1/messages/events?api-version=2021-04-12 HTTP/1.1\r\nHost: hub.test\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", authz, gigabyte)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		block := []byte(strings.Repeat("x", 64<<10))
		sent := 0
		for sent < gigabyte {
			if _, err := c.Write(block); err != nil {
				break
			}
			sent += len(block)
		}
		if sent >= gigabyte {
			t.Fatalf("the server took the whole gigabyte")
		}
		if n := read.Load(); n > bound {
			t.Errorf("the server read %d bytes of a refused body, want at most %d", n, bound)
		}
	})
}
