package handlers

import (
	"strings"
	"testing"
)

func TestSafeNext(t *testing.T) {
	tests := []struct{ next, want string }{
		{"", "/devices"},
		{"/devices/d1", "/devices/d1"},
		{"/users?x=1", "/users?x=1"},
		{"//evil.example", "/devices"},
		{`/\evil.example`, "/devices"},
		{"https://evil.example/", "/devices"},
		{"javascript:alert(1)", "/devices"},
		{"devices", "/devices"},
		{"/login", "/devices"},
		{"/login?next=/x", "/devices"},
		{"/logout", "/devices"},
		{"/x\r\nSet-Cookie: a=b", "/devices"},
		{"/\x00/x", "/devices"},
		{"/devices/d1\x7f", "/devices"},
		{"/devices/d 1", "/devices"},
		{"/devices/caf\u00e9", "/devices"},
		{"/devices/\xff", "/devices"},
		{"/devices/p%2541?x=%00", "/devices/p%2541?x=%00"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.next); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.next, got, tt.want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/devices", "//x", `/\x`, "http://x", "/login"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, `/\`) {
			t.Errorf("safeNext(%q) = %q leaves the site", next, got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] <= ' ' || got[i] >= 0x7f {
				t.Fatalf("safeNext(%q) = %q holds byte %#x, want printable ASCII only", next, got, got[i])
			}
		}
		if got != next && got != "/devices" {
			t.Errorf("safeNext(%q) = %q, want the input or the fleet", next, got)
		}
	})
}
