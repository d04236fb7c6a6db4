package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldhub/internal/testkit"
)

// TestBackupUnderLoad backs up a running hub while devices post over HTTPS,
// restores the backup into a fresh folder and starts a hub on it: every
// message acknowledged before the backup started is there, its readings are
// rebuilt, and the devices' CA and keys still work.
func TestBackupUnderLoad(t *testing.T) {
	testkit.Slow(t, "backs a hub up while devices send")
	data := t.TempDir()
	devices := []string{"bk-1", "bk-2", "bk-3"}
	for _, d := range devices {
		if _, _, err := cli(t, "", "device", "add", "--data", data, d); err != nil {
			t.Fatal(err)
		}
	}
	hub := serveInProcess(t, data)
	tokens := map[string]string{}
	for _, d := range devices {
		out, _, err := cli(t, "", "device", "token", "--data", data, "--ttl", "2h", d)
		if err != nil {
			t.Fatal(err)
		}
		tokens[d] = lastLine(out)
	}

	var (
		mu    sync.Mutex
		acked = map[string]map[string]bool{}
		count atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	client := hub.deviceClient(t)
	for _, d := range devices {
		acked[d] = map[string]bool{}
		for c := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; !stop.Load(); n++ {
					id := fmt.Sprintf("%s-c%d-%d", d, c, n)
					if postMessage(client, hub.deviceURL, d, tokens[d], id, fmt.Sprintf(`{"seq": %d, "client": %d}`, n, c)) == http.StatusNoContent {
						mu.Lock()
						acked[d][id] = true
						mu.Unlock()
						count.Add(1)
					}
				}
			}()
		}
	}
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	waitCount := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); count.Load() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d messages acknowledged, want %d", count.Load(), n)
			}
		}
	}
	waitCount(300)

	// What was acknowledged before the backup started must be in it.
	mu.Lock()
	before := map[string][]string{}
	nBefore := 0
	for d, ids := range acked {
		for id := range ids {
			before[d] = append(before[d], id)
		}
		nBefore += len(ids)
	}
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "hub.backup")
	out, _, err := cli(t, "", "backup", "--data", data, file)
	if err != nil {
		t.Fatalf("backup under load: %v", err)
	}
	during := count.Load() - int64(nBefore)
	t.Logf("%d messages acknowledged before the backup, %d while it ran; %s", nBefore, during, strings.TrimSpace(out))
	waitCount(int64(nBefore) + during + 100) // ingest goes on after it
	stop.Store(true)
	wg.Wait()
	hub.stop(t)

	restored := filepath.Join(t.TempDir(), "restored")
	if out, _, err := cli(t, "", "restore", "--data", restored, file); err != nil {
		t.Fatalf("restore: %v", err)
	} else if !strings.Contains(out, "restored") {
		t.Errorf("restore printed %q", out)
	}
	for _, name := range []string{"ca.pem", "ca-key.pem"} {
		a, _ := os.ReadFile(filepath.Join(data, "tls", name))
		b, err := os.ReadFile(filepath.Join(restored, "tls", name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("restored tls/%s differs from the original (%v)", name, err)
		}
	}
	viewer, _, err := cli(t, "", "token", "create", "--data", restored, "--role", "viewer", "--name", "check")
	if err != nil {
		t.Fatal(err)
	}
	hub2 := serveInProcess(t, restored)
	for _, d := range devices {
		stored := storedMessageIDs(t, hub2.dashURL, lastLine(viewer), d)
		missing := 0
		for _, id := range before[d] {
			if !stored[id] {
				missing++
				if missing <= 5 {
					t.Errorf("%s: message %s was acknowledged before the backup but is not in it", d, id)
				}
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d messages acknowledged before the backup are missing", d, missing, len(before[d]))
		}
		// The hub's in-memory telemetry is not in the file; the restored
		// hub rebuilt it from the message log: one reading of seq each.
		var readings struct{ Buckets []struct{ Count int } }
		apiGet(t, hub2.dashURL, lastLine(viewer), fmt.Sprintf("/api/v1/devices/%s/readings?metric=seq&from=0&to=%d&points=1", d, time.Now().Add(time.Hour).UnixMilli()), &readings)
		n := 0
		for _, b := range readings.Buckets {
			n += b.Count
		}
		if n != len(stored) {
			t.Errorf("%s: %d readings of seq for %d stored messages", d, n, len(stored))
		}
	}
	// Devices keep their CA and keys: the old client and token work.
	if status := postMessage(hub2.deviceClient(t), hub2.deviceURL, devices[0], tokens[devices[0]], "after-restore", `{"seq": -1}`); status != http.StatusNoContent {
		t.Errorf("a device posting to the restored hub with its old token got %d, want 204", status)
	}

	// A restore refuses while a hub holds the folder, and then without --force.
	if _, _, err := cli(t, "", "restore", "--data", restored, "--force", file); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("restore beside a running hub: %v, want a refusal naming the hub's pid", err)
	}
	hub2.stop(t)
	if _, _, err := cli(t, "", "restore", "--data", restored, file); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("restore over a database without --force: %v, want a refusal", err)
	}
	if _, _, err := cli(t, "", "restore", "--data", restored, "--force", file); err != nil {
		t.Errorf("restore --force over a stopped hub's database: %v", err)
	}
}

// postMessage posts one message with an id and returns the status (0 when
// the request failed).
func postMessage(client *http.Client, deviceURL, device, token, id, body string) int {
	req, _ := http.NewRequest("POST", deviceURL+"/devices/"+device+"/messages/events?api-version=2021-04-12", strings.NewReader(body))
	req.Header.Set("Authorization", token)
	req.Header.Set("iothub-messageid", id)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// apiGet decodes the JSON answer of an operator API GET.
func apiGet(t *testing.T, base, token, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// storedMessageIDs pages through a device's message log.
func storedMessageIDs(t *testing.T, base, token, device string) map[string]bool {
	t.Helper()
	stored := map[string]bool{}
	path := "/api/v1/devices/" + device + "/messages?limit=1000"
	for {
		var page struct {
			Messages []struct{ MessageID string }
			Next     int64
		}
		apiGet(t, base, token, path, &page)
		for _, m := range page.Messages {
			stored[m.MessageID] = true
		}
		if page.Next == 0 {
			return stored
		}
		path = fmt.Sprintf("/api/v1/devices/%s/messages?limit=1000&before=%d", device, page.Next)
	}
}
