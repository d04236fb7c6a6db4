// Package bustest runs a real nats-server for tests of the bus and of
// instances joined by it.
package bustest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"fieldhub/internal/testkit"
)

// Server is a real nats-server process on a free loopback port, its
// configuration and log in the test's temporary folder.
type Server struct {
	t    testing.TB
	bin  string
	conf string
	addr string
	cmd  *exec.Cmd
}

// Install is what installs the server on Debian.
const Install = "apt-get install -y nats-server"

// Start starts nats-server for the test and stops it at cleanup. The
// test is skipped when the binary is missing, or fails with FIELDHUB_REQUIRE_NATS=1
// (CI), saying how to install it.
func Start(t testing.TB) *Server {
	t.Helper()
	testkit.Slow(t, "starts nats-server")
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("FIELDHUB_REQUIRE_NATS") == "1" {
			t.Fatalf("nats-server is not installed; install it with: %s", Install)
		}
		t.Skipf("nats-server is not installed (%s); set FIELDHUB_REQUIRE_NATS=1 to fail instead", Install)
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
	s := &Server{t: t, bin: bin, conf: conf, addr: addr}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL.
func (s *Server) URL() string { return "nats://" + s.addr }

// Start runs the server again (after Stop) on the same port and waits until it takes connections.
func (s *Server) Start() {
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

// Stop kills the server (as a crash would) and waits for it to end.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
