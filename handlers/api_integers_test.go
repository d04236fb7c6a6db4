package handlers_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestAPIIntegersRangeChecked sends integers that overflow, are negative,
// are not whole or are far out of range. Each gets 422 naming the field and
// its range, and nothing is queued.
func TestAPIIntegersRangeChecked(t *testing.T) {
	h := newCommandsHub(t, nil)
	const c2d, method = "/api/v1/devices/dev1/cloud-messages", "/api/v1/devices/dev1/methods/reboot"
	tests := []struct {
		path, body string
		says       string
	}{
		{c2d, `{"body":"x","ttlSeconds":18446747674}`, "ttlSeconds must be from 60 to 172800"},
		{c2d, `{"body":"x","ttlSeconds":1000000000000}`, "ttlSeconds must be from 60 to 172800"},
		{c2d, `{"body":"x","ttlSeconds":-1}`, "ttlSeconds must be from 60 to 172800"},
		{c2d, `{"body":"x","ttlSeconds":99999999999999999999}`, "ttlSeconds"},
		{c2d, `{"body":"x","ttlSeconds":1e3}`, "ttlSeconds"},
		{c2d, `{"body":"x","ttlSeconds":120.5}`, "ttlSeconds"},
		{c2d, `{"body":"x","ttlSeconds":"120"}`, "ttlSeconds"},
		{method, `{"responseTimeoutInSeconds":18446747674}`, "responseTimeoutInSeconds must be from 5 to 300"},
		{method, `{"responseTimeoutInSeconds":-1}`, "responseTimeoutInSeconds must be from 5 to 300"},
		{method, `{"responseTimeoutInSeconds":4}`, "responseTimeoutInSeconds must be from 5 to 300"},
		{method, `{"responseTimeoutInSeconds":1e12}`, "responseTimeoutInSeconds"},
		{method, `{"connectTimeoutInSeconds":1000000000000}`, "connectTimeoutInSeconds must be from 0 to 300"},
		{method, `{"connectTimeoutInSeconds":-1}`, "connectTimeoutInSeconds must be from 0 to 300"},
		{method, `{"connectTimeoutInSeconds":-99999999999999999999}`, "connectTimeoutInSeconds"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			r := h.call("operator", "POST", tt.path, tt.body)
			msg := fmt.Sprint(r.json(t)["error"])
			if r.status != 422 || !strings.Contains(msg, tt.says) {
				t.Errorf("got %d %q, want 422 saying %q", r.status, msg, tt.says)
			}
			if strings.Contains(msg, "3875820019") || strings.Contains(msg, "Go struct") {
				t.Errorf("message %q quotes an overflowed value or Go internals", msg)
			}
		})
	}
	if r := h.call("viewer", "GET", c2d, ""); !strings.Contains(string(r.body), `"messages":[]`) {
		t.Errorf("cloud messages after refused sends: %s, want none", r.body)
	}
}

// TestAPIQueryIntegersRangeChecked: integer query parameters that overflow
// or are out of range get 400 naming the parameter and its range.
func TestAPIQueryIntegersRangeChecked(t *testing.T) {
	h := newCommandsHub(t, nil)
	tests := []struct {
		path, says string
	}{
		{"/api/v1/devices?limit=18446747674", "limit must be a whole number from 0 to 100000"},
		{"/api/v1/devices?offset=-1", "offset must be a whole number from 0"},
		{"/api/v1/devices?offset=99999999999999999999", "offset must be a whole number from 0"},
		{"/api/v1/devices/dev1/messages?limit=1000000000000", "limit"},
		{"/api/v1/devices/dev1/cloud-messages?limit=-1", "limit must be a whole number from 1 to 1000"},
		{"/api/v1/devices/dev1/readings?metric=t&points=1000000000000", "points must be a whole number from 1 to 10000"},
		{"/api/v1/devices/dev1/readings?metric=t&points=1e3", "points must be a whole number from 1 to 10000"},
		{"/api/v1/devices/dev1/readings?metric=t&from=-9223372036854775808", "from"},
		{"/api/v1/devices/dev1/messages?before=18446744073709551616", "before"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := h.call("viewer", "GET", tt.path, "")
			if msg := fmt.Sprint(r.json(t)["error"]); r.status != 400 || !strings.Contains(msg, tt.says) {
				t.Errorf("got %d %q, want 400 saying %q", r.status, msg, tt.says)
			}
		})
	}
}
