package handlers

import (
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// A body too large is refused (413) from its Content-Length, or once the
// limit is read, and the rest is left unread. Closing a connection with
// unread data resets it, so a client that writes its whole body before it
// reads the answer (the Azure SDKs' HTTP transports, many device stacks) sees
// a broken pipe instead of the 413 that says what was wrong. So, like nginx's
// lingering close, the answer is sent first, then up to refusedBodyDrain
// bytes of the body are read and thrown away within refusedBodyDrainTime,
// and the connection closes (Connection: close). A body declared larger than
// the bound is not waited for: it is cut off at once.
const (
	refusedBodyDrain     = 4 << 20
	refusedBodyDrainTime = 5 * time.Second
)

// drainRefusedBody lets the client of a refused body read its 413.
func (s *Server) drainRefusedBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		// HTTP/2 refuses a stream's body without touching the connection.
		if req.ProtoMajor != 1 || req.Body == nil || req.Body == http.NoBody {
			return next(c)
		}
		body := req.Body // the connection's, whatever the handler wraps it in
		// A watch from the pool, its hook made once: a closure per request
		// was two of the device listener's allocations per message.
		// Not deferred: after a panic the hook may still run as Recover
		// answers, so that watch is left to the collector.
		w := s.refusalWatches.Get().(*refusalWatch)
		w.res, w.rc = c.Response(), nil
		w.res.Before(w.hook)
		err := next(c)
		if err != nil {
			c.Error(err) // the answer goes out before the body is drained
		}
		if w.rc != nil && req.ContentLength <= refusedBodyDrain {
			s.discardBody(w.rc, body)
		}
		w.res, w.rc = nil, nil
		s.refusalWatches.Put(w)
		return nil
	}
}

// refusalWatch watches a response for a 413 (drainRefusedBody).
type refusalWatch struct {
	res  *echo.Response
	rc   *http.ResponseController // set once the answer is a 413
	hook func()                   // w.before, bound once
}

func newRefusalWatch() any {
	w := &refusalWatch{}
	w.hook = w.before
	return w
}

// before runs as the answer's header is written.
func (w *refusalWatch) before() {
	if w.res.Status != http.StatusRequestEntityTooLarge {
		return
	}
	w.rc = http.NewResponseController(w.res)
	w.res.Header().Set(echo.HeaderConnection, "close")
	// Reading after the answer is written; net/http would
	// otherwise give up on an unread body of 256 KB or more.
	_ = w.rc.EnableFullDuplex()
}

// discardBody reads what remains of a refused body, up to refusedBodyDrain
// bytes within refusedBodyDrainTime, keeping none of it.
func (s *Server) discardBody(rc *http.ResponseController, body io.Reader) {
	if err := rc.Flush(); err != nil {
		return
	}
	if err := rc.SetReadDeadline(time.Now().Add(refusedBodyDrainTime)); err != nil {
		return
	}
	n, err := io.CopyN(io.Discard, body, refusedBodyDrain)
	if err == nil {
		s.log.Debug("a refused request body is larger than the drain bound: the connection is cut", "drained", n)
	}
}
