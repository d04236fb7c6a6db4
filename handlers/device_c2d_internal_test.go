package handlers

import (
	"strings"
	"testing"
)

func TestCanonicalDeviceBoundPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/devices/d/messages/devicebound", "/devices/d/messages/deviceBound"},
		{"/devices/d/messages/DEVICEBOUND/abc/abandon", "/devices/d/messages/deviceBound/abc/abandon"},
		{"/devices/d/messages/deviceBound/abc", "/devices/d/messages/deviceBound/abc"},
		{"/devices/d/messages/events", "/devices/d/messages/events"},
		{"/devices/d/messages/deviceboundx", "/devices/d/messages/deviceboundx"},
		{"/api/v1/devices/d/messages/devicebound", "/api/v1/devices/d/messages/devicebound"},
	}
	for _, tt := range tests {
		if got := canonicalDeviceBoundPath(tt.in); got != tt.want {
			t.Errorf("canonicalDeviceBoundPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzCanonicalDeviceBoundPath(f *testing.F) {
	for _, s := range []string{"/devices/d/messages/devicebound", "/devices/%2F/messages/DeviceBound/x", "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := canonicalDeviceBoundPath(p)
		if len(got) != len(p) || !strings.EqualFold(got, p) {
			t.Fatalf("canonicalDeviceBoundPath(%q) = %q changed more than letter case", p, got)
		}
		if again := canonicalDeviceBoundPath(got); again != got {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
	})
}
