package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
)

// idleDevices is how many idle devices BenchmarkIdleConnections holds.
const idleDevices = 10_000

// BenchmarkIdleConnections connects 10,000 devices over TLS from a child
// process (this test binary, running TestIdleClientProcess) and reports the
// broker process's resident memory while they sit idle. b.N is ignored:
// run it with -benchtime 1x.
func BenchmarkIdleConnections(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	store, err := db.Open(ctx, filepath.Join(env.dir, "fieldhub.db"), db.Options{Synchronous: "NORMAL"})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	br, err := New(Config{
		Addr:   "127.0.0.1:0",
		TLS:    &tls.Config{Certificates: []tls.Certificate{env.cert}},
		DB:     store,
		Ingest: &recordingIngester{},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	host := "localhost:" + br.Addr()[strings.LastIndexByte(br.Addr(), ':')+1:]

	// One line per device: id and token.
	var creds strings.Builder
	for i := range idleDevices {
		dev, err := store.CreateDevice(ctx, db.NewDevice{DeviceID: fmt.Sprintf("idle%05d", i)})
		if err != nil {
			b.Fatal(err)
		}
		tok, err := auth.SignSAS(host+"/devices/"+dev.DeviceID, dev.PrimaryKey, time.Now().Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&creds, "%s %s\n", dev.DeviceID, tok)
	}
	credsFile := filepath.Join(env.dir, "creds.txt")
	if err := os.WriteFile(credsFile, []byte(creds.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	before := rssMB()

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "FIELDHUB_IDLE_CREDS="+credsFile, "FIELDHUB_IDLE_ADDR="+br.Addr(),
		"FIELDHUB_IDLE_CA="+filepath.Join(env.dir, "tls", "ca.pem"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	connected := false
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "connected ") {
			connected = true
			break
		}
		if strings.HasPrefix(lines.Text(), "FAIL") || strings.Contains(lines.Text(), "--- FAIL") {
			b.Fatalf("client process: %s", lines.Text())
		}
	}
	if !connected {
		b.Fatal("client process ended before connecting")
	}
	// Let presence records finish, then measure a settled heap.
	for len(br.presence) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	runtime.GC()
	debug.FreeOSMemory()
	after := rssMB()
	if path := os.Getenv("FIELDHUB_IDLE_HEAPPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	br.mu.Lock()
	n := len(br.byDevice)
	br.mu.Unlock()
	b.ReportMetric(float64(n), "connected")
	b.ReportMetric(after, "rss-MB")
	b.ReportMetric((after-before)*1024/idleDevices, "KB/connection")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-inuse-MB")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
}

// TestIdleClientProcess is BenchmarkIdleConnections' client side; it runs
// only in the child process the benchmark starts.
func TestIdleClientProcess(t *testing.T) {
	credsFile := os.Getenv("FIELDHUB_IDLE_CREDS")
	if credsFile == "" {
		t.Skip("runs only as BenchmarkIdleConnections' client process")
	}
	caPEM, err := os.ReadFile(os.Getenv("FIELDHUB_IDLE_CA"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	raw, err := os.ReadFile(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := os.Getenv("FIELDHUB_IDLE_ADDR")
	host := "localhost:" + addr[strings.LastIndexByte(addr, ':')+1:]
	var (
		mu      sync.Mutex
		clients []*loadClient
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 64)
		failed  error
	)
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		id, tok, _ := strings.Cut(line, " ")
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialLoad(addr, &tls.Config{RootCAs: roots, ServerName: "localhost"}, id, host+"/"+id+"/?api-version=2021-04-12", tok)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = err
				return
			}
			clients = append(clients, c)
		}()
	}
	wg.Wait()
	if failed != nil {
		t.Fatalf("connect: %v", failed)
	}
	fmt.Println("connected " + strconv.Itoa(len(clients)))
	// Hold the connections until the benchmark closes stdin.
	bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range clients {
		c.conn.Close()
	}
}

// rssMB is the process's current resident set (VmRSS), in MB.
func rssMB() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
