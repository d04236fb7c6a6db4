package bus_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"fieldhub/internal/testkit"
)

// natsServer is a real nats-server process on a free loopback port, its
// configuration and log in the test's temporary folder.
type natsServer struct {
	t    testing.TB
	bin  string
	conf string
	addr string
	cmd  *exec.Cmd
}

// natsInstall is what installs the server on Debian.
const natsInstall = "apt-get install -y nats-server"

// startNATS starts nats-server for the test and stops it at cleanup. The
// test is skipped when the binary is missing, or fails with FIELDHUB_REQUIRE_NATS=1
// (CI), saying how to install it.
func startNATS(t testing.TB) *natsServer {
	t.Helper()
	testkit.Slow(t, "starts nats-server")
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("FIELDHUB_REQUIRE_NATS") == "1" {
			t.Fatalf("nats-server is not installed; install it with: %s", natsInstall)
		}
		t.Skipf("nats-server is not installed (%s); set FIELDHUB_REQUIRE_NATS=1 to fail instead", natsInstall)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	// max_payload above the bus's own bound, so that the bus's refusal of
	// larger messages is what the tests see.
	text := fmt.Sprintf("host: 127.0.0.1\nport: %s\nmax_payload: 8MB\nlog_file: %q\n", port, filepath.Join(dir, "nats.log"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &natsServer{t: t, bin: bin, conf: conf, addr: addr}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// URL is the server's client URL.
func (s *natsServer) URL() string { return "nats://" + s.addr }

// start runs the server and waits until it takes connections.
func (s *natsServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-c", s.conf)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	testkit.WaitFor(s.t, "nats-server on "+s.addr, func() bool {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop kills the server (as a crash would) and waits for it to end.
func (s *natsServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func itoa(n int) string { return strconv.Itoa(n) }
