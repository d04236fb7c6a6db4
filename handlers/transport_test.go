package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
	"fieldhub/static"
)

// TestClientAddress: c.RealIP() is the socket's address unless the
// connection comes from a trusted proxy, on the dashboard and the device
// router alike. Echo's default believed X-Forwarded-For from anyone, so
// rotating it gave a client a new address on every request.
func TestClientAddress(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string // one request per value, the header rotating
		want    string
	}{
		{"no proxies: rotating the header changes nothing", nil, "203.0.113.9:5000",
			[]string{"198.51.100.1", "198.51.100.2", "198.51.100.3, 198.51.100.4"}, "203.0.113.9"},
		{"no proxies: loopback and private peers are not proxies either", nil, "10.0.0.5:5000",
			[]string{"198.51.100.1"}, "10.0.0.5"},
		{"no proxies, IPv6", nil, "[2001:db8::1]:5000", []string{"198.51.100.1"}, "2001:db8::1"},
		{"trusted proxy: its header names the client", proxies, "10.0.0.5:5000",
			[]string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted proxy: the nearest address it does not trust", proxies, "10.0.0.5:5000",
			[]string{"198.51.100.1, 203.0.113.7, 10.0.0.9"}, "203.0.113.7"},
		{"untrusted peer claiming to be a proxy", proxies, "203.0.113.9:5000",
			[]string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted proxy without the header", proxies, "10.0.0.5:5000", []string{""}, "10.0.0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dashboard, server := handlers.New(testkit.WithServices(handlers.Config{TrustedProxies: tt.trusted}, dbtest.MustOpen(t), nil))
			for name, router := range map[string]*echo.Echo{"dashboard": dashboard, "device": server.DeviceRouter().Echo} {
				for _, xff := range tt.xff {
					req := httptest.NewRequest("GET", "/", nil)
					req.RemoteAddr = tt.remote
					if xff != "" {
						req.Header.Set("X-Forwarded-For", xff)
					}
					if got := router.NewContext(req, httptest.NewRecorder()).RealIP(); got != tt.want {
						t.Errorf("%s router, X-Forwarded-For %q from %s: RealIP() = %q, want %q", name, xff, tt.remote, got, tt.want)
					}
				}
			}
		})
	}
}

// TestNoStoreOnSecrets: every answer that carries a device key, a
// connection string or a CSRF token tells caches not to keep it.
func TestNoStoreOnSecrets(t *testing.T) {
	h := newTestHub(t)
	ctx := context.Background()
	dev, err := h.db.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	cookie, csrf := h.session(db.RoleAdmin)
	admin := h.tokens[db.RoleAdmin]
	tests := []struct {
		name, method, path, body string
		session                  bool   // the admin's browser session instead of the admin token
		carries                  string // what secret the answer holds ("" for the rotated key: any key)
	}{
		{"API device list", "GET", "/api/v1/devices", "", false, dev.PrimaryKey},
		{"API device", "GET", "/api/v1/devices/dev1", "", false, dev.PrimaryKey},
		{"API device create", "POST", "/api/v1/devices", `{"id":"dev2"}`, false, "primaryKey"},
		{"API device update", "PATCH", "/api/v1/devices/dev1", `{"name":"x"}`, false, dev.PrimaryKey},
		{"API key rotation", "POST", "/api/v1/devices/dev1/keys/rotate", `{"key":"secondary"}`, false, "secondaryKey"},
		{"API device, browser session", "GET", "/api/v1/devices/dev1", "", true, dev.PrimaryKey},
		{"connection string partial", "GET", "/devices/dev1/connection-string", "", true, "SharedAccessKey="},
		{"device page", "GET", "/devices/dev1", "", true, csrf},
		{"fleet page", "GET", "/devices", "", true, csrf},
		{"login page", "GET", "/login", "", false, `name="_csrf"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, h.srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tt.session {
				req.AddCookie(&http.Cookie{Name: "fieldhub_session", Value: cookie})
				req.Header.Set("X-CSRF-Token", csrf)
			} else if strings.HasPrefix(tt.path, "/api/") {
				req.Header.Set("Authorization", "Bearer "+admin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode >= 300 || !strings.Contains(string(body), tt.carries) {
				t.Fatalf("status %d, body carries %q: %v; want a 2xx answer with the secret", resp.StatusCode, tt.carries, strings.Contains(string(body), tt.carries))
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
}

// TestHTTPSDashboard: with SecureCookies (serve --dashboard-tls), answers
// carry Strict-Transport-Security and cookies are Secure; without, neither.
func TestHTTPSDashboard(t *testing.T) {
	for _, secure := range []bool{true, false} {
		router, _ := handlers.New(testkit.WithServices(handlers.Config{SecureCookies: secure}, dbtest.MustOpen(t), nil))
		srv := httptest.NewUnstartedServer(router)
		if secure {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		resp, err := srv.Client().Get(srv.URL + "/login")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		hsts := resp.Header.Get("Strict-Transport-Security")
		if secure && hsts != "max-age=31536000" {
			t.Errorf("over HTTPS: Strict-Transport-Security = %q, want max-age=31536000", hsts)
		}
		if !secure && hsts != "" {
			t.Errorf("over HTTP: Strict-Transport-Security = %q, want none", hsts)
		}
		cookies := resp.Cookies()
		if len(cookies) == 0 {
			t.Fatal("the login page set no cookie")
		}
		for _, c := range cookies {
			if c.Secure != secure {
				t.Errorf("secure=%v: cookie %s has Secure=%v", secure, c.Name, c.Secure)
			}
		}
	}
}

// Static assets keep their long caching: no-store is for dynamic answers.
func TestStaticAssetsStayCacheable(t *testing.T) {
	h := newPageHub(t)
	assets, err := static.New()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(h.srv.URL + assets.Path("app.css"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Cache-Control"); resp.StatusCode != 200 || !strings.Contains(got, "immutable") {
		t.Errorf("%s: %d, Cache-Control %q; want 200 and the long immutable caching", assets.Path("app.css"), resp.StatusCode, got)
	}
}

// TestForwardedForRotationDoesNotEscapeTheThrottle is the attack of the
// report: wrong guesses for ever-new usernames, each with a new
// X-Forwarded-For, from one socket. The address's budget (20) still runs
// out, because the address is the socket's.
func TestForwardedForRotationDoesNotEscapeTheThrottle(t *testing.T) {
	t.Parallel()
	h := newPageHub(t)
	b := h.browser()
	var last page
	for i := range 21 {
		token := b.csrf("/login")
		form := url.Values{"username": {fmt.Sprintf("user%d", i)}, "password": {"wrong-password"}, "_csrf": {token}}
		last = b.do("POST", "/login", form, map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i+1)})
	}
	if last.status != http.StatusTooManyRequests {
		t.Errorf("21st wrong guess from one socket with a rotated X-Forwarded-For = %d, want 429", last.status)
	}
}
