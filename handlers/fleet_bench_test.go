package handlers_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/db/dbtest"
	"fieldhub/handlers"
	"fieldhub/internal/testkit"
	"fieldhub/static"
)

// BenchmarkFleetPage10kRequest: one fleet page request (HTTP, session, the
// query with its count, the summary counts, the render) at 10,000 devices:
// the first page by id, a page deep in the list by last activity, a tag
// search and a text search. Issue 2 measured about 30 ms for the first.
func BenchmarkFleetPage10kRequest(b *testing.B) {
	now := time.Now()
	assets, err := static.New()
	if err != nil {
		b.Fatal(err)
	}
	r := testkit.NewRouter(b, func(c *handlers.Config) { c.Assets = assets })
	d, srv := r.DB, r.HTTP
	dbtest.FillFleet(b, d, 10_000, now)
	ctx := context.Background()
	u, err := d.CreateUser(ctx, "vic", "x", db.RoleViewer)
	if err != nil {
		b.Fatal(err)
	}
	cookie := auth.RandomToken(32)
	if err := d.CreateSession(ctx, cookie, u.ID, auth.RandomToken(16), time.Hour); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, path string }{
		{"first-page", "/devices"},
		{"by-last-activity-page-150", "/devices?sort=lastActivity&order=desc&size=50&page=150"},
		{"tag-search", "/devices?q=site%3Ds3"},
		{"text-search", "/devices?q=sensor-09"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				r, _ := http.NewRequest("GET", srv.URL+bc.path, nil)
				r.AddCookie(&http.Cookie{Name: "fieldhub_session", Value: cookie})
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("GET %s = %d", bc.path, resp.StatusCode)
				}
			}
		})
	}
}
