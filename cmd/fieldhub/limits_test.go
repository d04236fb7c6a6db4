package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveInProcess runs `fieldhub serve` in this process on free loopback
// ports with extra flags, until the test ends or calls stop.
func serveInProcess(t *testing.T, data string, extra ...string) *runningHub {
	t.Helper()
	dash, dev, mqttAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	h := &runningHub{dashURL: "http://" + dash, deviceURL: "https://" + dev, mqttAddr: mqttAddr,
		ca: filepath.Join(data, "tls", "ca.pem"), stderr: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := append([]string{"serve", "--data", data, "--addr", dash, "--device-addr", dev, "--mqtt-addr", mqttAddr, "--log-level", "warn"}, extra...)
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, strings.NewReader(""), &bytes.Buffer{}, h.stderr)
	}()
	h.stopInProcess = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("serve did not stop within 30s")
		}
	})
	t.Cleanup(func() {
		h.stop(t)
		if t.Failed() {
			t.Logf("fieldhub stderr:\n%s", h.stderr.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			h.stopInProcess = func() error { return err }
			t.Fatalf("serve exited early: %v\n%s", err, h.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("fieldhub did not become ready:\n%s", h.stderr.String())
		}
		resp, err := http.Get(h.dashURL + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		// The device listener opens before the dashboard's.
		return h
	}
}

// deviceData is a data folder with device dev1, a SAS token for it and a
// viewer API token.
func deviceData(t *testing.T) (data, deviceToken, viewer string) {
	t.Helper()
	data = t.TempDir()
	if _, _, err := cli(t, "", "device", "add", "--data", data, "dev1"); err != nil {
		t.Fatal(err)
	}
	out, _, err := cli(t, "", "device", "token", "--data", data, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	deviceToken = lastLine(out)
	if out, _, err = cli(t, "", "token", "create", "--data", data, "--role", "viewer", "--name", "t"); err != nil {
		t.Fatal(err)
	}
	return data, deviceToken, lastLine(out)
}

// apiGet reads an operator API path with a bearer token.
func (h *runningHub) apiGet(t *testing.T, token, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", h.dashURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestDeviceListenerHeaderLimit: the HTTPS device listener reads at most
// 64 KB of request headers. 5,000 property headers get 431 from the server
// before any handler runs, and nothing is stored.
func TestDeviceListenerHeaderLimit(t *testing.T) {
	data, token, viewer := deviceData(t)
	hub := serveInProcess(t, data)
	client := hub.deviceClient(t)

	post := func(headers int) int {
		t.Helper()
		req, _ := http.NewRequest("POST", hub.deviceURL+"/devices/dev1/messages/events", strings.NewReader(`{"t":1}`))
		req.Header.Set("Authorization", token)
		for i := range headers {
			req.Header.Set(fmt.Sprintf("iothub-app-p%04d", i), "v")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%d headers: %v", headers, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(5000); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("5,000 property headers (about 100 KB): status %d, want 431", got)
	}
	if got := post(2500); got != http.StatusNoContent {
		t.Errorf("2,500 property headers (about 50 KB): status %d, want 204", got)
	}
	b := hub.apiGet(t, viewer, "/api/v1/devices/dev1/messages")
	if n := strings.Count(b, `"enqueuedTime"`); n != 1 {
		t.Errorf("%d messages stored, want only the one within the limit:\n%.300s", n, b)
	}
}

// TestServeDeviceMsgRate: --device-msg-rate and --device-msg-burst reach
// the HTTPS device endpoint (429 with Retry-After over the rate) and the
// throttled count shows in the operator API.
func TestServeDeviceMsgRate(t *testing.T) {
	data, token, viewer := deviceData(t)
	// A rate so low that no second token comes during the test.
	hub := serveInProcess(t, data, "--device-msg-rate", "0.001", "--device-msg-burst", "2")
	client := hub.deviceClient(t)
	var statuses []int
	var retry string
	for range 3 {
		req, _ := http.NewRequest("POST", hub.deviceURL+"/devices/dev1/messages/events", strings.NewReader(`{"t":1}`))
		req.Header.Set("Authorization", token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		retry = resp.Header.Get("Retry-After")
	}
	if fmt.Sprint(statuses) != "[204 204 429]" || retry != "1000" {
		t.Errorf("statuses %v, last Retry-After %q; want [204 204 429] and 1000 (s)", statuses, retry)
	}
	if b := hub.apiGet(t, viewer, "/api/v1/devices/dev1"); !strings.Contains(b, `"throttled":{"messages":1,"connects":0}`) {
		t.Errorf("GET /api/v1/devices/dev1 = %s, want 1 throttled message", b)
	}
}
