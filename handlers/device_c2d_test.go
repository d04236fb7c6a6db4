package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
)

// deviceCall makes a device-protocol request signed with the device's primary key.
func (h *commandsHub) deviceCall(deviceID, method, path string, headers ...string) response {
	h.t.Helper()
	dev, err := h.db.Device(context.Background(), deviceID)
	if err != nil {
		h.t.Fatal(err)
	}
	token, err := auth.SignSAS("hub.test/devices/"+deviceID, dev.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		h.t.Fatal(err)
	}
	return h.call("", method, path, "", append([]string{"Authorization: " + token}, headers...)...)
}

func (h *commandsHub) send(deviceID, body string) map[string]any {
	h.t.Helper()
	r := h.call("operator", "POST", "/api/v1/devices/"+url.PathEscape(deviceID)+"/cloud-messages", body)
	if r.status != http.StatusCreated {
		h.t.Fatalf("send: %d %s", r.status, r.body)
	}
	return r.json(h.t)
}

func (h *commandsHub) stateOf(id any) string {
	h.t.Helper()
	n := int64(id.(float64))
	m, err := h.db.CloudMessage(context.Background(), n)
	if err != nil {
		h.t.Fatal(err)
	}
	return m.State
}

func TestDeviceBoundReceive(t *testing.T) {
	h := newCommandsHub(t, nil)
	const path = "/devices/dev1/messages/deviceBound?api-version=2021-04-12"
	if r := h.deviceCall("dev1", "GET", path); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("empty queue: %d %q, want 204 and no body", r.status, r.body)
	}
	sent := h.send("dev1", `{"body":"hello","properties":{"color":"blue"},"messageId":"m-1","correlationId":"c-1","ttlSeconds":600}`)
	r := h.deviceCall("dev1", "GET", path)
	if r.status != http.StatusOK || string(r.body) != "hello" {
		t.Fatalf("receive: %d %q", r.status, r.body)
	}
	etag := r.header.Get("ETag")
	if len(etag) != 38 || etag[0] != '"' || etag[37] != '"' {
		t.Errorf("ETag %q, want a quoted lock token", etag)
	}
	want := map[string]string{
		"iothub-messageid": "m-1", "iothub-correlationid": "c-1", "iothub-to": "/devices/dev1/messages/deviceBound",
		"iothub-deliverycount": "1", "iothub-app-color": "blue",
	}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"iothub-expiry", "iothub-enqueuedtime"} {
		if _, err := time.Parse(time.RFC3339Nano, r.header.Get(k)); err != nil {
			t.Errorf("header %s = %q, want an RFC 3339 time", k, r.header.Get(k))
		}
	}
	if got := h.stateOf(sent["id"]); got != db.CloudLocked {
		t.Errorf("state after receive %q, want locked", got)
	}
	// The locked message is not handed out twice.
	if r := h.deviceCall("dev1", "GET", path); r.status != http.StatusNoContent {
		t.Errorf("second receive: %d, want 204", r.status)
	}
}

func TestDeviceBoundSettle(t *testing.T) {
	h := newCommandsHub(t, nil)
	receive := func(path string) (lock string, id any) {
		t.Helper()
		sent := h.send("dev1", `{"body":"x"}`)
		r := h.deviceCall("dev1", "GET", path)
		if r.status != http.StatusOK {
			t.Fatalf("receive via %s: %d %s", path, r.status, r.body)
		}
		return strings.Trim(r.header.Get("ETag"), `"`), sent["id"]
	}
	tests := []struct {
		name      string
		recvPath  string
		method    string
		path      string // %s is the lock
		ifMatch   string // %s is the lock
		wantCode  int
		wantState string
	}{
		{"complete", "/devices/dev1/messages/deviceBound", "DELETE", "/devices/dev1/messages/deviceBound/%s?api-version=2021-04-12", `"%s"`, 204, db.CloudCompleted},
		{"complete without If-Match", "/devices/dev1/messages/devicebound", "DELETE", "/devices/dev1/messages/devicebound/%s", ``, 204, db.CloudCompleted},
		{"reject", "/devices/dev1/messages/devicebound", "DELETE", "/devices/dev1/messages/devicebound/%s?api-version=2021-04-12&reject", `%s`, 204, db.CloudRejected},
		{"abandon", "/devices/dev1/messages/DEVICEBOUND", "POST", "/devices/dev1/messages/devicebound/%s/abandon?api-version=2021-04-12", `%s`, 204, db.CloudAbandoned},
		{"unknown lock", "/devices/dev1/messages/deviceBound", "DELETE", "/devices/dev1/messages/deviceBound/nope-%s", ``, 412, db.CloudLocked},
		{"If-Match disagrees", "/devices/dev1/messages/deviceBound", "DELETE", "/devices/dev1/messages/deviceBound/%s", `"other"`, 412, db.CloudLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lock, id := receive(tt.recvPath)
			var hdr []string
			if tt.ifMatch != "" {
				hdr = append(hdr, "If-Match: "+strings.ReplaceAll(tt.ifMatch, "%s", lock))
			}
			r := h.deviceCall("dev1", tt.method, strings.ReplaceAll(tt.path, "%s", lock), hdr...)
			if r.status != tt.wantCode {
				t.Errorf("status %d (%s), want %d", r.status, r.body, tt.wantCode)
			}
			if tt.wantCode >= 400 && !strings.Contains(string(r.body), `"error"`) {
				t.Errorf("refusal without a JSON error: %s", r.body)
			}
			if got := h.stateOf(id); got != tt.wantState {
				t.Errorf("state %q, want %q", got, tt.wantState)
			}
			// Tidy up: settle whatever is still held so the next case starts empty.
			_, _ = h.db.PurgeCloudMessages(context.Background(), "dev1")
		})
	}
	t.Run("spent lock", func(t *testing.T) {
		lock, _ := receive("/devices/dev1/messages/deviceBound")
		p := "/devices/dev1/messages/deviceBound/" + lock
		if r := h.deviceCall("dev1", "DELETE", p); r.status != 204 {
			t.Fatalf("first complete: %d", r.status)
		}
		if r := h.deviceCall("dev1", "DELETE", p); r.status != 412 {
			t.Errorf("second complete: %d, want 412", r.status)
		}
		if r := h.deviceCall("dev1", "POST", p+"/abandon"); r.status != 412 {
			t.Errorf("abandon after complete: %d, want 412", r.status)
		}
	})
}

func TestDeviceBoundAuth(t *testing.T) {
	h := newCommandsHub(t, nil)
	if _, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: "dev2"}); err != nil {
		t.Fatal(err)
	}
	h.send("dev1", `{"body":"secret"}`)
	if r := h.call("", "GET", "/devices/dev1/messages/deviceBound", ""); r.status != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", r.status)
	}
	// dev2's token does not open dev1's queue.
	dev2, _ := h.db.Device(context.Background(), "dev2")
	token, _ := auth.SignSAS("hub.test/devices/dev2", dev2.PrimaryKey, time.Now().Add(time.Hour))
	r := h.call("", "GET", "/devices/dev1/messages/deviceBound", "", "Authorization: "+token)
	if r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
		t.Errorf("other device's token: %d, want 401 or 403", r.status)
	}
	if m, _ := h.db.CloudMessages(context.Background(), "dev1", 1); m[0].State != db.CloudQueued {
		t.Errorf("message is %q after refused requests, want queued", m[0].State)
	}
}

func TestDeviceBoundEncodedDeviceID(t *testing.T) {
	h := newCommandsHub(t, nil)
	const id = "odd(1)+x"
	if _, err := h.db.CreateDevice(context.Background(), db.NewDevice{DeviceID: id}); err != nil {
		t.Fatal(err)
	}
	sent := h.send(id, `{"body":"odd"}`)
	// The SDK encodes like encodeURIComponent plus ! ' ( ) *.
	r := h.deviceCall(id, "GET", "/devices/odd%281%29%2Bx/messages/devicebound")
	if r.status != http.StatusOK || string(r.body) != "odd" {
		t.Fatalf("receive: %d %s", r.status, r.body)
	}
	lock := strings.Trim(r.header.Get("ETag"), `"`)
	if r := h.deviceCall(id, "DELETE", "/devices/odd%281%29%2Bx/messages/devicebound/"+lock); r.status != 204 {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	if got := h.stateOf(sent["id"]); got != db.CloudCompleted {
		t.Errorf("state %q, want completed (message %s)", got, strconv.Quote(id))
	}
}
