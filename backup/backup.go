// Package backup copies a hub's data into one file while the hub runs, and
// puts such a file back in place for a stopped hub.
//
// The file is a SQLite database (see db.WriteBackup): the hub's database as
// of the moment the backup began, with the TLS folder inside it, since
// devices trust the hub's CA and a restored hub must keep its key. One file
// rather than an archive: an archive's header needs the database's size, so
// it would need a second full copy on disk while it is written.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"fieldhub/db"
)

// Folder is where a hub keeps what a backup holds.
type Folder struct {
	DB     string // the database file, <data>/fieldhub.db
	TLSDir string // <data>/tls: the generated CA and server certificate
}

// tlsPrefix is how the TLS folder's files are named inside a backup.
const tlsPrefix = "tls/"

// ErrExists means the target already holds data and force was not given.
var ErrExists = errors.New("already exists")

// Create writes a backup of folder to file while the hub may be running
// and ingesting: it never writes to the hub's database. An existing file is
// replaced only with force, and never when it is the database itself.
func Create(ctx context.Context, folder Folder, file, version string, force bool) (db.BackupInfo, error) {
	if _, err := os.Stat(folder.DB); err != nil {
		return db.BackupInfo{}, fmt.Errorf("backup: no database to back up: %w", err)
	}
	if st, err := os.Stat(file); err == nil {
		if isDatabaseFile(st, folder.DB) {
			return db.BackupInfo{}, fmt.Errorf("backup: %s is the hub's own database; write the backup elsewhere", file)
		}
		if !force {
			return db.BackupInfo{}, fmt.Errorf("backup: %s %w; pass --force to replace it", file, ErrExists)
		}
	}
	files, err := readTLS(folder.TLSDir)
	if err != nil {
		return db.BackupInfo{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.partial")
	if err != nil {
		return db.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(tmp.Name())
		}
	}()
	info, err := db.WriteBackup(ctx, folder.DB, tmp.Name(), version, files)
	if err != nil {
		return db.BackupInfo{}, err
	}
	if err := syncFile(tmp.Name()); err != nil {
		return db.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return db.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	done = true
	if err := syncDir(filepath.Dir(file)); err != nil {
		return db.BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	return info, nil
}

// Restore puts the backup in file in place of folder's database, and of
// its TLS folder when the backup holds one. The hub must be stopped; the
// caller holds the data folder's lock. The backup is checked first (see
// db.VerifyBackup) on a copy beside the database, which then replaces it
// with a rename, so a failed restore leaves the folder as it was. Existing
// data is replaced only with force.
func Restore(ctx context.Context, file string, folder Folder, force bool) (db.BackupInfo, error) {
	src, err := os.Stat(file)
	if err != nil {
		return db.BackupInfo{}, fmt.Errorf("restore: %w", err)
	}
	if isDatabaseFile(src, folder.DB) {
		return db.BackupInfo{}, fmt.Errorf("restore: %s is the hub's own database", file)
	}
	hasDB := exists(folder.DB) || exists(folder.DB+"-wal")
	if hasDB && !force {
		return db.BackupInfo{}, fmt.Errorf("restore: %s %w; pass --force to replace it", folder.DB, ErrExists)
	}
	if err := os.MkdirAll(filepath.Dir(folder.DB), 0o700); err != nil {
		return db.BackupInfo{}, fmt.Errorf("restore: %w", err)
	}

	// Everything is prepared beside its target, then renamed into place.
	staged := folder.DB + ".restoring"
	stagedTLS := folder.TLSDir + ".restoring"
	done := false
	defer func() {
		if !done {
			os.Remove(staged)
			os.RemoveAll(stagedTLS)
		}
	}()
	if err := copyFile(file, staged); err != nil {
		return db.BackupInfo{}, fmt.Errorf("restore: %w", err)
	}
	info, files, err := db.VerifyBackup(ctx, staged)
	if err != nil {
		return db.BackupInfo{}, fmt.Errorf("restore: %s: %w", file, err)
	}
	var tlsFiles []db.BackupFile
	for _, f := range files {
		name := filepath.ToSlash(f.Name)
		if !strings.HasPrefix(name, tlsPrefix) {
			return db.BackupInfo{}, fmt.Errorf("restore: %s holds %s, which this version of fieldhub does not know", file, name)
		}
		f.Name = filepath.FromSlash(strings.TrimPrefix(name, tlsPrefix))
		if !filepath.IsLocal(f.Name) {
			return db.BackupInfo{}, fmt.Errorf("restore: %s holds %s, outside the TLS folder", file, name)
		}
		tlsFiles = append(tlsFiles, f)
	}
	if len(tlsFiles) > 0 {
		if hasFiles(folder.TLSDir) && !force {
			return db.BackupInfo{}, fmt.Errorf("restore: %s %w; pass --force to replace it", folder.TLSDir, ErrExists)
		}
		if err := writeTLS(stagedTLS, tlsFiles); err != nil {
			return db.BackupInfo{}, fmt.Errorf("restore: %w", err)
		}
	}
	if err := db.StripBackup(ctx, staged); err != nil {
		return db.BackupInfo{}, fmt.Errorf("restore: %w", err)
	}
	if err := syncFile(staged); err != nil {
		return db.BackupInfo{}, fmt.Errorf("restore: %w", err)
	}

	// The old database goes aside with its WAL: a WAL left beside the new
	// file would be replayed into it.
	var replaced []string
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		old := folder.DB + suffix
		if !exists(old) {
			continue
		}
		aside := folder.DB + ".replaced" + suffix
		if err := os.Rename(old, aside); err != nil {
			return db.BackupInfo{}, fmt.Errorf("restore: move the old database aside: %w", err)
		}
		replaced = append(replaced, aside)
	}
	if err := os.Rename(staged, folder.DB); err != nil {
		return db.BackupInfo{}, fmt.Errorf("restore: %w (the old database is in %s.replaced)", err, folder.DB)
	}
	if len(tlsFiles) > 0 {
		if exists(folder.TLSDir) {
			aside := folder.TLSDir + ".replaced"
			os.RemoveAll(aside)
			if err := os.Rename(folder.TLSDir, aside); err != nil {
				return db.BackupInfo{}, fmt.Errorf("restore: move the old TLS folder aside: %w", err)
			}
			replaced = append(replaced, aside)
		}
		if err := os.Rename(stagedTLS, folder.TLSDir); err != nil {
			return db.BackupInfo{}, fmt.Errorf("restore: %w", err)
		}
	}
	done = true
	if err := syncDir(filepath.Dir(folder.DB)); err != nil {
		return db.BackupInfo{}, fmt.Errorf("restore: %w", err)
	}
	for _, old := range replaced {
		os.RemoveAll(old)
	}
	return info, nil
}

// readTLS reads the regular files of the TLS folder (none when it does not
// exist, as with --tls-cert).
func readTLS(dir string) ([]db.BackupFile, error) {
	var files []db.BackupFile
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return filepath.SkipDir
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if st.Size() > db.MaxBackupFileSize {
			return fmt.Errorf("%s is %d bytes, more than a TLS file should be (%d)", path, st.Size(), db.MaxBackupFileSize)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, db.BackupFile{Name: tlsPrefix + filepath.ToSlash(rel), Mode: st.Mode().Perm(), Content: content})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup: read the TLS folder: %w", err)
	}
	return files, nil
}

// writeTLS writes files into a new folder dir, each synced.
func writeTLS(dir string, files []db.BackupFile) error {
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.Mode|0o600)
		if err != nil {
			return err
		}
		_, err = out.Write(f.Content)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return syncDir(dir)
}

// copyFile copies src to a new file dst and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes renames and new files in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// isDatabaseFile reports whether st is the database at dbPath or one of
// its WAL files.
func isDatabaseFile(st os.FileInfo, dbPath string) bool {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if other, err := os.Stat(dbPath + suffix); err == nil && os.SameFile(st, other) {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// hasFiles reports whether dir exists and holds anything.
func hasFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}
