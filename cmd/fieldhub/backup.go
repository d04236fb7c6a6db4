package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fieldhub/backup"
	"fieldhub/datadir"
	"fieldhub/db"
	"fieldhub/db/postgres"
)

func dataFolder(dataDir string) backup.Folder {
	return backup.Folder{DB: datadir.Database(dataDir), TLSDir: datadir.TLS(dataDir)}
}

// runBackup writes a backup of a data folder, also while its hub runs.
func runBackup(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "backup", "backup [--data DIR] [--force] FILE")
	data := dataFlag(fs, e)
	force := fs.Bool("force", false, "replace FILE if it exists")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("backup: expected one FILE to write, got %q", pos)
	}
	if err := sqliteOnly("backup", data); err != nil {
		return err
	}
	start := time.Now()
	info, err := backup.Create(ctx, dataFolder(*data.data), pos[0], currentBuild().Version, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s in %s: %s\n", *data.data, pos[0], time.Since(start).Round(time.Millisecond), describeBackup(info))
	fmt.Fprintln(e.stdout, "it holds the device keys and the CA's private key: keep it as safe as the data folder")
	return nil
}

// runRestore puts a backup in place for a stopped hub.
func runRestore(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "restore", "restore [--data DIR] [--force] FILE")
	data := dataFlag(fs, e)
	force := fs.Bool("force", false, "replace the database (and TLS folder) already in DIR")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("restore: expected one backup FILE, got %q", pos)
	}
	if err := sqliteOnly("restore", data); err != nil {
		return err
	}
	// Held while the database is replaced: a hub cannot start meanwhile,
	// and a running one makes the restore refuse.
	lock, err := datadir.Take(*data.data, "fieldhub restore")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer lock.Release()
	info, err := backup.Restore(ctx, pos[0], dataFolder(*data.data), *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored %s into %s: %s\n", pos[0], *data.data, describeBackup(info))
	fmt.Fprintf(e.stdout, "start the hub with: fieldhub serve --data %s\n", *data.data)
	return nil
}

// sqliteOnly refuses backup and restore of a hub whose state is in
// PostgreSQL: they copy a SQLite file, and PostgreSQL has its own tools,
// which also copy a database in use consistently.
func sqliteOnly(cmd string, l location) error {
	if *l.store == "" {
		return nil
	}
	return usagef("%s: the hub keeps its state in PostgreSQL (%s), and fieldhub %s handles the SQLite database of a data folder only; "+
		"use PostgreSQL's tools (pg_dump -Fc -f fieldhub.dump DATABASE_URL, pg_restore -d DATABASE_URL fieldhub.dump) "+
		"and copy the data folder's tls/ beside it: it holds the device endpoints' certificate and the CA's key",
		cmd, postgres.Redact(*l.store), cmd)
}

func describeBackup(info db.BackupInfo) string {
	var b strings.Builder
	if !info.TakenAt.IsZero() {
		fmt.Fprintf(&b, "taken %s by fieldhub %s, ", info.TakenAt.Local().Format(time.DateTime+" MST"), info.Version)
	}
	fmt.Fprintf(&b, "schema version %d, %s, %s (up to id %d)", info.SchemaVersion,
		plural(int64(info.Devices), "device"), plural(info.Messages, "message"), info.LastMessageID)
	if len(info.Files) > 0 {
		fmt.Fprintf(&b, ", TLS folder (%d files)", len(info.Files))
	} else {
		b.WriteString(", no TLS folder")
	}
	return b.String()
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
