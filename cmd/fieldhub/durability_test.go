package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"fieldhub/internal/pgtest"
	"fieldhub/internal/testkit"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestDurabilityUnderKill runs the real binary, sends telemetry from
// concurrent devices, kills the process with SIGKILL in the middle of the
// load, restarts it and checks that every message that was acknowledged (a
// 204 over HTTPS, a PUBACK over MQTT) is stored, and that its readings were
// rebuilt exactly once.
func TestDurabilityUnderKill(t *testing.T) {
	testkit.Slow(t, "builds the binary and kills it under load, over HTTPS and MQTT")
	for _, tt := range []struct {
		name string
		send sender
	}{
		{"https", sendHTTPS},
		{"mqtt", sendMQTT},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testDurabilityUnderKill(t, tt.send, "")
		})
	}
}

// TestDurabilityUnderKillPostgres is TestDurabilityUnderKill with the hub's
// state in PostgreSQL (serve --store): the 204s and PUBACKs come after
// PostgreSQL's commit, and recovery replays the log from there.
func TestDurabilityUnderKillPostgres(t *testing.T) {
	testkit.Slow(t, "starts PostgreSQL, builds the binary and kills it under load, over HTTPS and MQTT")
	srv := pgtest.Start(t, pgtest.Options{})
	for _, tt := range []struct {
		name string
		send sender
	}{
		{"https", sendHTTPS},
		{"mqtt", sendMQTT},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testDurabilityUnderKill(t, tt.send, srv.Database(t))
		})
	}
}

// sender sends messages of device d as client c until stop is set,
// calling acked with the id of each message the hub acknowledged.
type sender func(t *testing.T, hub *runningHub, d, token string, c int, stop *atomic.Bool, acked func(id string))

// testDurabilityUnderKill runs the test on the hub's default store, or
// with --store when store (a PostgreSQL URL) is set.
func testDurabilityUnderKill(t *testing.T, send sender, store string) {
	bin := buildBinary(t)
	data := t.TempDir()
	at := []string{"--data", data}
	if store != "" {
		at = append(at, "--store", store)
	}
	cli := func(args ...string) string { return runCLI(t, bin, append(args, at...)...) }
	devices := []string{"dur-1", "dur-2", "dur-3", "dur-4"}
	for _, d := range devices {
		cli("device", "add", d)
	}
	viewer := lastLine(cli("token", "create", "--role", "viewer", "--name", "durability"))

	serve := at[2:]
	if store != "" {
		// The instance's name, as in any deployment, is stable across the
		// restart: its node's log is its own to replay (the default, host
		// name and port, changes with this test's free ports).
		serve = append(serve, "--node", "durability")
	}
	hub := startHub(t, bin, data, serve...)
	tokens := map[string]string{}
	for _, d := range devices {
		tokens[d] = lastLine(cli("device", "token", d))
	}

	var (
		mu     sync.Mutex
		acked  = map[string]map[string]bool{} // device -> message ids acknowledged
		count  atomic.Int64
		stop   atomic.Bool
		wg     sync.WaitGroup
		perDev = 2 // clients per device
	)
	for _, d := range devices {
		acked[d] = map[string]bool{}
		for c := range perDev {
			wg.Add(1)
			go func() {
				defer wg.Done()
				send(t, hub, d, tokens[d], c, &stop, func(id string) {
					mu.Lock()
					acked[d][id] = true
					mu.Unlock()
					count.Add(1)
				})
			}()
		}
	}
	// Kill once a fair amount has been acknowledged, while messages are in flight.
	for deadline := time.Now().Add(60 * time.Second); count.Load() < 400 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := hub.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	hub.cmd.Wait()
	stop.Store(true)
	wg.Wait()
	if count.Load() < 400 {
		t.Fatalf("only %d messages acknowledged before the kill", count.Load())
	}
	t.Logf("%d messages acknowledged before SIGKILL", count.Load())

	hub = startHub(t, bin, data, serve...)
	api := &http.Client{Timeout: 30 * time.Second}
	getJSON := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", hub.dashURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+viewer)
		resp, err := api.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	// stored reads every message of each device, and checks that each has
	// exactly one reading of seq: the open chunks were rebuilt from the
	// log, nothing doubled or dropped.
	stored := func() map[string]map[string]bool {
		all := map[string]map[string]bool{}
		for _, d := range devices {
			all[d] = map[string]bool{}
			path := "/api/v1/devices/" + d + "/messages?limit=1000"
			for {
				var page struct {
					Messages []struct{ MessageID string }
					Next     int64
				}
				getJSON(path, &page)
				for _, m := range page.Messages {
					all[d][m.MessageID] = true
				}
				if page.Next == 0 {
					break
				}
				path = fmt.Sprintf("/api/v1/devices/%s/messages?limit=1000&before=%d", d, page.Next)
			}
			var readings struct{ Buckets []struct{ Count int } }
			getJSON(fmt.Sprintf("/api/v1/devices/%s/readings?metric=seq&from=0&to=%d&points=1", d, time.Now().Add(time.Hour).UnixMilli()), &readings)
			n := 0
			for _, b := range readings.Buckets {
				n += b.Count
			}
			if n != len(all[d]) {
				t.Errorf("%s: %d readings of seq for %d stored messages", d, n, len(all[d]))
			}
		}
		return all
	}
	afterKill := stored()
	for _, d := range devices {
		lost := 0
		for id := range acked[d] {
			if !afterKill[d][id] {
				lost++
				if lost <= 5 {
					t.Errorf("%s: message %s was acknowledged but is not stored", d, id)
				}
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d of %d acknowledged messages lost", d, lost, len(acked[d]))
		}
	}
	// A clean restart (a checkpoint on the way down, no replay on the way
	// up) keeps the same messages and readings.
	hub.stop(t)
	hub = startHub(t, bin, data, serve...)
	for d, ids := range stored() {
		if len(ids) != len(afterKill[d]) {
			t.Errorf("%s: %d messages after a clean restart, %d before", d, len(ids), len(afterKill[d]))
		}
	}
	hub.stop(t)
}

// sendHTTPS posts one message at a time on a keep-alive connection.
func sendHTTPS(t *testing.T, hub *runningHub, d, token string, c int, stop *atomic.Bool, acked func(id string)) {
	client := hub.deviceClient(t)
	for n := 0; !stop.Load(); n++ {
		id := fmt.Sprintf("%s-c%d-%d", d, c, n)
		body := fmt.Sprintf(`{"seq": %d, "client": %d}`, n, c)
		req, _ := http.NewRequest("POST", hub.deviceURL+"/devices/"+d+"/messages/events?api-version=2021-04-12", strings.NewReader(body))
		req.Header.Set("Authorization", token)
		req.Header.Set("iothub-messageid", id)
		resp, err := client.Do(req)
		if err != nil {
			continue // the server is gone; keep trying until told to stop
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNoContent {
			acked(id)
		}
	}
}

// sendMQTT publishes at QoS 1 with up to 16 messages in flight, as the
// SDKs do, so that PUBACKs go out while later messages are still being
// stored. A device has one connection (a second would take the first
// over), so only client 0 of each device sends.
func sendMQTT(t *testing.T, hub *runningHub, d, token string, c int, stop *atomic.Bool, acked func(id string)) {
	if c > 0 {
		return
	}
	const window = 16
	opts := paho.NewClientOptions().AddBroker("ssl://" + hub.mqttAddr).
		SetClientID(d).SetUsername("localhost/" + d + "/?api-version=2021-04-12").SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: hub.roots(t)}).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	type inFlight struct {
		id  string
		tok paho.Token
	}
	for n := 0; !stop.Load(); {
		client := paho.NewClient(opts)
		if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		var pending []inFlight
		settle := func(p inFlight) bool {
			if p.tok.WaitTimeout(10*time.Second) && p.tok.Error() == nil {
				acked(p.id)
				return true
			}
			return false
		}
		for ok := true; ok && !stop.Load() && client.IsConnectionOpen(); n++ {
			id := fmt.Sprintf("%s-c%d-%d", d, c, n)
			body := fmt.Sprintf(`{"seq": %d, "client": %d}`, n, c)
			topic := "devices/" + d + "/messages/events/%24.mid=" + id
			pending = append(pending, inFlight{id, client.Publish(topic, 1, false, body)})
			if len(pending) == window {
				ok = settle(pending[0])
				pending = pending[1:]
			}
		}
		for _, p := range pending {
			settle(p)
		}
		client.Disconnect(0)
	}
}

type runningHub struct {
	cmd       *exec.Cmd
	dashURL   string
	deviceURL string
	mqttAddr  string
	ca        string
	stderr    *syncBuffer
	// stopInProcess stops a hub run by serveInProcess (cmd is nil then);
	// later calls return the first one's result.
	stopInProcess func() error
}

func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "fieldhub")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "FIELDHUB_DATA=", "FIELDHUB_STORE=")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fieldhub %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startHub starts `fieldhub serve` (with the extra flags) and waits until
// both listeners answer.
func startHub(t *testing.T, bin, data string, extra ...string) *runningHub {
	t.Helper()
	dash, dev, mqttAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := append([]string{"serve", "--data", data, "--addr", dash, "--device-addr", dev, "--mqtt-addr", mqttAddr, "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	h := &runningHub{cmd: cmd, dashURL: "http://" + dash, deviceURL: "https://" + dev, mqttAddr: mqttAddr, ca: filepath.Join(data, "tls", "ca.pem"), stderr: &syncBuffer{}}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("fieldhub stderr:\n%s", h.stderr.String())
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fieldhub did not become ready:\n%s", h.stderr.String())
		}
		resp, err := http.Get(h.dashURL + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if c, err := net.Dial("tcp", dev); err == nil {
			c.Close()
			if c, err := net.Dial("tcp", mqttAddr); err == nil {
				c.Close()
				return h
			}
		}
	}
}

// roots is the hub's generated CA.
func (h *runningHub) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(h.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", h.ca)
	}
	return pool
}

// deviceClient trusts the hub's generated CA.
func (h *runningHub) deviceClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.roots(t)}, MaxIdleConnsPerHost: 16}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (h *runningHub) stop(t *testing.T) {
	t.Helper()
	if h.stopInProcess != nil {
		if err := h.stopInProcess(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve returned %v", err)
		}
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("fieldhub exited with %v:\n%s", err, h.stderr.String())
		}
	case <-time.After(30 * time.Second):
		h.cmd.Process.Kill()
		t.Errorf("fieldhub did not stop within 30s of SIGTERM")
	}
}
