package query

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldhub/internal/testkit"

	"github.com/jackc/pgx/v5"
)

const postgresBin = "/usr/lib/postgresql/15/bin"

// startPostgres starts a throwaway PostgreSQL server and returns a
// connection URL; it skips the test when PostgreSQL is not installed. The
// database's default collation is ICU's, which sorts strings unlike bytes,
// so that the compiled SQL must ask for byte order itself.
func startPostgres(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(postgresBin, "initdb")); err != nil {
		t.Skipf("PostgreSQL 15 is not installed at %s", postgresBin)
	}
	// t.TempDir is root's alone; the server may run as another user.
	dir, err := os.MkdirTemp("", "query-postgres-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var asUser []string
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root, and there is no postgres user to run PostgreSQL as")
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			t.Skip("running as root, and there is no runuser to run PostgreSQL as postgres")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(name string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		argv := append(append(asUser[:len(asUser):len(asUser)], filepath.Join(postgresBin, name)), args...)
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}

	data := filepath.Join(dir, "data")
	err = run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
		"--locale-provider=icu", "--icu-locale=en-US")
	if err != nil {
		t.Logf("initdb with ICU failed, falling back to the C.UTF-8 collation: %v", err)
		os.RemoveAll(data)
		if err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Error(err)
		}
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

func TestPostgreSQLMatchesEvaluator(t *testing.T) {
	testkit.Slow(t, "starts a PostgreSQL server")
	url := startPostgres(t)
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
