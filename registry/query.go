package registry

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"fieldhub/db"
	"fieldhub/query"
)

// Bounds of fleet queries, so that one costs a known amount: the query
// package bounds the text (query.MaxLength, query.MaxDepth,
// query.MaxInValues); these bound what it may ask of the store.
const (
	DefaultQueryPageSize = 100
	MaxQueryPageSize     = db.MaxQueryPage
	// MaxQueryTerms bounds the comparisons, calls and IN lists of a
	// condition: each is evaluated for every device scanned.
	MaxQueryTerms = query.MaxTerms
	// DefaultQueryTimeout bounds the scan of one page (or, for COUNT() and
	// GROUP BY, of the whole fleet).
	DefaultQueryTimeout = 10 * time.Second
	// MaxContinuation bounds a continuation token's length.
	MaxContinuation = 512
)

// QueryRequest is a fleet query and the page of its results wanted.
type QueryRequest struct {
	Text         string
	PageSize     int    // 0: DefaultQueryPageSize
	Continuation string // "" for the first page; else the last page's Continuation
}

// QueryResult is one page of a fleet query's results.
type QueryResult struct {
	Query *query.Query
	// Devices are the devices of SELECT * (with their twins), in device id
	// order; Rows the rows of any other SELECT (projections, COUNT(),
	// GROUP BY). One of the two is set.
	Devices []db.QueriedDevice
	Rows    []map[string]any
	// Continuation fetches the next page; "" when this is the last.
	Continuation string
}

// QueryLimitError refuses a query beyond the bounds above; the API answers
// 422 with its message.
type QueryLimitError struct{ Reason string }

func (e *QueryLimitError) Error() string { return e.Reason }

// ErrQueryTimeout is a query that scanned longer than its bound.
var ErrQueryTimeout = errors.New("the query took longer than allowed")

// continuation is what a token carries, signed so that a client can only
// hand back what it was given, for the query it was given for.
type continuation struct {
	Query  string `json:"q"`           // hash of the query text
	After  string `json:"a,omitempty"` // last device id returned
	Seen   int    `json:"n,omitempty"` // rows returned so far (TOP)
	Offset int    `json:"o,omitempty"` // rows of an aggregate returned so far
}

// Query runs a page of a fleet query. A mistake in the text is a
// *query.Error that says where it is; a query beyond the bounds a
// *QueryLimitError; a scan beyond the timeout ErrQueryTimeout.
func (r *Registry) Query(ctx context.Context, req QueryRequest) (QueryResult, error) {
	q, err := ParseQuery(req.Text)
	if err != nil {
		return QueryResult{}, err
	}
	size := req.PageSize
	if size == 0 {
		size = DefaultQueryPageSize
	}
	if size < 1 || size > MaxQueryPageSize {
		return QueryResult{}, &QueryLimitError{fmt.Sprintf("pageSize must be from 1 to %d, got %d", MaxQueryPageSize, size)}
	}
	hash := queryHash(req.Text)
	cont := continuation{Query: hash}
	if req.Continuation != "" {
		if cont, err = r.readContinuation(req.Continuation, hash); err != nil {
			return QueryResult{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.QueryTimeout)
	defer cancel()
	res := QueryResult{Query: q}
	if q.Aggregate() {
		err = r.aggregate(ctx, q, size, &cont, &res)
	} else {
		err = r.list(ctx, q, size, &cont, &res)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return QueryResult{}, fmt.Errorf("%w (%s); narrow the condition or ask for smaller pages", ErrQueryTimeout, r.cfg.QueryTimeout)
		}
		return QueryResult{}, err
	}
	return res, nil
}

// ParseQuery parses a fleet query and checks it against the bounds.
func ParseQuery(text string) (*query.Query, error) {
	q, err := query.Parse(text)
	if err != nil {
		return nil, err
	}
	if n := query.Terms(q.Where); n > MaxQueryTerms {
		return nil, &QueryLimitError{fmt.Sprintf("the condition has %d terms (comparisons, functions, IN lists); at most %d are allowed", n, MaxQueryTerms)}
	}
	return q, nil
}

// list is a page of SELECT * or of a projection.
func (r *Registry) list(ctx context.Context, q *query.Query, size int, cont *continuation, res *QueryResult) error {
	if q.Top >= 0 {
		size = min(size, q.Top-cont.Seen)
		if size <= 0 {
			return nil
		}
	}
	// One more than the page tells whether there is a next one.
	page, err := r.cfg.Store.QueryDevices(ctx, db.DeviceQuery{Where: q.Where, After: cont.After, Limit: min(size+1, db.MaxQueryPage)})
	if err != nil {
		return err
	}
	more := len(page) > size
	if more {
		page = page[:size]
	}
	if q.Star {
		res.Devices = page
	} else {
		now := r.cfg.Now()
		res.Rows = make([]map[string]any, len(page))
		for i, qd := range page {
			res.Rows[i] = q.Project(db.DeviceDocument(qd.Device, qd.Twin, now))
		}
	}
	if more && len(page) > 0 && (q.Top < 0 || cont.Seen+len(page) < q.Top) {
		next := continuation{Query: cont.Query, After: page[len(page)-1].Device.DeviceID, Seen: cont.Seen + len(page)}
		res.Continuation = r.writeContinuation(next)
	}
	return nil
}

// aggregate computes COUNT() and GROUP BY over every matching device and
// returns a page of the rows.
func (r *Registry) aggregate(ctx context.Context, q *query.Query, size int, cont *continuation, res *QueryResult) error {
	g := q.NewGrouper()
	now := r.cfg.Now()
	after := ""
	for {
		page, err := r.cfg.Store.QueryDevices(ctx, db.DeviceQuery{Where: q.Where, After: after, Limit: db.MaxQueryPage})
		if err != nil {
			return err
		}
		for _, qd := range page {
			g.Add(db.DeviceDocument(qd.Device, qd.Twin, now))
		}
		if len(page) < db.MaxQueryPage {
			break
		}
		after = page[len(page)-1].Device.DeviceID
	}
	rows := g.Rows()
	if q.Top >= 0 && len(rows) > q.Top {
		rows = rows[:q.Top]
	}
	if cont.Offset > len(rows) {
		cont.Offset = len(rows)
	}
	end := min(cont.Offset+size, len(rows))
	res.Rows = rows[cont.Offset:end]
	if end < len(rows) {
		res.Continuation = r.writeContinuation(continuation{Query: cont.Query, Offset: end})
	}
	return nil
}

func queryHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

func (r *Registry) sign(payload string) string {
	m := hmac.New(sha256.New, r.cfg.QuerySecret)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func (r *Registry) writeContinuation(c continuation) string {
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + r.sign(payload)
}

// errContinuation refuses a token the hub did not give for this query.
var errContinuation = &QueryLimitError{"continuation is not a token this hub gave for this query (altered, for another query, or from before the hub's secret changed); run the query again from the start"}

func (r *Registry) readContinuation(token, hash string) (continuation, error) {
	if len(token) > MaxContinuation {
		return continuation{}, &QueryLimitError{fmt.Sprintf("continuation is %d characters long; tokens this hub gives are at most %d", len(token), MaxContinuation)}
	}
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(r.sign(payload))) {
		return continuation{}, errContinuation
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var c continuation
	if err != nil || json.Unmarshal(b, &c) != nil || c.Query != hash || c.Seen < 0 || c.Offset < 0 {
		return continuation{}, errContinuation
	}
	return c, nil
}

// NewQuerySecret makes a secret for signing continuation tokens.
func NewQuerySecret() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return b
}
