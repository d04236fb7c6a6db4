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
		if strings.ContainsAny(got, "\r\n") {
			t.Errorf("safeNext(%q) = %q has a line break", next, got)
		}
	})
}
