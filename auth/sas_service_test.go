package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestVerifyService: a service token (sr=<host>, skn=<policy>) verifies
// against the policy's keys whatever the letter case of the host; an sr
// with a path covers that path and below, on whole segments; the rest is
// refused with the error that says why.
func TestVerifyService(t *testing.T) {
	const primary = "xcZsAeMxKco0K53MG1YZnBLyUYqddElqPSw/PufMJjU="
	const secondary = "c2Vjb25kYXJ5IGtleSBvZiB0aGUgcG9saWN5IGhlcmU="
	keys := []string{primary, secondary}
	now := time.Unix(1_900_000_000, 0)
	exp := now.Add(time.Hour)
	hosts := []string{"hub.example"}
	sign := func(resource, key string, expiry time.Time) SASToken {
		t.Helper()
		s, err := SignServiceSAS(resource, "backend", key, expiry)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ParseSAS(s)
		if err != nil {
			t.Fatal(err)
		}
		if tok.KeyName != "backend" {
			t.Fatalf("skn = %q, want backend", tok.KeyName)
		}
		return tok
	}
	tests := []struct {
		name     string
		tok      SASToken
		path     string
		hosts    []string
		wantKey  int
		wantErr  error
		wantText string
	}{
		{"primary key", sign("hub.example", primary, exp), "/devices/dev1", hosts, 0, nil, ""},
		{"secondary key", sign("hub.example", secondary, exp), "/twins/dev1", hosts, 1, nil, ""},
		{"host in another case", sign("HUB.Example", primary, exp), "/devices", hosts, 0, nil, ""},
		{"host with the port", sign("hub.example:443", primary, exp), "/devices", hosts, 0, nil, ""},
		{"no host list", sign("anything", primary, exp), "/devices", nil, 0, nil, ""},
		{"trailing slash", sign("hub.example/", primary, exp), "/jobs/v2/j1", hosts, 0, nil, ""},
		{"path covering the request", sign("hub.example/devices/dev1", primary, exp), "/devices/dev1", hosts, 0, nil, ""},
		{"path covering below", sign("hub.example/devices", primary, exp), "/devices/dev1", hosts, 0, nil, ""},
		{"path on another device", sign("hub.example/devices/dev1", primary, exp), "/devices/dev10", hosts, -1, ErrWrongDevice, "does not cover"},
		{"path elsewhere", sign("hub.example/devices", primary, exp), "/twins/dev1", hosts, -1, ErrWrongDevice, "does not cover"},
		{"another hub", sign("other.example", primary, exp), "/devices", hosts, -1, ErrWrongHost, "other.example"},
		{"foreign key", sign("hub.example", "Zm9yZWlnbiBrZXkgb2Ygc29tZWJvZHkgZWxzZSEhIQ==", exp), "/devices", hosts, -1, ErrBadSignature, `policy "backend"`},
		{"expired", sign("hub.example", primary, now), "/devices", hosts, -1, ErrTokenExpired, "expired"},
		{"empty host", SASToken{Resource: "%2Fdevices", Signature: "YWJj", Expiry: exp}, "/devices", hosts, -1, ErrMalformedToken, "host"},
		{"bad encoding", SASToken{Resource: "h%zz", Signature: "YWJj", Expiry: exp}, "/devices", hosts, -1, ErrMalformedToken, "URL-encoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, err := tt.tok.VerifyService(keys, now, tt.hosts, tt.path)
			if idx != tt.wantKey || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifyService = %d, %v; want %d, %v", idx, err, tt.wantKey, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
		})
	}
	// A device token is not a service token for the device's own path only:
	// the same Verify checks it for the device.
	tok := sign("hub.example/devices/dev1", primary, exp)
	if idx, err := tok.Verify("dev1", keys, now, hosts); idx != 0 || err != nil {
		t.Errorf("Verify of a policy-signed device token = %d, %v", idx, err)
	}
}

func FuzzVerifyService(f *testing.F) {
	f.Add("SharedAccessSignature sr=hub.example&sig=YWJj&se=1900000000&skn=backend", "/devices/d")
	f.Add("SharedAccessSignature sr=HUB.example%2Fdevices%2F&sig=YWJj&se=1&skn=a", "/devices")
	f.Add("SharedAccessSignature sr=%2F%2F&sig=YWJj&se=1&skn=", "")
	const key = "xcZsAeMxKco0K53MG1YZnBLyUYqddElqPSw/PufMJjU="
	f.Fuzz(func(t *testing.T, s, path string) {
		tok, err := ParseSAS(s)
		if err != nil {
			return
		}
		idx, err := tok.VerifyService([]string{key}, time.Unix(0, 0), []string{"hub.example"}, path)
		if (err == nil) != (idx == 0) {
			t.Fatalf("VerifyService(%q, %q) = %d, %v", s, path, idx, err)
		}
		if err != nil && !errors.Is(err, ErrMalformedToken) && !errors.Is(err, ErrWrongHost) && !errors.Is(err, ErrWrongDevice) &&
			!errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("VerifyService(%q, %q): error %v is none of the SAS errors", s, path, err)
		}
	})
}
