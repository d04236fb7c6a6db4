package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The benchmarks' devices run in a separate process, this test binary
// started again with loadgenEnv naming a JSON loadgenSpec file (see
// TestMain), so that the generator's goroutines, GC and memory do not
// count as the broker's: real devices are other machines.
//
// The process talks to the benchmark over its standard streams, one line
// at a time. It connects every device and prints "ready". On "go" from
// stdin it sends each device's warm-up message, prints "measuring", runs
// the measured load and prints "result" and a loadgenResult as JSON. When
// stdin closes it disconnects its devices and exits; before "go" that is
// how BenchmarkIdleConnections ends, during the load it means the
// benchmark died, and the process exits at once. Errors go to stderr.
const loadgenEnv = "FIELDHUB_MQTT_LOADGEN"

// loadgenSpec is what a load generator process does.
type loadgenSpec struct {
	Addr       string          `json:"addr"`
	CAFile     string          `json:"ca_file"`
	ServerName string          `json:"server_name"`
	Devices    []loadgenDevice `json:"devices"`
	// MethodTarget, if set, is one more device, which answers every
	// direct method call with status 200 and the time it answered.
	MethodTarget *loadgenDevice `json:"method_target,omitempty"`
	// DialConcurrency is how many devices connect at once.
	DialConcurrency int `json:"dial_concurrency"`
	// SourceIP, when set, is the local address the devices dial from
	// (127.0.0.2, …): one address has some 28,000 ephemeral ports towards
	// one listener, so larger fleets spread over several.
	SourceIP string `json:"source_ip,omitempty"`
	// PerDevice is how many messages each device sends in the measured
	// load; Interval paces them (0: each as soon as the previous one's
	// PUBACK is back). InFlight, when above 1 and unpaced, lets a device
	// have that many messages waiting for their PUBACK.
	PerDevice int           `json:"per_device"`
	Interval  time.Duration `json:"interval"`
	InFlight  int           `json:"in_flight,omitempty"`
}

// loadgenDevice is how one device connects.
type loadgenDevice struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// loadgenResult is the measured load as the devices saw it.
type loadgenResult struct {
	Messages int     `json:"messages"`
	Seconds  float64 `json:"seconds"`
	P50Ms    float64 `json:"puback_p50_ms"`
	P99Ms    float64 `json:"puback_p99_ms"`
	// PeakRSSMB is the generator process's own peak resident set.
	PeakRSSMB float64 `json:"peak_rss_mb"`
}

// runLoadgen is the load generator process: it runs the spec in the file
// at specPath, reading commands from control and writing its progress to
// out.
func runLoadgen(specPath string, control io.Reader, out io.Writer) error {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	var spec loadgenSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("parse spec %s: %w", specPath, err)
	}
	if len(spec.Devices) == 0 && spec.MethodTarget == nil {
		return fmt.Errorf("spec %s lists no devices", specPath)
	}
	caPEM, err := os.ReadFile(spec.CAFile)
	if err != nil {
		return fmt.Errorf("read CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no PEM certificate in %s", spec.CAFile)
	}
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: spec.ServerName}

	start, eof := make(chan struct{}), make(chan struct{})
	go func() {
		lines := bufio.NewScanner(control)
		started := false
		for lines.Scan() {
			if lines.Text() == "go" && !started {
				started = true
				close(start)
			}
		}
		close(eof)
	}()

	type fleet struct {
		clients []*loadClient
		target  paho.Client
		err     error
	}
	connected := make(chan fleet, 1)
	go func() {
		var f fleet
		dialer := &net.Dialer{Timeout: 30 * time.Second}
		if spec.SourceIP != "" {
			ip := net.ParseIP(spec.SourceIP)
			if ip == nil {
				f.err = fmt.Errorf("source address %q is not an IP address", spec.SourceIP)
				connected <- f
				return
			}
			dialer.LocalAddr = &net.TCPAddr{IP: ip}
		}
		f.clients, f.err = connectDevices(dialer, spec.Addr, tlsCfg, spec.Devices, max(1, spec.DialConcurrency))
		if f.err == nil && spec.MethodTarget != nil {
			if f.target, f.err = connectMethodTarget(spec.Addr, tlsCfg, *spec.MethodTarget); f.err != nil {
				closeAll(f.clients)
			}
		}
		connected <- f
	}()
	var f fleet
	select {
	case <-eof:
		return errors.New("stdin closed while connecting: the benchmark is gone")
	case f = <-connected:
	}
	if f.err != nil {
		return f.err
	}
	disconnect := func() {
		if f.target != nil {
			f.target.Disconnect(0)
		}
		closeAll(f.clients)
	}
	fmt.Fprintln(out, "ready")
	if len(f.clients) == 0 {
		// Only the method target: it answers until the benchmark is done.
		<-eof
		disconnect()
		return nil
	}
	select {
	case <-eof:
		disconnect()
		return nil
	case <-start:
	}

	type outcome struct {
		r   loadgenResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := publishLoad(f.clients, spec, func() { fmt.Fprintln(out, "measuring") })
		done <- outcome{r, err}
	}()
	var o outcome
	select {
	case <-eof:
		return errors.New("stdin closed during the load: the benchmark is gone")
	case o = <-done:
	}
	if o.err != nil {
		return o.err
	}
	o.r.PeakRSSMB = peakRSSMB()
	js, err := json.Marshal(o.r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	fmt.Fprintf(out, "result %s\n", js)
	<-eof
	disconnect()
	return nil
}

// connectDevices connects every device, concurrency at a time.
func connectDevices(dialer *net.Dialer, addr string, cfg *tls.Config, devices []loadgenDevice, concurrency int) ([]*loadClient, error) {
	clients := make([]*loadClient, len(devices))
	sem := make(chan struct{}, concurrency)
	var (
		mu     sync.Mutex
		failed []error
		wg     sync.WaitGroup
	)
	for i, dev := range devices {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialLoad(dialer, addr, cfg, dev.ID, dev.Username, dev.Password)
			if err != nil {
				mu.Lock()
				failed = append(failed, fmt.Errorf("connect %s: %w", dev.ID, err))
				mu.Unlock()
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		closeAll(clients)
		return nil, fmt.Errorf("%d of %d devices failed to connect, first: %w", len(failed), len(devices), failed[0])
	}
	return clients, nil
}

// connectMethodTarget connects a device that answers every direct method
// call, with a full client library as a real device would.
func connectMethodTarget(addr string, cfg *tls.Config, dev loadgenDevice) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID(dev.ID).
		SetUsername(dev.Username).SetPassword(dev.Password).
		SetTLSConfig(cfg).SetProtocolVersion(4).
		SetAutoReconnect(false).SetOrderMatters(false)
	c := paho.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(wait) || t.Error() != nil {
		return nil, fmt.Errorf("connect method target %s: %v", dev.ID, t.Error())
	}
	// The answer is the time it is sent (Unix ns, this machine's clock), so
	// that a benchmark tells the way out from the way back.
	answer := func(c paho.Client, m paho.Message) {
		rid := m.Topic()[strings.Index(m.Topic(), "$rid=")+len("$rid="):]
		c.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, strconv.AppendInt(nil, time.Now().UnixNano(), 10))
	}
	if t := c.Subscribe("$iothub/methods/POST/#", 0, answer); !t.WaitTimeout(wait) || t.Error() != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe method target %s: %v", dev.ID, t.Error())
	}
	return c, nil
}

// publishLoad sends one warm-up message per device, calls measuring, then
// sends spec.PerDevice messages per device and returns what they took.
func publishLoad(clients []*loadClient, spec loadgenSpec, measuring func()) (loadgenResult, error) {
	errs := make(chan error, len(clients))
	// Warm up: a device's first message creates its series, a one-off cost
	// that would otherwise be 1-2 % of a run and all of its p99.
	var warm sync.WaitGroup
	for i, c := range clients {
		warm.Add(1)
		go func() {
			defer warm.Done()
			if _, err := c.publish("devices/"+spec.Devices[i].ID+"/messages/events/", benchBody(i, 0)); err != nil {
				errs <- fmt.Errorf("warm-up publish from %s: %w", spec.Devices[i].ID, err)
			}
		}()
	}
	warm.Wait()
	if len(errs) > 0 {
		return loadgenResult{}, <-errs
	}
	measuring()

	// Paced devices send on a schedule spread over the interval; a late
	// PUBACK delays the next message, as in a real device.
	lat := make([][]time.Duration, len(clients))
	interval := spec.Interval
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := "devices/" + spec.Devices[i].ID + "/messages/events/%24.ct=application%2Fjson"
			if spec.InFlight > 1 && interval == 0 {
				var err error
				lat[i], err = c.publishWindow(topic, spec.PerDevice, spec.InFlight, func(n int) []byte { return benchBody(i, n) })
				if err != nil {
					errs <- fmt.Errorf("publish from %s: %w", spec.Devices[i].ID, err)
				}
				return
			}
			lat[i] = make([]time.Duration, 0, spec.PerDevice)
			offset := interval * time.Duration(i) / time.Duration(len(clients))
			for n := range spec.PerDevice {
				if interval > 0 {
					time.Sleep(time.Until(start.Add(offset + time.Duration(n)*interval)))
				}
				d, err := c.publish(topic, benchBody(i, n))
				if err != nil {
					errs <- fmt.Errorf("publish from %s: %w", spec.Devices[i].ID, err)
					return
				}
				lat[i] = append(lat[i], d)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	var failed []error
	for err := range errs {
		failed = append(failed, err)
	}
	if len(failed) > 0 {
		return loadgenResult{}, fmt.Errorf("%d of %d devices failed, first: %w", len(failed), len(clients), failed[0])
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return loadgenResult{}, errors.New("no message sent")
	}
	slices.Sort(all)
	return loadgenResult{
		Messages: len(all),
		Seconds:  elapsed.Seconds(),
		P50Ms:    float64(all[len(all)/2]) / float64(time.Millisecond),
		P99Ms:    float64(all[len(all)*99/100]) / float64(time.Millisecond),
	}, nil
}

func closeAll(clients []*loadClient) {
	for _, c := range clients {
		if c != nil {
			c.close()
		}
	}
}

// loadgen is a running load generator process, as the benchmark sees it.
type loadgen struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *syncBuffer

	waitOnce sync.Once
	waitErr  error
}

// startLoadgen starts a load generator process for spec and returns once
// all its devices are connected. The process is stopped when b ends, and
// killed if it does not stop.
func startLoadgen(b *testing.B, dir string, spec loadgenSpec) *loadgen {
	b.Helper()
	g := launchLoadgen(b, dir, spec)
	g.await(b, "ready")
	return g
}

// launchLoadgen starts a load generator process for spec without waiting
// for its devices to connect (g.await(b, "ready") does), so that several
// processes connect at once.
func launchLoadgen(b *testing.B, dir string, spec loadgenSpec) *loadgen {
	b.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		b.Fatalf("encode load generator spec: %v", err)
	}
	f, err := os.CreateTemp(dir, "loadgen-*.json")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write(raw); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	ctx, kill := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), loadgenEnv+"="+f.Name())
	g := &loadgen{cmd: cmd, stderr: new(syncBuffer)}
	cmd.Stderr = g.stderr
	if g.stdin, err = cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	g.lines = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		kill()
		b.Fatalf("start load generator: %v", err)
	}
	b.Cleanup(func() {
		// Closing stdin asks it to disconnect its devices and exit.
		g.stdin.Close()
		t := time.AfterFunc(30*time.Second, kill)
		g.wait()
		t.Stop()
		kill()
	})
	return g
}

// begin starts the load, waits out the warm-up and resets b's timer.
func (g *loadgen) begin(b *testing.B) {
	b.Helper()
	if _, err := io.WriteString(g.stdin, "go\n"); err != nil {
		g.fail(b, fmt.Sprintf("send go: %v", err))
	}
	g.await(b, "measuring")
	b.ResetTimer()
}

// result waits for the end of the load, stops b's timer and returns the
// generator's figures.
func (g *loadgen) result(b *testing.B) loadgenResult {
	b.Helper()
	line := g.await(b, "result")
	b.StopTimer()
	var r loadgenResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		g.fail(b, fmt.Sprintf("parse result %q: %v", line, err))
	}
	if r.Messages == 0 || r.Seconds <= 0 {
		g.fail(b, fmt.Sprintf("empty result %q", line))
	}
	return r
}

// await reads the generator's output up to the line word and returns the
// rest of that line.
func (g *loadgen) await(b *testing.B, word string) string {
	b.Helper()
	for g.lines.Scan() {
		if got, rest, _ := strings.Cut(g.lines.Text(), " "); got == word {
			return rest
		}
	}
	g.fail(b, fmt.Sprintf("ended before %q (read: %v)", word, g.lines.Err()))
	return ""
}

// fail stops the generator and fails b with what it wrote to stderr.
func (g *loadgen) fail(b *testing.B, what string) {
	b.Helper()
	g.stdin.Close()
	t := time.AfterFunc(10*time.Second, func() { g.cmd.Process.Kill() })
	err := g.wait()
	t.Stop()
	b.Fatalf("load generator: %s; exit: %v; stderr:\n%s", what, err, g.stderr)
}

func (g *loadgen) wait() error {
	g.waitOnce.Do(func() { g.waitErr = g.cmd.Wait() })
	return g.waitErr
}

// syncBuffer collects a child process's stderr while the benchmark may
// read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// loadClient is a minimal MQTT 3.1.1 publisher for benchmarks: CONNECT,
// then QoS 1 publishes with one in flight, timing each PUBACK. It is far
// lighter than a full client library, so the load generator takes as
// little as possible of the CPU the broker is measured on.
type loadClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	buf  []byte
	id   uint16
}

func dialLoad(dialer *net.Dialer, addr string, cfg *tls.Config, clientID, username, password string) (*loadClient, error) {
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	c := &loadClient{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	var vh []byte
	vh = appendString(vh, "MQTT")
	vh = append(vh, 4, 0x80|0x40, 0, 180) // level 4; username and password; clean=false; keepalive 180 s
	vh = appendString(vh, clientID)
	vh = appendString(vh, username)
	vh = appendString(vh, password)
	if err := c.writePacket(0x10, vh); err != nil {
		conn.Close()
		return nil, err
	}
	typ, body, err := c.readPacket()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	if typ != 0x20 || len(body) != 2 || body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connect refused: packet %#x %v", typ, body)
	}
	return c, nil
}

// publish sends one QoS 1 message and waits for its PUBACK.
func (c *loadClient) publish(topic string, payload []byte) (time.Duration, error) {
	c.id++
	if c.id == 0 {
		c.id = 1
	}
	c.buf = appendString(c.buf[:0], topic)
	c.buf = binary.BigEndian.AppendUint16(c.buf, c.id)
	c.buf = append(c.buf, payload...)
	start := time.Now()
	if err := c.writePacket(0x32, c.buf); err != nil {
		return 0, err
	}
	for {
		typ, body, err := c.readPacket()
		if err != nil {
			return 0, fmt.Errorf("wait for PUBACK: %w", err)
		}
		if typ == 0x40 && len(body) == 2 && binary.BigEndian.Uint16(body) == c.id {
			return time.Since(start), nil
		}
	}
}

// publishWindow sends count QoS 1 messages with up to window of them
// waiting for their PUBACK, as an SDK does when the application sends
// without awaiting each one, and returns each message's time from write
// to PUBACK. The broker acknowledges in order.
func (c *loadClient) publishWindow(topic string, count, window int, body func(n int) []byte) ([]time.Duration, error) {
	type sent struct {
		id    uint16
		start time.Time
	}
	lat := make([]time.Duration, 0, count)
	var inFlight []sent
	for n := 0; n < count || len(inFlight) > 0; {
		for n < count && len(inFlight) < window {
			c.id++
			if c.id == 0 {
				c.id = 1
			}
			c.buf = appendString(c.buf[:0], topic)
			c.buf = binary.BigEndian.AppendUint16(c.buf, c.id)
			c.buf = append(c.buf, body(n)...)
			c.writeHeader(0x32, len(c.buf))
			c.w.Write(c.buf)
			inFlight = append(inFlight, sent{c.id, time.Now()})
			n++
		}
		if err := c.w.Flush(); err != nil {
			return nil, err
		}
		typ, ack, err := c.readPacket()
		if err != nil {
			return nil, fmt.Errorf("wait for PUBACK: %w", err)
		}
		if typ != 0x40 || len(ack) != 2 {
			continue
		}
		if id := binary.BigEndian.Uint16(ack); id != inFlight[0].id {
			return nil, fmt.Errorf("PUBACK for packet %d, want %d: acknowledgements out of order", id, inFlight[0].id)
		}
		lat = append(lat, time.Since(inFlight[0].start))
		inFlight = inFlight[1:]
	}
	return lat, nil
}

func (c *loadClient) close() {
	c.w.Write([]byte{0xe0, 0}) // DISCONNECT
	c.w.Flush()
	c.conn.Close()
}

func (c *loadClient) writePacket(header byte, body []byte) error {
	c.writeHeader(header, len(body))
	c.w.Write(body)
	return c.w.Flush()
}

// writeHeader buffers a fixed header: the packet type and flags, then the
// remaining length n.
func (c *loadClient) writeHeader(header byte, n int) {
	c.w.WriteByte(header)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		c.w.WriteByte(b)
		if n == 0 {
			return
		}
	}
}

func (c *loadClient) readPacket() (byte, []byte, error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&127) * mul
		mul *= 128
		if b&128 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return h & 0xf0, body, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}
