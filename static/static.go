// Package static serves the dashboard's browser assets (app.js, app.css,
// favicon.svg …), built from web/ by `npm run build` and embedded in the
// binary, under content-hashed URLs so browsers may cache them forever.
package static

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.js *.css *.svg
var embedded embed.FS

// urlPrefix is where Handler expects to be mounted.
const urlPrefix = "/static/"

// Content types we ship, fixed here so they do not depend on the host's MIME
// tables.
var contentTypes = map[string]string{
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
}

// compressible lists the types worth gzipping; images and fonts are already
// compressed.
var compressible = map[string]bool{".css": true, ".js": true, ".map": true, ".svg": true}

type asset struct {
	body        []byte
	gzipped     []byte // nil when gzip would not make it smaller
	contentType string
	version     string // first 8 hex digits of the SHA-256 of body
	etag        string
}

// Assets is the set of embedded files with their content hashes.
type Assets struct {
	files map[string]*asset
}

// New loads the embedded assets and hashes them.
func New() (*Assets, error) {
	return load(embedded)
}

// load reads every regular file at the top of fsys. Tests pass an fstest.MapFS.
func load(fsys fs.FS) (*Assets, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("list static assets: %w", err)
	}
	a := &Assets{files: make(map[string]*asset, len(entries))}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read static asset %s: %w", e.Name(), err)
		}
		f, err := newAsset(e.Name(), body)
		if err != nil {
			return nil, err
		}
		a.files[e.Name()] = f
	}
	return a, nil
}

func newAsset(name string, body []byte) (*asset, error) {
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	ext := path.Ext(name)
	ct, ok := contentTypes[ext]
	if !ok {
		ct = mime.TypeByExtension(ext)
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	f := &asset{
		body:        body,
		contentType: ct,
		version:     digest[:8],
		// Weak, because the gzipped and plain bodies share it.
		etag: `W/"` + digest[:16] + `"`,
	}
	if compressible[ext] {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip static asset %s: %w", name, err)
		}
		if _, err := zw.Write(body); err != nil {
			return nil, fmt.Errorf("gzip static asset %s: %w", name, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip static asset %s: %w", name, err)
		}
		if buf.Len() < len(body) {
			f.gzipped = buf.Bytes()
		}
	}
	return f, nil
}

// Names lists the assets, sorted.
func (a *Assets) Names() []string {
	names := make([]string, 0, len(a.files))
	for name := range a.files {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Path returns the URL of the named asset with its content version, such as
// "/static/app.js?v=1a2b3c4d". A name that is not embedded gets a URL without
// a version (which will 404), so a typo shows up in the browser and in tests
// rather than crashing a page render.
func (a *Assets) Path(name string) string {
	f, ok := a.files[name]
	if !ok {
		return urlPrefix + name
	}
	return urlPrefix + name + "?v=" + f.version
}

// Handler serves the assets below /static/. A request whose ?v= matches the
// current content version may be cached for a year; any other request must be
// revalidated (ETag), so an old page never pins a stale file. Responses are
// gzipped when the client accepts it.
func (a *Assets) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: static assets are read-only", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, urlPrefix)
		f := a.files[name]
		if !ok || f == nil {
			http.NotFound(w, r)
			return
		}

		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", f.etag)
		h.Set("Vary", "Accept-Encoding")
		if r.URL.Query().Get("v") == f.version {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		if etagMatches(r.Header.Get("If-None-Match"), f.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}

		body := f.body
		if f.gzipped != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			body = f.gzipped
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

// etagMatches reports whether an If-None-Match header names etag, using the
// weak comparison RFC 9110 prescribes for If-None-Match.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, candidate := range strings.Split(header, ",") {
		candidate = strings.TrimSpace(candidate)
		if candidate == "*" || strings.TrimPrefix(candidate, "W/") == want {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (present and not refused with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(coding) != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
