package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMakeBuildSaysWhenSlow: the first `make run` printed nothing for
// minutes while cgo compiled SQLite. `make build` now says so before such a
// build, says less when only fieldhub's own sources changed, and nothing
// when the binary is current. A stand-in for the go command answers
// `go list` as a cold or warm build cache would and "builds" instantly.
func TestMakeBuildSaysWhenSlow(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dir := t.TempDir()
	fakeGo := filepath.Join(dir, "go")
	script := "#!/bin/sh\ncase \"$1\" in\nlist) echo \"$FAKE_SQLITE_STALE\" ;;\n" +
		"build) while [ $# -gt 0 ]; do if [ \"$1\" = -o ]; then shift; : > \"$1\"; fi; shift; done ;;\nesac\n"
	if err := os.WriteFile(fakeGo, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "fieldhub")
	build := func(sqliteStale bool) string {
		t.Helper()
		cmd := exec.Command("make", "--no-print-directory", "build", "GO="+fakeGo, "BIN="+bin)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "FAKE_SQLITE_STALE="+map[bool]string{true: "true", false: "false"}[sqliteStale])
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make build: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	slow := "Building " + bin + " (the first build compiles SQLite and takes a few minutes)…"
	if got := build(true); got != slow {
		t.Errorf("first build with a cold cache printed %q, want %q", got, slow)
	}
	if got := build(false); got != "" {
		t.Errorf("build with nothing changed printed %q, want nothing", got)
	}
	// Sources newer than the binary, SQLite in the cache.
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(bin, old, old); err != nil {
		t.Fatal(err)
	}
	if got, want := build(false), "Building "+bin+"…"; got != want {
		t.Errorf("build after a source change printed %q, want %q", got, want)
	}
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if got, want := build(false), "Building "+bin+"…"; got != want {
		t.Errorf("build without a binary, SQLite cached, printed %q, want %q", got, want)
	}
}
