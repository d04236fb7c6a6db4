package static

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func TestNewEmbedsBuiltAssets(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, name := range []string{"app.js", "app.css", "theme-init.js", "favicon.svg"} {
		f, ok := a.files[name]
		if !ok {
			t.Fatalf("asset %s not embedded; have %v (run `npm run build`)", name, a.Names())
		}
		if len(f.body) == 0 {
			t.Errorf("asset %s is empty", name)
		}
	}
	// The bundle must carry htmx itself: nothing may come from a CDN.
	if !bytes.Contains(a.files["app.js"].body, []byte("htmx")) {
		t.Errorf("app.js does not contain htmx")
	}
	for _, name := range a.Names() {
		if body := a.files[name].body; bytes.Contains(body, []byte("//cdn.")) || bytes.Contains(body, []byte("unpkg.com")) {
			t.Errorf("asset %s references a CDN", name)
		}
	}
}

func testAssets(t *testing.T) *Assets {
	t.Helper()
	a, err := load(fstest.MapFS{
		"app.js":      {Data: []byte(strings.Repeat("console.log('fieldhub');\n", 100))},
		"app.css":     {Data: []byte("body{color:red}")},
		"favicon.svg": {Data: []byte("<svg></svg>")},
		"font.woff2":  {Data: []byte{0, 1, 2}},
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return a
}

func TestPath(t *testing.T) {
	a := testAssets(t)
	re := regexp.MustCompile(`^/static/app\.js\?v=[0-9a-f]{8}$`)
	if got := a.Path("app.js"); !re.MatchString(got) {
		t.Errorf("Path(app.js) = %q, want /static/app.js?v=<8 hex>", got)
	}
	if a.Path("app.js") == a.Path("app.css") {
		t.Errorf("different files got the same versioned path")
	}
	if got, want := a.Path("missing.js"), "/static/missing.js"; got != want {
		t.Errorf("Path(missing.js) = %q, want %q", got, want)
	}
}

func TestPathChangesWithContent(t *testing.T) {
	a1, _ := load(fstest.MapFS{"app.js": {Data: []byte("one")}})
	a2, _ := load(fstest.MapFS{"app.js": {Data: []byte("two")}})
	if a1.Path("app.js") == a2.Path("app.js") {
		t.Errorf("Path did not change when content changed: %q", a1.Path("app.js"))
	}
}

func TestHandler(t *testing.T) {
	a := testAssets(t)
	version := strings.TrimPrefix(a.Path("app.js"), "/static/app.js?v=")
	tests := []struct {
		name        string
		method      string
		target      string
		header      map[string]string
		wantStatus  int
		wantType    string
		wantCache   string
		wantEncoded bool
		wantBody    bool
	}{
		{name: "versioned", method: "GET", target: "/static/app.js?v=" + version, wantStatus: 200,
			wantType: "text/javascript; charset=utf-8", wantCache: "public, max-age=31536000, immutable", wantBody: true},
		{name: "unversioned", method: "GET", target: "/static/app.js", wantStatus: 200,
			wantType: "text/javascript; charset=utf-8", wantCache: "no-cache", wantBody: true},
		{name: "stale version", method: "GET", target: "/static/app.js?v=00000000", wantStatus: 200,
			wantType: "text/javascript; charset=utf-8", wantCache: "no-cache", wantBody: true},
		{name: "css", method: "GET", target: "/static/app.css", wantStatus: 200,
			wantType: "text/css; charset=utf-8", wantCache: "no-cache", wantBody: true},
		{name: "svg", method: "GET", target: "/static/favicon.svg", wantStatus: 200,
			wantType: "image/svg+xml", wantCache: "no-cache", wantBody: true},
		{name: "woff2", method: "GET", target: "/static/font.woff2", wantStatus: 200,
			wantType: "font/woff2", wantCache: "no-cache", wantBody: true},
		{name: "gzip", method: "GET", target: "/static/app.js?v=" + version, header: map[string]string{"Accept-Encoding": "br, gzip"},
			wantStatus: 200, wantType: "text/javascript; charset=utf-8", wantCache: "public, max-age=31536000, immutable", wantEncoded: true, wantBody: true},
		{name: "gzip refused", method: "GET", target: "/static/app.js", header: map[string]string{"Accept-Encoding": "gzip;q=0"},
			wantStatus: 200, wantType: "text/javascript; charset=utf-8", wantCache: "no-cache", wantBody: true},
		{name: "head", method: "HEAD", target: "/static/app.js", wantStatus: 200,
			wantType: "text/javascript; charset=utf-8", wantCache: "no-cache"},
		{name: "not modified", method: "GET", target: "/static/app.js?v=" + version, header: map[string]string{"If-None-Match": a.files["app.js"].etag},
			wantStatus: 304, wantType: "text/javascript; charset=utf-8", wantCache: "public, max-age=31536000, immutable"},
		{name: "not modified strong form", method: "GET", target: "/static/app.js", header: map[string]string{"If-None-Match": `"x", ` + strings.TrimPrefix(a.files["app.js"].etag, "W/")},
			wantStatus: 304, wantType: "text/javascript; charset=utf-8", wantCache: "no-cache"},
		{name: "other etag", method: "GET", target: "/static/app.js", header: map[string]string{"If-None-Match": `W/"0000"`},
			wantStatus: 200, wantType: "text/javascript; charset=utf-8", wantCache: "no-cache", wantBody: true},
		{name: "missing", method: "GET", target: "/static/nope.js", wantStatus: 404, wantType: "text/plain; charset=utf-8"},
		{name: "outside prefix", method: "GET", target: "/app.js", wantStatus: 404, wantType: "text/plain; charset=utf-8"},
		{name: "post", method: "POST", target: "/static/app.js", wantStatus: 405, wantType: "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			a.Handler().ServeHTTP(rec, req)
			res := rec.Result()
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if got := res.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if got := res.Header.Get("Cache-Control"); tt.wantCache != "" && got != tt.wantCache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.wantCache)
			}
			if got := res.Header.Get("Content-Encoding") == "gzip"; got != tt.wantEncoded {
				t.Errorf("gzip encoded = %v, want %v", got, tt.wantEncoded)
			}
			body, _ := io.ReadAll(res.Body)
			if !tt.wantBody {
				if tt.wantStatus != 404 && tt.wantStatus != 405 && len(body) != 0 {
					t.Errorf("body has %d bytes, want none", len(body))
				}
				return
			}
			if res.Header.Get("ETag") == "" {
				t.Errorf("no ETag")
			}
			if tt.wantEncoded {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("gunzip: %v", err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
			}
			name := strings.TrimPrefix(strings.SplitN(tt.target, "?", 2)[0], "/static/")
			if !bytes.Equal(body, a.files[name].body) {
				t.Errorf("body differs from the asset %s", name)
			}
		})
	}
}

func TestHeadContentLengthMatchesGet(t *testing.T) {
	a := testAssets(t)
	get := httptest.NewRecorder()
	a.Handler().ServeHTTP(get, httptest.NewRequest("GET", "/static/app.css", nil))
	head := httptest.NewRecorder()
	a.Handler().ServeHTTP(head, httptest.NewRequest("HEAD", "/static/app.css", nil))
	if g, h := get.Header().Get("Content-Length"), head.Header().Get("Content-Length"); g != h || g == "" {
		t.Errorf("Content-Length GET %q, HEAD %q; want equal and set", g, h)
	}
	if head.Body.Len() != 0 {
		t.Errorf("HEAD wrote %d body bytes", head.Body.Len())
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"deflate", false},
		{"*", true},
		{"identity", false},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.header); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func FuzzEtagMatches(f *testing.F) {
	f.Add(`W/"abc"`, `W/"abc"`)
	f.Add(`"a", W/"b"`, `W/"b"`)
	f.Add("*", `W/"x"`)
	f.Fuzz(func(t *testing.T, header, etag string) {
		got := etagMatches(header, etag)
		if header == "" && got {
			t.Errorf("empty If-None-Match matched %q", etag)
		}
		// A single tag (no list separator, no padding) always matches itself.
		single := !strings.Contains(etag, ",") && strings.TrimSpace(etag) == etag
		if etag != "" && single && header == etag && !got {
			t.Errorf("If-None-Match %q did not match identical etag", header)
		}
	})
}
