//go:build linux

package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"fieldhub/certs"
	"fieldhub/certs/certstest"
)

func TestCheckPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	me := os.Getpid()
	flag := "--device-addr (env FIELDHUB_DEVICE_ADDR)"

	t.Run("taken by another process", func(t *testing.T) {
		f := CheckPort(Port{Name: "device HTTPS", Addr: taken.Addr().String(), Flag: flag}, Holder{})
		if f.Severity != Problem {
			t.Fatalf("severity %s, want problem: %+v", f.Severity, f)
		}
		// This process holds the socket; on Linux /proc names it.
		if want := fmt.Sprintf("(pid %d)", me); !strings.Contains(f.What, want) {
			t.Errorf("What %q does not name the holder %s", f.What, want)
		}
		if !strings.Contains(f.Fix, flag) {
			t.Errorf("Fix %q does not name %s", f.Fix, flag)
		}
	})
	t.Run("held by the hub on this data folder", func(t *testing.T) {
		f := CheckPort(Port{Name: "device HTTPS", Addr: taken.Addr().String(), Flag: flag}, Holder{Running: true, PID: me})
		if f.Severity != OK || !strings.Contains(f.What, "held by the hub running on this data folder") {
			t.Errorf("got %+v, want ok and held by the hub", f)
		}
	})
	t.Run("taken while some other hub runs", func(t *testing.T) {
		f := CheckPort(Port{Name: "device HTTPS", Addr: taken.Addr().String(), Flag: flag}, Holder{Running: true, PID: me + 1})
		if f.Severity != Problem {
			t.Errorf("got %+v, want a problem: the holder is not the hub", f)
		}
	})
	t.Run("free", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if f := CheckPort(Port{Name: "dashboard", Addr: addr, Flag: "--addr"}, Holder{}); f.Severity != OK || !strings.Contains(f.What, "free") {
			t.Errorf("got %+v, want ok and free", f)
		}
	})
	t.Run("any port", func(t *testing.T) {
		if f := CheckPort(Port{Name: "dashboard", Addr: "127.0.0.1:0", Flag: "--addr"}, Holder{}); f.Severity != OK {
			t.Errorf("got %+v, want ok", f)
		}
	})
	t.Run("address of another machine", func(t *testing.T) {
		f := CheckPort(Port{Name: "MQTT/TLS", Addr: "192.0.2.1:8883", Flag: "--mqtt-addr"}, Holder{})
		if f.Severity != Problem || !strings.Contains(f.What, "not an address of this machine") {
			t.Errorf("got %+v, want a problem: not an address of this machine", f)
		}
	})
}

// lockLikeAHub takes path's lock as serve does and writes the holder lines.
func lockLikeAHub(t *testing.T, path string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%d\n2026-01-02T03:04:05Z\nfieldhub serve\n", os.Getpid())
	return func() { f.Close() }
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fieldhub.lock")
	if h, f := Lock(path); h.Running || f.Severity != OK || !strings.Contains(f.What, "no hub is running") {
		t.Errorf("no lock file: %+v %+v, want no hub", h, f)
	}
	release := lockLikeAHub(t, path)
	h, f := Lock(path)
	if !h.Running || h.PID != os.Getpid() || f.Severity != OK {
		t.Errorf("held: %+v %+v, want running with pid %d", h, f, os.Getpid())
	}
	if !strings.Contains(f.What, "fieldhub serve, started 2026-01-02T03:04:05Z") {
		t.Errorf("What %q does not say what holds it", f.What)
	}
	if held, err := probeFlock(path); !held || err != nil {
		t.Errorf("probeFlock while held = %v, %v; want true", held, err)
	}
	release()
	if h, f := Lock(path); h.Running {
		t.Errorf("released: %+v %+v, want no hub", h, f)
	}
	if held, err := probeFlock(path); held || err != nil {
		t.Errorf("probeFlock after release = %v, %v; want false", held, err)
	}
}

func TestDataFolder(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want Severity
		what string
	}{
		{"existing", base, OK, "is writable by"},
		{"not there yet", filepath.Join(base, "new", "data"), OK, "serve creates it"},
		{"a file", file, Problem, "is not a folder"},
		{"below a file", filepath.Join(file, "data"), Problem, "cannot look at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := DataFolder(tt.dir)
			if f.Severity != tt.want || !strings.Contains(f.What, tt.what) {
				t.Errorf("DataFolder(%s) = %+v, want %s and %q", tt.dir, f, tt.want, tt.what)
			}
		})
	}
}

// TestAsUnprivilegedUser checks what only bites without root: a
// privileged port, and a data folder whose files belong to someone else
// (the usual leftover of a first start as root). Run as root, as CI does,
// it runs itself again as nobody.
func TestAsUnprivilegedUser(t *testing.T) {
	if os.Geteuid() == 0 {
		rerunAsNobody(t, "^TestAsUnprivilegedUser$")
		return
	}
	t.Run("privileged port", func(t *testing.T) {
		// Containers often lower the privileged range (Docker: to 0).
		start, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
		if n, _ := strconv.Atoi(strings.TrimSpace(string(start))); err == nil && n <= 443 {
			t.Skipf("ip_unprivileged_port_start is %d here: 443 is not privileged", n)
		}
		f := CheckPort(Port{Name: "device HTTPS", Addr: "127.0.0.1:443", Flag: "--device-addr"}, Holder{})
		if f.Severity != Problem || !strings.Contains(f.What, "privileged") || !strings.Contains(f.Fix, "CAP_NET_BIND_SERVICE") {
			t.Errorf("got %+v, want a problem whose fix names CAP_NET_BIND_SERVICE", f)
		}
	})
	t.Run("files not writable", func(t *testing.T) {
		dir := t.TempDir()
		db := filepath.Join(dir, "fieldhub.db")
		if err := os.WriteFile(db, nil, 0o400); err != nil {
			t.Fatal(err)
		}
		if f := DataFolder(dir); f.Severity != Problem || !strings.Contains(f.What, db) || !strings.Contains(f.Fix, "chown") {
			t.Errorf("read-only %s: %+v, want a problem naming it with a chown fix", db, f)
		}
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		if f := DataFolder(dir); f.Severity != Problem || !strings.Contains(f.What, "cannot create files") {
			t.Errorf("read-only folder: %+v, want a problem", f)
		}
	})
}

// rerunAsNobody runs the tests matching pattern in a copy of this test
// binary as user nobody, and fails with their output if they fail.
func rerunAsNobody(t *testing.T, pattern string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "doctor-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "doctor.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	cmd := exec.Command(exe, "-test.run="+pattern, "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("as nobody, nothing passed:\n%s", out)
	}
	t.Logf("as nobody:\n%s", out)
}

func TestDiskSpace(t *testing.T) {
	dir := t.TempDir()
	// The real file system under the test, with thresholds around what it has.
	tests := []struct {
		name string
		th   DiskThresholds
		want Severity
	}{
		{"plenty", DiskThresholds{}, OK},
		{"below the byte warning", DiskThresholds{WarnBytes: 1 << 62}, Warning},
		{"below the share warning", DiskThresholds{WarnPercent: 100.1}, Warning},
		{"below the problem line", DiskThresholds{WarnBytes: 1 << 62, ProblemBytes: 1 << 62}, Problem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := DiskSpace(dir, tt.th)
			if f.Severity != tt.want || !strings.Contains(f.What, "free of") {
				t.Errorf("DiskSpace = %+v, want %s", f, tt.want)
			}
			if (f.Fix == "") != (tt.want == OK) {
				t.Errorf("Fix %q with severity %s", f.Fix, f.Severity)
			}
		})
	}
	if f := DiskSpace(filepath.Join(dir, "not", "yet"), DiskThresholds{}); f.Severity != OK {
		t.Errorf("missing folder: %+v, want the space of its parent", f)
	}
}

func TestFileLimit(t *testing.T) {
	need := FileNeed{Recommended: 65536}
	tests := []struct {
		name string
		lim  Limit
		need FileNeed
		want Severity
	}{
		{"plenty", Limit{Soft: 1024, Hard: 524288}, need, OK},
		{"low", Limit{Soft: 1024, Hard: 4096}, need, Warning},
		{"below the caps", Limit{Soft: 1024, Hard: 4096}, FileNeed{Required: 10000, Recommended: 65536}, Problem},
		{"caps fit but low", Limit{Soft: 1024, Hard: 20000}, FileNeed{Required: 10000, Recommended: 65536}, Warning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := FileLimit(tt.lim, tt.need)
			if f.Severity != tt.want || !strings.Contains(f.What, strconv.FormatUint(tt.lim.Hard, 10)) {
				t.Errorf("FileLimit(%+v, %+v) = %+v, want %s", tt.lim, tt.need, f, tt.want)
			}
			if tt.want != OK && !strings.Contains(f.Fix, "LimitNOFILE") {
				t.Errorf("Fix %q does not say how to raise it", f.Fix)
			}
		})
	}
}

// TestFileLimitOfAProcess lowers the limit in a child process (lowering
// needs no privilege; it cannot be undone, hence the child) and checks
// what CheckFileLimit reads there.
func TestFileLimitOfAProcess(t *testing.T) {
	if os.Getenv("DOCTOR_FILE_LIMIT_CHILD") == "1" {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: 512}); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(3)
		}
		json.NewEncoder(os.Stdout).Encode(CheckFileLimit(FileNeed{Recommended: RecommendedFiles}))
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileLimitOfAProcess$")
	cmd.Env = append(os.Environ(), "DOCTOR_FILE_LIMIT_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var f Finding
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatalf("child said %q: %v", out, err)
	}
	if f.Severity != Warning || !strings.Contains(f.What, "may hold 512 ") || !strings.Contains(f.What, "soft limit, 256 here") {
		t.Errorf("in a process limited to 256/512: %+v, want a warning naming both", f)
	}
}

// writePair writes c's chain and key into dir as --tls-cert and --tls-key.
func writePair(t *testing.T, dir string, c *certstest.Cert) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// selfSigned writes a certificate for names valid from notBefore to
// notAfter, and its key, into dir.
func selfSigned(t *testing.T, dir string, names []string, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	return writePair(t, dir, certstest.SelfSigned(t, names[0], certstest.DNSNames(names...), certstest.Valid(notBefore, notAfter)))
}

func TestGivenCertificate(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	tests := []struct {
		name              string
		names             []string
		from, until       time.Time
		host              string
		wantNames, wantOn Severity
	}{
		{"good", []string{"hub.example"}, now.Add(-day), now.Add(90 * day), "hub.example", OK, OK},
		{"good with a port in --hostname", []string{"hub.example"}, now.Add(-day), now.Add(90 * day), "hub.example:8883", OK, OK},
		{"without the host", []string{"other.example"}, now.Add(-day), now.Add(90 * day), "hub.example", Problem, OK},
		{"localhost by default", []string{"hub.example"}, now.Add(-day), now.Add(90 * day), "", Problem, OK},
		{"expires soon", []string{"hub.example"}, now.Add(-day), now.Add(10 * day), "hub.example", OK, Warning},
		{"expired", []string{"hub.example"}, now.Add(-90 * day), now.Add(-day), "hub.example", OK, Problem},
		{"not yet valid", []string{"hub.example"}, now.Add(day), now.Add(90 * day), "hub.example", OK, Problem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, key := selfSigned(t, t.TempDir(), tt.names, tt.from, tt.until)
			got := Certificate(CertSource{CertFile: cert, KeyFile: key}, tt.host, now, false)
			if len(got) != 2 {
				t.Fatalf("got %d findings, want names and validity: %+v", len(got), got)
			}
			if got[0].Severity != tt.wantNames {
				t.Errorf("names: %+v, want %s", got[0], tt.wantNames)
			}
			if tt.wantNames == Problem && !strings.Contains(got[0].What, tt.names[0]) {
				t.Errorf("names: %q does not list the certificate's names", got[0].What)
			}
			if got[1].Severity != tt.wantOn {
				t.Errorf("validity: %+v, want %s", got[1], tt.wantOn)
			}
			for _, f := range got {
				if (f.Fix == "") != (f.Severity == OK) {
					t.Errorf("Fix %q with severity %s", f.Fix, f.Severity)
				}
			}
		})
	}
	t.Run("intermediate expires soon", func(t *testing.T) {
		root := certstest.NewCA(t, "Root", certstest.Valid(now.Add(-day), now.Add(3650*day)))
		inter := root.Intermediate(t, "Intermediate", certstest.Valid(now.Add(-day), now.Add(10*day)))
		leaf := inter.Issue(t, "hub.example", certstest.DNSNames("hub.example"), certstest.Valid(now.Add(-day), now.Add(5*day)))
		cert, key := writePair(t, t.TempDir(), leaf)
		got := Certificate(CertSource{CertFile: cert, KeyFile: key}, "hub.example", now, false)
		if len(got) != 3 || got[0].Severity != OK || got[1].Severity != Warning || got[2].Severity != Warning ||
			!strings.Contains(got[2].What, `"Intermediate" in the chain`) {
			t.Errorf("got %+v, want names ok, then the leaf and the intermediate expiring soon", got)
		}
	})
	t.Run("key of another certificate", func(t *testing.T) {
		cert, _ := selfSigned(t, t.TempDir(), []string{"hub.example"}, now.Add(-day), now.Add(90*day))
		_, otherKey := selfSigned(t, t.TempDir(), []string{"hub.example"}, now.Add(-day), now.Add(90*day))
		got := Certificate(CertSource{CertFile: cert, KeyFile: otherKey}, "hub.example", now, false)
		if len(got) != 1 || got[0].Severity != Problem {
			t.Errorf("got %+v, want one problem", got)
		}
	})
}

func TestGeneratedCertificate(t *testing.T) {
	data := t.TempDir()
	now := time.Now()
	if got := Certificate(CertSource{DataDir: data}, "hub.example", now, false); len(got) != 1 || got[0].Severity != OK ||
		!strings.Contains(got[0].What, "serve creates") {
		t.Errorf("before the first start: %+v, want ok, created at start", got)
	}
	if _, err := certs.Ensure(filepath.Join(data, "tls"), []string{"hub.example"}, now); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		host       string
		now        time.Time
		hubRunning bool
		want       Severity
		what       string
	}{
		{"fits", "hub.example", now, false, OK, "names hub.example"},
		{"fits a running hub", "hub.example", now, true, OK, "names hub.example"},
		{"another name, re-issued at start", "other.example", now, false, OK, "re-issues it at start"},
		{"another name while the hub runs", "other.example", now, true, Warning, "the running hub's certificate"},
		{"near its end, re-issued at start", "hub.example", now.Add(390 * 24 * time.Hour), false, OK, "re-issues it at start"},
		{"near its end while the hub runs", "hub.example", now.Add(390 * 24 * time.Hour), true, Warning, "expires on"},
		{"past its end while the hub runs", "hub.example", now.Add(400 * 24 * time.Hour), true, Problem, "expired on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Certificate(CertSource{DataDir: data}, tt.host, tt.now, tt.hubRunning)
			if len(got) != 2 || got[0].Severity != OK || !strings.Contains(got[0].What, "the hub's CA") {
				t.Fatalf("got %+v, want the CA's validity (ok) first", got)
			}
			if f := got[1]; f.Severity != tt.want || !strings.Contains(f.What, tt.what) {
				t.Errorf("server certificate: %+v, want %s and %q", f, tt.want, tt.what)
			}
		})
	}
	if got := Certificate(CertSource{DataDir: data}, "hub.example", now.Add(11*365*24*time.Hour), false); got[0].Severity != Problem ||
		!strings.Contains(got[0].Fix, certs.CAKeyFile) {
		t.Errorf("CA expired: %+v, want a problem saying how to start over", got[0])
	}
}

func TestClock(t *testing.T) {
	var offset time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A Date set by the handler is what the server sends.
		w.Header().Set("Date", time.Now().Add(offset).UTC().Format(http.TimeFormat))
	}))
	defer srv.Close()
	tests := []struct {
		offset time.Duration
		want   Severity
		dir    string
	}{
		{0, OK, ""},
		{2 * time.Minute, Warning, "behind"},
		{-2 * time.Minute, Warning, "ahead of"},
		{time.Hour, Problem, "behind"},
	}
	for _, tt := range tests {
		t.Run(tt.offset.String(), func(t *testing.T) {
			offset = tt.offset
			f := Clock(context.Background(), srv.Client(), srv.URL, time.Now, ClockTolerance)
			if f.Severity != tt.want || !strings.Contains(f.What, tt.dir) {
				t.Errorf("server %s off: %+v, want %s, %q", tt.offset, f, tt.want, tt.dir)
			}
			if tt.want != OK && !strings.Contains(f.Fix, "NTP") {
				t.Errorf("Fix %q does not say how", f.Fix)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + ln.Addr().String()
		ln.Close()
		if f := Clock(context.Background(), nil, url, time.Now, ClockTolerance); f.Severity != Warning || !strings.Contains(f.What, "cannot compare") {
			t.Errorf("got %+v, want a warning", f)
		}
	})
}

func TestRunCountsTheHubsPorts(t *testing.T) {
	data := t.TempDir()
	release := lockLikeAHub(t, filepath.Join(data, "fieldhub.lock"))
	defer release()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	got := Run(context.Background(), Config{
		DataDir: data, LockFile: filepath.Join(data, "fieldhub.lock"),
		Ports: []Port{{Name: "dashboard", Addr: held.Addr().String(), Flag: "--addr"}},
		Files: FileNeed{Recommended: 1}, Disk: DiskThresholds{ProblemBytes: 1},
	})
	checks := map[string]int{}
	for _, f := range got {
		checks[f.Check]++
		if f.Severity != OK {
			t.Errorf("%+v, want ok", f)
		}
	}
	want := map[string]int{"data folder": 2, "port": 1, "certificate": 1, "file limit": 1, "disk space": 1}
	if fmt.Sprint(checks) != fmt.Sprint(want) {
		t.Errorf("checks run %v, want %v", checks, want)
	}
	if Worst(got) != OK {
		t.Errorf("Worst = %s", Worst(got))
	}
}

// TestDataFolderKeepsSQLiteLocks: closing any descriptor of a file drops
// every POSIX lock this process holds on it, and SQLite locks its files
// so. serve runs DataFolder with its database open, so the check must not
// open the files it checks. A child process looks for the lock (a process
// never sees its own).
func TestDataFolderKeepsSQLiteLocks(t *testing.T) {
	if path := os.Getenv("DOCTOR_LOCK_CHILD"); path != "" {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(3)
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
			fmt.Println("F_GETLK:", err)
			os.Exit(3)
		}
		fmt.Println(lk.Type != syscall.F_UNLCK)
		os.Exit(0)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "fieldhub.db")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	locked := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDataFolderKeepsSQLiteLocks$")
		cmd.Env = append(os.Environ(), "DOCTOR_LOCK_CHILD="+path)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := locked(); got != "true" {
		t.Fatalf("before the check, the child sees locked = %s", got)
	}
	if f := DataFolder(dir); f.Severity != OK {
		t.Errorf("DataFolder = %+v", f)
	}
	if got := locked(); got != "true" {
		t.Errorf("after DataFolder, the child sees locked = %s: the check dropped this process's lock", got)
	}
}
