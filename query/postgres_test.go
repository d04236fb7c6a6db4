package query

import (
	"context"
	"strings"
	"testing"

	"fieldhub/internal/pgtest"

	"github.com/jackc/pgx/v5"
)

func TestPostgreSQLMatchesEvaluator(t *testing.T) {
	// testkit.Slow's rule, written out: testkit imports db, which imports query.
	if testing.Short() {
		t.Skip("slow, skipped by -short: starts a PostgreSQL server")
	}
	// ICU sorts strings unlike bytes, so the compiled SQL must ask for byte
	// order itself.
	url := pgtest.Start(t, pgtest.Options{ICU: true}).URL
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var collation string
	if err := conn.QueryRow(ctx, "SELECT datlocprovider::text || ' ' || coalesce(daticulocale, datcollate) FROM pg_database WHERE datname = current_database()").Scan(&collation); err != nil {
		t.Fatal(err)
	}
	t.Logf("database collation: %s", collation)

	fleet := testFleet(t, 300, 1, true)
	if _, err := conn.Exec(ctx, `CREATE TABLE devs (
		id text PRIMARY KEY, name text NOT NULL, status text NOT NULL, conn text NOT NULL, online boolean,
		last_activity text, version bigint, tags jsonb, desired jsonb, reported jsonb)`); err != nil {
		t.Fatal(err)
	}
	for _, d := range fleet {
		if _, err := conn.Exec(ctx, "INSERT INTO devs VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
			d.id, d.name, d.status, d.conn, d.online, d.lastActivity, d.version, d.tags, d.desired, d.reported); err != nil {
			t.Fatal(err)
		}
	}

	run := func(t *testing.T, where string, args []any) []tri {
		t.Helper()
		rows, err := conn.Query(ctx, "SELECT "+where+` FROM devs ORDER BY id COLLATE "C"`, args...)
		if err != nil {
			t.Fatalf("%v\nSQL %s", err, where)
		}
		defer rows.Close()
		var out []tri
		for rows.Next() {
			var v *bool
			if err := rows.Scan(&v); err != nil {
				t.Fatalf("%v\nSQL %s", err, where)
			}
			switch {
			case v == nil:
				out = append(out, unknown)
			case *v:
				out = append(out, yes)
			default:
				out = append(out, no)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%v\nSQL %s", err, where)
		}
		return out
	}
	t.Run("chosen", func(t *testing.T) {
		for _, src := range equivalenceConds {
			c, err := ParseCondition(src)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			checkEquivalent(t, run, PostgreSQL, fleet, c)
		}
	})
	t.Run("random", func(t *testing.T) {
		checkRandomEquivalence(t, run, PostgreSQL, fleet, 1500)
	})
	t.Run("WHERE after other parameters", func(t *testing.T) {
		q, err := Parse("SELECT * FROM devices WHERE tags.site IN ['berlin', 'paris'] AND status = 'enabled'")
		if err != nil {
			t.Fatal(err)
		}
		where, args, err := q.SQL(PostgreSQL.FirstParam(2), testMapper)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, `SELECT id FROM devs WHERE id > $1 AND `+where+` ORDER BY id COLLATE "C"`, append([]any{"dev-100"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		got := scanIDs(t, rows)
		rows.Close()
		want := matching(fleet, q, "dev-100")
		if len(want) == 0 || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("SQL selects %v, Match %v", got, want)
		}
	})
}
