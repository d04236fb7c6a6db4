package simulate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldhub/certs"
	"fieldhub/commands"
	"fieldhub/db/dbtest"
	"fieldhub/ingest"
	"fieldhub/mqtt"
	"fieldhub/registry"
	"fieldhub/telemetry"
)

// TestRunMQTT runs a simulated device against the real broker: telemetry is
// stored, a method is answered and the reported properties arrive.
func TestRunMQTT(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := dbtest.MustOpen(t)
	dir := t.TempDir()
	cert, err := certs.Ensure(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, certs.CAFile))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tel := dbtest.Telemetry(t, store)
	pipe := ingest.New(tel, nil, ingest.Options{})
	defer pipe.Close(context.Background())
	twins := commands.NewTwins(commands.TwinsConfig{Store: store})
	b, err := mqtt.New(mqtt.Config{Addr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Store: store, Devices: registry.New(registry.Config{Store: store, Audit: store}), Ingest: pipe, Twins: twins})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	devs, err := Provision(ctx, registry.New(registry.Config{Store: store, Audit: store}), "cli", Specs("sim-", 1))
	if err != nil {
		t.Fatal(err)
	}
	port := b.Addr()[strings.LastIndexByte(b.Addr(), ':')+1:]

	var stats Stats
	done := make(chan error, 1)
	go func() {
		done <- RunMQTT(ctx, MQTTConfig{
			Addr: "localhost:" + port, Devices: devs, Interval: 20 * time.Millisecond,
			TLS: &tls.Config{RootCAs: roots, ServerName: "localhost"},
		}, &stats)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for stats.Sent.Load() < 3 || !b.Connected(devs[0].ID) {
		if time.Now().After(deadline) {
			t.Fatalf("sent %d messages (failed %d), connected %v", stats.Sent.Load(), stats.Failed.Load(), b.Connected(devs[0].ID))
		}
		time.Sleep(10 * time.Millisecond)
	}
	msgs, err := tel.Messages(ctx, devs[0].ID, telemetry.MessageFilter{Limit: 1})
	if err != nil || len(msgs) != 1 || msgs[0].ContentType != "application/json" || msgs[0].Properties["source"] != "simulator" {
		t.Errorf("stored %+v (%v), want a JSON message from the simulator", msgs, err)
	}
	var status int
	var answer json.RawMessage
	for time.Now().Before(deadline) {
		// The subscription may still be on its way.
		if status, answer, err = b.InvokeMethod(ctx, devs[0].ID, "echo", json.RawMessage(`{"delay":1}`), 5*time.Second); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || status != 200 || !strings.Contains(string(answer), `"method":"echo"`) || !strings.Contains(string(answer), `"delay":1`) {
		t.Errorf("echo answer = %d %s (%v), want 200 with the payload", status, answer, err)
	}
	// Only the methods it implements: another name is a 404 that says so
	// (the device answered 200 to any name before).
	status, answer, err = b.InvokeMethod(ctx, devs[0].ID, "selfDestruct", nil, 5*time.Second)
	if err != nil || status != 404 || !strings.Contains(string(answer), `method \"selfDestruct\" is not implemented by this device; it implements echo, ping, reboot`) {
		t.Errorf("unknown method answer = %d %s (%v), want 404 naming the methods it implements", status, answer, err)
	}
	for {
		tw, err := twins.Get(ctx, devs[0].ID)
		if err == nil && tw.Reported["firmware"] == "simulator-1.0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reported properties = %v (%v), want firmware", tw.Reported, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
