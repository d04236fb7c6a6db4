package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localHub is `fieldhub serve` run in-process through run, on free ports,
// with its log in a buffer the test can read.
type localHub struct {
	dashURL   string
	deviceURL string
	mqttAddr  string
	ca        string
	stderr    *syncBuffer
	cancel    context.CancelFunc
	done      chan error
	stopped   bool
}

// startLocalHub starts serve on data and waits until it is ready; it is
// stopped at cleanup unless the test stopped it.
func startLocalHub(t *testing.T, data string, extra ...string) *localHub {
	t.Helper()
	dash, dev, mqttAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	h := &localHub{
		dashURL: "http://" + dash, deviceURL: "https://" + dev, mqttAddr: mqttAddr,
		ca: filepath.Join(data, "tls", "ca.pem"), stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1),
	}
	args := append([]string{"serve", "--data", data, "--addr", dash, "--device-addr", dev, "--mqtt-addr", mqttAddr}, extra...)
	go func() {
		h.done <- run(ctx, args, func(string) string { return "" }, strings.NewReader(""), &syncBuffer{}, h.stderr)
	}()
	t.Cleanup(func() {
		h.stop(t)
		if t.Failed() {
			t.Logf("fieldhub serve log:\n%s", h.stderr.String())
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-h.done:
			h.stopped = true
			t.Fatalf("serve exited while starting: %v\n%s", err, h.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not become ready:\n%s", h.stderr.String())
		}
		if strings.Contains(h.stderr.String(), "Fieldhub dashboard:") {
			return h
		}
	}
}

// stop cancels serve and waits for it to return.
func (h *localHub) stop(t *testing.T) {
	t.Helper()
	if h.stopped {
		return
	}
	h.stopped = true
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop within 60s of cancel")
	}
}

// readyz returns the status and body of GET /readyz.
func (h *localHub) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(h.dashURL + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// deviceClient trusts the hub's generated CA.
func (h *localHub) deviceClient(t *testing.T) *http.Client {
	t.Helper()
	r := &runningHub{ca: h.ca}
	return r.deviceClient(t)
}
