package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"fieldhub/internal/testkit"
)

// repoRoot is the repository, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// gitOutput runs git in the repository; "" when git or the checkout is missing.
func gitOutput(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// versionFields reads `fieldhub version`: the version on the first line,
// then "key: value" lines.
func versionFields(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	fields := map[string]string{"version": strings.TrimPrefix(lines[0], "fieldhub ")}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		fields[k] = strings.TrimSpace(v)
	}
	return fields
}

// TestMakeInstall builds with the Makefile and installs into a staging
// root as a package build would (DESTDIR, PREFIX), then checks what was
// installed: the version stamped in by -ldflags, the unit with its binary
// path, the environment file kept on a second install, and the unit as
// systemd-analyze verifies it.
func TestMakeInstall(t *testing.T) {
	testkit.Slow(t, "runs make install, which builds the binary")
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	stage := filepath.Join(dir, "stage")
	wantVersion := gitOutput(t, "describe", "--tags", "--always", "--dirty")
	wantCommit := gitOutput(t, "rev-parse", "HEAD")
	if wantVersion == "" {
		wantVersion, wantCommit = "dev", "unknown"
	}
	started := time.Now().UTC().Truncate(time.Second)
	install := func() string {
		cmd := exec.Command("make", "--no-print-directory", "install", "BIN="+filepath.Join(dir, "fieldhub"),
			"DESTDIR="+stage, "PREFIX=/opt/fieldhub")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return string(out)
	}
	out := install()
	if !strings.Contains(out, "systemctl enable --now fieldhub") {
		t.Errorf("make install did not print the next steps:\n%s", out)
	}
	bin := filepath.Join(stage, "opt/fieldhub/bin/fieldhub")
	unit := filepath.Join(stage, "etc/systemd/system/fieldhub.service")
	envFile := filepath.Join(stage, "etc/fieldhub/fieldhub.env")

	t.Run("version", func(t *testing.T) {
		v := versionFields(t, bin)
		if v["version"] != wantVersion || v["commit"] != wantCommit {
			t.Errorf("version %q commit %q, want %q and %q (git describe, git rev-parse)", v["version"], v["commit"], wantVersion, wantCommit)
		}
		built, err := time.Parse(time.RFC3339, v["built"])
		if err != nil || built.Before(started) || built.After(time.Now().UTC()) {
			t.Errorf("built %q (%v), want the UTC time of the build, after %s", v["built"], err, started.Format(time.RFC3339))
		}
	})
	t.Run("unit", func(t *testing.T) {
		data, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "\nExecStart=/opt/fieldhub/bin/fieldhub serve --data /var/lib/fieldhub\n") {
			t.Errorf("installed unit does not start /opt/fieldhub/bin/fieldhub:\n%s", data)
		}
		verifyUnit(t, strings.ReplaceAll(string(data), "/opt/fieldhub/bin/fieldhub", bin))
	})
	t.Run("environment file kept", func(t *testing.T) {
		if err := os.WriteFile(envFile, []byte("FIELDHUB_HOSTNAME=mine.example\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if out := install(); !strings.Contains(out, "kept "+envFile) {
			t.Errorf("second install did not say it kept %s:\n%s", envFile, out)
		}
		if data, _ := os.ReadFile(envFile); string(data) != "FIELDHUB_HOSTNAME=mine.example\n" {
			t.Errorf("second install changed %s: %q", envFile, data)
		}
	})
	t.Run("reproducible build time", func(t *testing.T) {
		cmd := exec.Command("make", "-n", "build", "SOURCE_DATE_EPOCH=86400")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-X main.buildTime=1970-01-02T00:00:00Z") {
			t.Errorf("make -n build with SOURCE_DATE_EPOCH=86400: %v\n%s", err, out)
		}
	})
}

// verifyUnit runs systemd-analyze on the unit text: verify must pass
// without a word about the unit (unknown keys and bad values are only
// warnings to it), and the hardening must keep its exposure at most 2.5
// of 10 ("OK").
func verifyUnit(t *testing.T, unitText string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Geteuid() != 0 {
			t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd; .ci/run installs it)")
		}
		t.Fatal("systemd-analyze is not installed: apt-get install systemd (.ci/run installs it)")
	}
	path := filepath.Join(t.TempDir(), "fieldhub.service")
	if err := os.WriteFile(path, []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("systemd-analyze", "verify", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	// Other units of the machine may draw remarks; ours must draw none.
	var ours []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "fieldhub") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out.String())
	}
	sec := exec.Command("systemd-analyze", "security", "--offline=true", "--threshold=25", path)
	if out, err := sec.CombinedOutput(); err != nil {
		level := regexp.MustCompile(`Overall exposure level.*`).Find(out)
		t.Errorf("systemd-analyze security --threshold=25: %v: %s", err, level)
	}
}

// TestVersionFromBuildInfo builds without -ldflags, as `go build` or
// `go install` would, and expects the commit the toolchain stamped.
func TestVersionFromBuildInfo(t *testing.T) {
	testkit.Slow(t, "builds the binary")
	bin := filepath.Join(t.TempDir(), "fieldhub")
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := regexp.MustCompile(`vcs\.revision=(\S+)`).FindSubmatch(info)
	if rev == nil {
		// The toolchain finds no .git folder in a git worktree (.git is a file there).
		t.Skip("go build recorded no VCS information here (a git worktree, or no git)")
	}
	// Go 1.24+ also derives a pseudo-version (v0.0.0-date-commit) from git.
	wantVersion := "dev"
	if m := regexp.MustCompile(`(?m)^\s*mod\s+fieldhub\s+(\S+)`).FindSubmatch(info); m != nil && string(m[1]) != "(devel)" {
		wantVersion = string(m[1])
	}
	v := versionFields(t, bin)
	if v["version"] != wantVersion || !strings.HasPrefix(v["commit"], string(rev[1])) || !strings.Contains(v["built"], "committed ") {
		t.Errorf("version without -ldflags = %v, want %s, commit %s and its commit time", v, wantVersion, rev[1])
	}
}

func TestResolveBuild(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		name                   string
		version, commit, built string
		info                   *debug.BuildInfo
		want                   buildInfo
	}{
		{"linker flags", "v1.2.0", "abc123", "2026-01-02T03:04:05Z", stamped, buildInfo{"v1.2.0", "abc123", "2026-01-02T03:04:05Z"}},
		{"vcs stamp", "", "", "", stamped, buildInfo{"dev", "abc123 (modified)", "unknown; committed 2026-01-02T03:04:05Z"}},
		{"go install module@version", "", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.3.0"}}, buildInfo{"v1.3.0", "unknown", "unknown"}},
		{"nothing known", "", "", "", nil, buildInfo{"dev", "unknown", "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolveBuild(tt.version, tt.commit, tt.built, tt.info); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
