package mqtt

// Tests of the Fieldhub patches (PATCHES.md), in the standard library's
// testing only: the upstream tests need dependencies the hub does not.

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

type allowHook struct{ HookBase }

func (h *allowHook) ID() string { return "allow" }
func (h *allowHook) Provides(b byte) bool {
	return b == OnConnectAuthenticate || b == OnACLCheck
}
func (h *allowHook) OnConnectAuthenticate(*Client, packets.Packet) bool { return true }
func (h *allowHook) OnACLCheck(*Client, string, bool) bool              { return true }

// connectPipe connects an MQTT 3.1.1 client over a pipe and returns the
// server's client and the device's end, after the CONNACK.
func connectPipe(t *testing.T, s *Server) (*Client, net.Conn) {
	t.Helper()
	server, device := net.Pipe()
	cl := s.NewClient(server, "pipe", "", false)
	done := make(chan error, 1)
	go func() { done <- s.attachClient(cl, "pipe") }()
	t.Cleanup(func() {
		device.Close()
		<-done
	})
	_ = device.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := device.Write(packets.TPacketData[packets.Connect].Get(packets.TConnectMqtt311).RawBytes); err != nil {
		t.Fatal(err)
	}
	connack := make([]byte, 4)
	if _, err := io.ReadFull(device, connack); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if connack[0] != packets.Connack<<4 || connack[3] != 0 {
		t.Fatalf("CONNACK %x, want accepted", connack)
	}
	return cl, device
}

func newPatchServer(t *testing.T) *Server {
	t.Helper()
	s := New(&Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(allowHook), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWriteLoopStartsWithFirstQueuedPacket: an established client has no
// write loop until a packet is queued for it, and then the packet goes out.
// Before the patch every client had one from the start.
func TestWriteLoopStartsWithFirstQueuedPacket(t *testing.T) {
	s := newPatchServer(t)
	cl, device := connectPipe(t, s)
	if cl.State.writeLoop.Load() {
		t.Fatal("the write loop runs before anything was queued")
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a/b", Payload: []byte("hello")}
	if _, err := s.publishToClient(cl, packets.Subscription{Filter: "a/b"}, pk); err != nil {
		t.Fatalf("queue a publish: %v", err)
	}
	if !cl.State.writeLoop.Load() {
		t.Fatal("no write loop after a packet was queued")
	}
	got := make([]byte, 2+2+len("a/b")+len("hello"))
	if _, err := io.ReadFull(device, got); err != nil {
		t.Fatalf("read the queued publish: %v", err)
	}
	if got[0]>>4 != packets.Publish || string(got[len(got)-5:]) != "hello" {
		t.Errorf("device read %q, want the publish of hello", got)
	}
}

// TestClientsConnectedCounts: the connect phase, now a function of its own,
// still counts an established client once and uncounts it when it leaves.
func TestClientsConnectedCounts(t *testing.T) {
	s := newPatchServer(t)
	cl, device := connectPipe(t, s)
	if n := s.Info.ClientsConnected; n != 1 {
		t.Fatalf("ClientsConnected = %d with one client, want 1", n)
	}
	device.Close()
	for !cl.Closed() {
		time.Sleep(time.Millisecond)
	}
	s.Listeners.ClientsWg.Wait()
	if n := s.Info.ClientsConnected; n != 0 {
		t.Errorf("ClientsConnected = %d after the client left, want 0", n)
	}
}
