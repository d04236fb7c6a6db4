package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"fieldhub/datadir"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/internal/testkit"
	"fieldhub/telemetry"
)

// mountTmpfs mounts a tmpfs of the given size (like "8m") on a new folder
// and unmounts it at cleanup. Mounting needs root (CI runs as root); the
// test is skipped where it cannot mount.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a %s tmpfs for a full disk (needs root): %v: %s", size, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file into dir until the filesystem has no room left
// and returns its path: removing it frees the space.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", dir, err)
				}
				break
			}
		}
	}
	return path
}

// readyz returns the status and body of GET /readyz.
func readyz(t *testing.T, dashURL string) (int, string) {
	t.Helper()
	resp, err := http.Get(dashURL + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// countLines counts the log lines that contain every one of parts.
func countLines(log string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// TestFullDisk fills the filesystem under a running hub's data folder:
// devices are told to retry (HTTPS 503 with Retry-After, no PUBACK over
// MQTT), the log says so once, /readyz turns 503 with the reason, and once
// space is freed ingest resumes by itself with nothing acknowledged lost.
func TestFullDisk(t *testing.T) {
	testkit.Slow(t, "fills a tmpfs under a running hub")
	mnt := mountTmpfs(t, "8m")
	data := filepath.Join(mnt, "data")
	const device = "full-1"
	if _, _, err := cli(t, "", "device", "add", "--data", data, device); err != nil {
		t.Fatal(err)
	}
	hub := serveInProcess(t, data, "--log-level", "info")
	token, _, err := cli(t, "", "device", "token", "--data", data, device)
	if err != nil {
		t.Fatal(err)
	}
	token = lastLine(token)
	client := hub.deviceClient(t)
	body := []byte(`{"seq": 1, "pad": "` + strings.Repeat("x", 60000) + `"}`)
	var acked []string
	n := 0
	post := func() (status int, retryAfter string) {
		t.Helper()
		n++
		id := fmt.Sprintf("%s-%d", device, n)
		req, _ := http.NewRequest("POST", hub.deviceURL+"/devices/"+device+"/messages/events?api-version=2021-04-12", bytes.NewReader(body))
		req.Header.Set("Authorization", token)
		req.Header.Set("iothub-messageid", id)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("post %s: %v", id, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			acked = append(acked, id)
		}
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if status, _ := post(); status != http.StatusNoContent {
		t.Fatalf("before the disk filled: status %d, want 204", status)
	}

	filler := fillDisk(t, mnt)
	// Commits may still fit into space SQLite holds already (its WAL);
	// the disk is full for good once one fails.
	status, retryAfter := post()
	for i := 0; status == http.StatusNoContent && i < 200; i++ {
		status, retryAfter = post()
	}
	if status != http.StatusServiceUnavailable {
		t.Fatalf("on a full disk: status %d, want 503", status)
	}
	for i := 0; ; i++ {
		if retryAfter == "" {
			t.Errorf("503 without Retry-After")
		}
		if i == 5 {
			break
		}
		if status, retryAfter = post(); status != http.StatusServiceUnavailable {
			t.Fatalf("on a full disk, post %d: status %d, want 503", n, status)
		}
	}
	code, ready := readyz(t, hub.dashURL)
	if code != http.StatusServiceUnavailable || !strings.Contains(ready, "disk full") {
		t.Errorf("readyz on a full disk = %d %s, want 503 naming the disk full", code, ready)
	}

	// MQTT: the publish is not acknowledged and the connection closes, so
	// that the device sends it again after reconnecting.
	roots := (&runningHub{ca: hub.ca}).roots(t)
	mqttConnect := func() (paho.Client, chan error) {
		t.Helper()
		lost := make(chan error, 1)
		opts := paho.NewClientOptions().AddBroker("ssl://" + hub.mqttAddr).
			SetClientID(device).SetUsername("localhost/" + device + "/?api-version=2021-04-12").SetPassword(token).
			SetTLSConfig(&tls.Config{RootCAs: roots}).SetProtocolVersion(4).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
			SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
		c := paho.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("mqtt connect: %v", tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c, lost
	}
	mqttID := device + "-mqtt"
	c, lost := mqttConnect()
	tok := c.Publish("devices/"+device+"/messages/events/%24.mid="+mqttID, 1, false, `{"seq": 2}`)
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("on a full disk the MQTT connection stayed open after a publish that was not stored")
	}
	if tok.WaitTimeout(time.Second) && tok.Error() == nil {
		t.Fatal("on a full disk a publish got its PUBACK")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if status, _ := post(); status != http.StatusNoContent {
		t.Fatalf("after space was freed: status %d, want 204", status)
	}
	if code, ready := readyz(t, hub.dashURL); code != http.StatusOK {
		t.Errorf("readyz after a message was stored again = %d %s, want 200", code, ready)
	}
	c, _ = mqttConnect()
	if tok := c.Publish("devices/"+device+"/messages/events/%24.mid="+mqttID, 1, false, `{"seq": 2}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("after space was freed, MQTT publish: %v", tok.Error())
	}
	acked = append(acked, mqttID)
	c.Disconnect(100)

	hub.stop(t)
	log := hub.stderr.String()
	if got := countLines(log, "storage fault", "device messages"); got != 1 {
		t.Errorf("%d log lines announce the storage fault of device messages, want 1", got)
	}
	if got := countLines(log, "storage recovered", "device messages"); got != 1 {
		t.Errorf("%d log lines announce the recovery of device messages, want 1", got)
	}
	// The start-up checks call an 8 MB disk a problem, rightly, once.
	startup := countLines(log, "level=ERROR", `msg="start-up check"`)
	if got := countLines(log, "level=ERROR", `msg="start-up check"`, `check="disk space"`); got != 1 || startup != 1 {
		t.Errorf("%d ERROR lines of start-up checks, %d of them about disk space; want the disk space one", startup, got)
	}
	if got := countLines(log, "level=ERROR") - startup; got != 1 {
		t.Errorf("%d ERROR lines, want 1: the fault is logged once, not per request or connection", got)
	}

	d, err := db.Open(context.Background(), datadir.Database(data), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	msgs, err := dbtest.Telemetry(t, d).Messages(context.Background(), device, telemetry.MessageFilter{Limit: telemetry.MaxMessagePage})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, m := range msgs {
		stored[m.MessageID] = true
	}
	for _, id := range acked {
		if !stored[id] {
			t.Errorf("message %s was acknowledged but is not stored", id)
		}
	}
	t.Logf("%d posts, %d acknowledged and stored", n, len(acked))
}
