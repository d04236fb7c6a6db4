package netlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveHTTP serves h on loopback under t and returns its address.
func serveHTTP(t *testing.T, timeouts HTTPTimeouts, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := timeouts.Server(h, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// awaitClose reads c until the server closes it and returns what came.
func awaitClose(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && isTimeout(err) {
		t.Fatalf("the server still holds the connection after 30 s (got %q)", b)
	}
	return string(b)
}

func TestSlowBodyIsCut(t *testing.T) {
	readErr := make(chan error, 1)
	addr := serveHTTP(t, HTTPTimeouts{Header: time.Second, Body: 300 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n{}")
	awaitClose(t, c)
	if err := <-readErr; !isTimeout(err) {
		t.Errorf("the handler's read ended with %v, want a timeout", err)
	}
}

// The deadline covers the body only: a handler that has read its body, or
// has none, may take as long as it needs (direct-method calls, event
// streams) without its request being cancelled.
func TestLongHandlersKeepTheirContext(t *testing.T) {
	const body = 100 * time.Millisecond
	for _, tt := range []struct {
		name, request string
	}{
		{"after its body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"},
		{"without a body", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveHTTP(t, HTTPTimeouts{Header: time.Second, Body: body, Idle: time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := io.ReadAll(r.Body); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				select {
				case <-r.Context().Done():
					http.Error(w, "cancelled", http.StatusInternalServerError)
				case <-time.After(5 * body):
					fmt.Fprint(w, "still here")
				}
			}))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprint(c, tt.request)
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "still here" {
				t.Errorf("answer %d %q, want 200 still here", resp.StatusCode, b)
			}
		})
	}
}

func TestSilentAndIdleConnectionsAreClosed(t *testing.T) {
	addr := serveHTTP(t, HTTPTimeouts{Header: 200 * time.Millisecond, Body: time.Second, Idle: 200 * time.Millisecond},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	for _, tt := range []struct{ name, send, want string }{
		{"silent", "", ""},
		{"half a header", "GET / HTTP/1.1\r\nHost: x\r\n", ""},
		{"idle after a request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "200 OK"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprint(c, tt.send)
			if got := awaitClose(t, c); !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
