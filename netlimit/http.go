package netlimit

import (
	"log"
	"net/http"
	"time"
)

// HTTPTimeouts bound how long an HTTP client may take. Zero values mean no
// bound.
type HTTPTimeouts struct {
	// Header bounds the TLS handshake, and the request line and headers
	// from their first byte.
	Header time.Duration
	// Body is the time the request body gets after a header that took
	// all of Header; a faster header leaves the body more.
	Body time.Duration
	// Idle is how long a keep-alive connection may wait for its next request.
	Idle time.Duration
}

// Server is an http.Server for h under these timeouts. The read deadline
// covers the request only: net/http lifts it once the body has been read
// (or at once for a request without one), so server-sent event streams and
// direct-method calls that last minutes keep their request context. There
// is no write timeout for the same reason; event streams set their own
// deadline per write.
func (t HTTPTimeouts) Server(h http.Handler, errorLog *log.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.Header,
		IdleTimeout:       t.Idle,
		ErrorLog:          errorLog,
	}
	if t.Body > 0 {
		srv.ReadTimeout = t.Header + t.Body
	}
	return srv
}
