package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"
)

// SQLite's own WAL checkpoint runs inside the commit that makes the log
// reach wal_autocheckpoint pages (1,000 by default): that commit then also
// copies the log's pages into the database file and fsyncs it, and every
// message waiting for it waits for that too. Under ingest that was every
// few commits. Instead a background connection checkpoints the log a few
// times a second (PASSIVE: it never waits for, nor blocks, the writer or
// the readers), and the writer checkpoints itself only when the log grew to
// writerAutoCheckpointPages all the same (a checkpointer that cannot keep
// up, or none: a process that opened the database and never checkpoints).

// writerAutoCheckpointPages is the writer connection's wal_autocheckpoint:
// about 40 MB of log with 4 KiB pages.
const writerAutoCheckpointPages = 10000

// checkpointEvery is how often the background connection checkpoints.
const checkpointEvery = 100 * time.Millisecond

// checkpointer is the background WAL checkpoint of a DB.
type checkpointer struct {
	conn *sql.DB
	stop chan struct{}
	done chan struct{}
}

// startCheckpointer opens the checkpointing connection and starts its loop.
func (d *DB) startCheckpointer(dsn string) error {
	conn := sql.OpenDB(hookedConnector(dsn, "PRAGMA wal_autocheckpoint = 0"))
	conn.SetMaxOpenConns(1)
	conn.SetMaxIdleConns(1)
	conn.SetConnMaxLifetime(0)
	if err := conn.Ping(); err != nil {
		conn.Close()
		return fmt.Errorf("open db checkpointer: %w", err)
	}
	d.ckpt = checkpointer{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go d.ckpt.run()
	return nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		// A failure (a full disk) is not reported here: the writer's
		// commits fail too and storage.Health reports them, and the
		// writer's own checkpoint does the work once the log is large.
		_, _ = c.conn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// stopCheckpointer ends the loop and closes its connection; a no-op when
// it never started.
func (d *DB) stopCheckpointer() {
	if d.ckpt.conn == nil {
		return
	}
	close(d.ckpt.stop)
	<-d.ckpt.done
	d.ckpt.conn.Close()
	d.ckpt.conn = nil
}

// hookedConnector opens SQLite connections to dsn that run init first: a
// pragma the DSN cannot carry, which every connection of a pool must have
// (database/sql may open a new one any time).
func hookedConnector(dsn, init string) driver.Connector {
	drv := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(init, nil)
		return err
	}}
	return sqliteConnector{dsn: dsn, drv: drv}
}

type sqliteConnector struct {
	dsn string
	drv *sqlite3.SQLiteDriver
}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }

func (c sqliteConnector) Driver() driver.Driver { return c.drv }
