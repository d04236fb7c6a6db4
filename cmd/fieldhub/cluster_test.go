package main

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"fieldhub/bus/bustest"
)

// Two hubs started as serve starts them, joined by --bus: an operator's
// stream on B shows, live, the MQTT connection and the telemetry of a
// device connected to A. (Each has its own data folder here; instances
// that route commands to each other share a PostgreSQL store.)
func TestServeJoinsBus(t *testing.T) {
	nats := bustest.Start(t)
	a := startServe(t, []string{"--bus", nats.URL(), "--node", "a"}, nil)
	b := startServe(t, []string{"--bus", nats.URL(), "--node", "b"}, nil)
	if !strings.Contains(a.logs.String(), "bus connected to NATS") || !strings.Contains(b.logs.String(), "node=b") {
		t.Fatalf("the hubs do not say they joined the bus:\n%s\n%s", a.logs.String(), b.logs.String())
	}
	out, _, err := cli(t, "", "token", "create", "--data", b.data, "--role", "viewer", "--name", "watch")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.url+"/api/v1/devices/dev1/events", nil)
	req.Header.Set("Authorization", "Bearer "+lastLine(out))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("B's device stream: status %d", resp.StatusCode)
	}

	a.publishMQTT(t, "") // dev1 connects to A and sends {"t":2}
	seen := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !(seen["connection"] && seen["message"]) {
		if typ, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			seen[typ] = true
		}
	}
	if !seen["connection"] || !seen["message"] {
		t.Errorf("B's stream saw %v, want A's device's connection and message", seen)
	}
}

// A hub whose bus cannot be reached does not start, and says why.
func TestServeRefusesUnreachableBus(t *testing.T) {
	_, _, err := cli(t, "", "serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--mqtt-addr", "", "--bus", "nats://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "connect to NATS at nats://127.0.0.1:1") {
		t.Errorf("serve with an unreachable bus = %v, want a refusal naming the server", err)
	}
}
