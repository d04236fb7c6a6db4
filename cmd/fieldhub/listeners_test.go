package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"fieldhub/app"
	"fieldhub/internal/testkit"
	"fieldhub/netlimit"
)

func TestListenFlags(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(serveConfig) string // "" when right
		wantErr string
	}{
		{"defaults", nil, nil, func(c serveConfig) string {
			if c.Listen.DashboardConns.PerSource != 64 || c.Listen.DashboardConns.Total != 0 || c.Listen.DeviceConns.PerSource != 1024 ||
				c.Listen.MQTTConns.PerSource != 1024 || c.DashboardTLS || c.TrustedProxies != nil {
				return fmt.Sprintf("%+v", c.Listen)
			}
			return ""
		}, ""},
		{"flags", nil, []string{"--dashboard-max-conns", "10", "--mqtt-max-conns-per-ip", "0", "--dashboard-tls",
			"--trusted-proxies", "10.0.0.0/8, 192.0.2.1,::1"}, func(c serveConfig) string {
			want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("::1/128")}
			if c.Listen.DashboardConns.Total != 10 || c.Listen.MQTTConns.PerSource != 0 || !c.DashboardTLS ||
				fmt.Sprint(c.TrustedProxies) != fmt.Sprint(want) || fmt.Sprint(c.Listen.DeviceConns.Exempt) != fmt.Sprint(want) {
				return fmt.Sprintf("%+v %v", c.Listen, c.TrustedProxies)
			}
			return ""
		}, ""},
		{"environment", map[string]string{"FIELDHUB_DEVICE_MAX_CONNS_PER_IP": "5000", "FIELDHUB_DASHBOARD_TLS": "1",
			"FIELDHUB_TRUSTED_PROXIES": "172.16.0.0/12"}, nil, func(c serveConfig) string {
			if c.Listen.DeviceConns.PerSource != 5000 || !c.DashboardTLS || len(c.Listen.DashboardConns.Exempt) != 1 {
				return fmt.Sprintf("%+v", c.Listen)
			}
			return ""
		}, ""},
		{"flag beats environment", map[string]string{"FIELDHUB_MQTT_MAX_CONNS": "7"}, []string{"--mqtt-max-conns", "8"}, func(c serveConfig) string {
			if c.Listen.MQTTConns.Total != 8 {
				return fmt.Sprint(c.Listen.MQTTConns.Total)
			}
			return ""
		}, ""},
		{"bad environment", map[string]string{"FIELDHUB_MQTT_MAX_CONNS": "lots"}, nil, nil, `FIELDHUB_MQTT_MAX_CONNS="lots"`},
		{"negative", nil, []string{"--device-max-conns", "-1"}, nil, "--device-max-conns must be 0 or more"},
		{"bad proxy", nil, []string{"--trusted-proxies", "10.0.0.0/8,proxy.example"}, nil, `"proxy.example" is neither`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env{getenv: func(k string) string { return tt.env[k] }, stderr: io.Discard, stdout: io.Discard}
			cfg, err := parseServe(e, tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if exitCode(err) != 2 {
					t.Errorf("exit code %d, want 2 (usage)", exitCode(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(cfg); msg != "" {
				t.Errorf("parsed wrong: %s", msg)
			}
		})
	}
}

// liveHub is `serve` running in this process on loopback ports.
type liveHub struct {
	data, dash, device, mqtt string
	url                      string // from the start banner
	password                 string // admin's, from the first start
	roots                    *x509.CertPool
	logs                     *syncBuffer
}

// startServe runs the hub in this process as serve would with args (after
// the addresses and data folder) and tweak applied to its config, with
// device dev1 registered; it stops when the test ends.
func startServe(t *testing.T, args []string, tweak func(*serveConfig)) *liveHub {
	t.Helper()
	data := t.TempDir()
	if _, _, err := cli(t, "", "device", "add", "--data", data, "dev1"); err != nil {
		t.Fatal(err)
	}
	h := &liveHub{data: data, logs: &syncBuffer{}, mqtt: freeAddr(t), device: freeAddr(t)}
	h.dash = freeAddr(t)
	args = append([]string{"--data", data, "--addr", h.dash, "--device-addr", h.device, "--mqtt-addr", h.mqtt}, args...)
	e := env{getenv: func(string) string { return "" }, stdin: strings.NewReader(""), stdout: io.Discard, stderr: h.logs}
	cfg, err := parseServe(e, args)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, nil))
	hub, err := app.New(context.Background(), cfg.Config)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, h.logs.String())
	}
	t.Cleanup(func() {
		if err := hub.Close(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("the hub's log:\n%s", h.logs.String())
		}
	})
	h.url = hub.URL() // an --addr in args wins
	if m := regexp.MustCompile(`admin password: ([^\s"]+)`).FindStringSubmatch(h.logs.String()); m != nil {
		h.password = m[1]
	}
	pem, err := os.ReadFile(filepath.Join(data, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	h.roots = x509.NewCertPool()
	h.roots.AppendCertsFromPEM(pem)
	return h
}

func (h *liveHub) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: h.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
}

// dialer connects from the loopback address src ("" for any).
func dialer(src string) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// client is an HTTP client of the hub from src, with fresh connections.
func (h *liveHub) client(src string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: dialer(src).DialContext, TLSClientConfig: h.tlsConfig(), DisableKeepAlives: true,
	}}
}

// operatorPage checks that the dashboard serves its sign-in page to src.
func (h *liveHub) operatorPage(t *testing.T, src string) {
	t.Helper()
	resp, err := h.client(src).Get(h.url + "/login")
	if err != nil {
		t.Fatalf("dashboard from %s: %v", src, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("dashboard from %s: status %d, want 200", src, resp.StatusCode)
	}
}

func (h *liveHub) deviceToken(t *testing.T) string {
	t.Helper()
	out, _, err := cli(t, "", "device", "token", "--data", h.data, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	return lastLine(out)
}

// sendTelemetry checks that dev1 gets its 204 over HTTPS from src.
func (h *liveHub) sendTelemetry(t *testing.T, src string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "https://"+h.device+"/devices/dev1/messages/events?api-version=2021-04-12", strings.NewReader(`{"t":1}`))
	req.Header.Set("Authorization", h.deviceToken(t))
	resp, err := h.client(src).Do(req)
	if err != nil {
		t.Fatalf("telemetry from %s: %v", src, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("telemetry from %s: status %d, want 204", src, resp.StatusCode)
	}
}

// publishMQTT checks that dev1 connects over MQTT from src and gets its PUBACK.
func (h *liveHub) publishMQTT(t *testing.T, src string) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("ssl://" + h.mqtt).SetDialer(dialer(src)).
		SetClientID("dev1").SetUsername("localhost/dev1/?api-version=2021-04-12").SetPassword(h.deviceToken(t)).
		SetTLSConfig(&tls.Config{RootCAs: h.roots, ServerName: "localhost"}).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(30 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect from %s: %v", src, tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Publish("devices/dev1/messages/events/", 1, false, `{"t":2}`); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT publish from %s: %v", src, tok.Error())
	}
}

// awaitClosed reads c until the hub closes it, at the latest by deadline.
// A read whose deadline has passed fails at once, even on a socket the hub
// closed long ago, so a deadline that passed while the test was busy
// elsewhere (opening 1,000 connections on a loaded machine) gets a grace
// to read what is already there.
func awaitClosed(t *testing.T, what string, c net.Conn, deadline time.Time) {
	t.Helper()
	if least := time.Now().Add(10 * time.Second); deadline.Before(least) {
		deadline = least
	}
	_ = c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: still open at the deadline", what)
	}
}

// needFiles skips a test whose sockets (both ends in this process) would
// not fit under the file limit.
func needFiles(t *testing.T, n int) {
	t.Helper()
	if limit, err := app.RaiseFileLimit(); err != nil || limit < n {
		t.Skipf("needs a file limit of %d, have %d (%v)", n, limit, err)
	}
}

// TestServeClosesIdleConnections: 1,000 connections that hold a listener
// without using it (silent from the start, or silent after one request, or
// after the TLS handshake) are closed by the hub within its timeouts, on
// the dashboard, the HTTPS device endpoint and MQTT, while operators and
// devices are still served. Before, the dashboard and device servers kept
// idle keep-alive connections for good (or 5 minutes) and MQTT waited 30 s.
func TestServeClosesIdleConnections(t *testing.T) {
	testkit.Slow(t, "opens 3,000 connections and waits out the listeners' timeouts")
	const idle = 1000
	needFiles(t, 4*idle+2000)
	const timeout = 2 * time.Second
	h := startServe(t, nil, func(c *serveConfig) {
		short := netlimit.HTTPTimeouts{Header: timeout, Body: timeout, Idle: timeout}
		c.Listen.Dashboard, c.Listen.Device, c.Listen.MQTTConnect = short, short, timeout
		// This test is about timeouts: caps out of the way.
		for _, l := range []*netlimit.Limits{&c.Listen.DashboardConns, &c.Listen.DeviceConns, &c.Listen.MQTTConns} {
			*l = netlimit.Limits{Total: idle + 500}
		}
	})
	if strings.Contains(h.logs.String(), "without TLS") {
		t.Error("warned about a plain dashboard on loopback")
	}
	request := func(c net.Conn) error {
		_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
		return err
	}
	handshake := func(c net.Conn) (net.Conn, error) {
		tc := tls.Client(c, h.tlsConfig())
		return tc, tc.Handshake()
	}
	tests := []struct {
		name, addr string
		// use does what odd-numbered connections do before falling silent.
		use func(net.Conn) (net.Conn, error)
	}{
		{"dashboard", h.dash, func(c net.Conn) (net.Conn, error) { return c, request(c) }},
		{"device HTTPS", h.device, func(c net.Conn) (net.Conn, error) {
			tc, err := handshake(c)
			if err == nil {
				err = request(tc)
			}
			return tc, err
		}},
		{"MQTT", h.mqtt, handshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conns := make([]net.Conn, idle)
			opened := make([]time.Time, idle)
			var wg sync.WaitGroup
			errs := make(chan error, idle)
			next := make(chan int)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						c, err := net.Dial("tcp", tt.addr)
						if err != nil {
							errs <- err
							continue
						}
						opened[i] = time.Now()
						if i%2 == 1 {
							if c, err = tt.use(c); err != nil {
								errs <- fmt.Errorf("connection %d: %w", i, err)
							}
						}
						conns[i] = c
					}
				}()
			}
			for i := range idle {
				next <- i
			}
			close(next)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()

			// While they are held, everyone else is served.
			h.operatorPage(t, "")
			h.sendTelemetry(t, "")
			h.publishMQTT(t, "")

			for i, c := range conns {
				awaitClosed(t, fmt.Sprintf("idle connection %d", i), c, opened[i].Add(timeout+20*time.Second))
			}
		})
	}
}

// refused reports whether the hub turns away a new connection from src at
// once (a reset of the connect, or a close before any byte). A connection
// the hub admits is held silent until the test's long timeouts, so it
// reads nothing before the short deadline here.
func refused(t *testing.T, src, addr string) bool {
	t.Helper()
	c, err := dialer(src).Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestServeCapsConnectionsPerSource: a source holding its cap of sockets
// on a listener gets no more there, while another source is still served.
// Before, there were no caps, and one source could take every descriptor.
func TestServeCapsConnectionsPerSource(t *testing.T) {
	const perSource = 4
	h := startServe(t, []string{"--dashboard-max-conns-per-ip", fmt.Sprint(perSource),
		"--device-max-conns-per-ip", fmt.Sprint(perSource), "--mqtt-max-conns-per-ip", fmt.Sprint(perSource)},
		func(c *serveConfig) {
			// Held sockets stay for the whole test.
			long := netlimit.HTTPTimeouts{Header: 5 * time.Minute, Body: time.Minute, Idle: 5 * time.Minute}
			c.Listen.Dashboard, c.Listen.Device, c.Listen.MQTTConnect = long, long, 5*time.Minute
		})
	tests := []struct {
		name, addr string
		admitted   func(net.Conn) error // proves a held socket was taken in
		served     func(t *testing.T, src string)
	}{
		{"dashboard", h.dash, func(c net.Conn) error {
			_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
			if err == nil {
				_, err = c.Read(make([]byte, 1))
			}
			return err
		}, h.operatorPage},
		{"device HTTPS", h.device, func(c net.Conn) error { return tls.Client(c, h.tlsConfig()).Handshake() }, h.sendTelemetry},
		{"MQTT", h.mqtt, func(c net.Conn) error { return tls.Client(c, h.tlsConfig()).Handshake() }, h.publishMQTT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range perSource {
				c, err := dialer("127.0.0.2").Dial("tcp", tt.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if err := tt.admitted(c); err != nil {
					t.Fatalf("socket %d of %d from 127.0.0.2 not served: %v", i+1, perSource, err)
				}
			}
			for i := range 2 {
				if !refused(t, "127.0.0.2", tt.addr) {
					t.Errorf("socket %d over the cap from 127.0.0.2 was taken in", i+1)
				}
			}
			tt.served(t, "127.0.0.3")
		})
	}
}

// TestServeCutsSlowBodies: a request that announces a large body and sends
// two bytes of it is cut off by the body deadline, on the device endpoint
// and the dashboard. Before, such requests were held as long as the client
// liked.
func TestServeCutsSlowBodies(t *testing.T) {
	testkit.Slow(t, "waits out the listeners' timeouts")
	const timeout = time.Second
	h := startServe(t, nil, func(c *serveConfig) {
		c.Listen.Dashboard.Header, c.Listen.Dashboard.Body = timeout, timeout
		c.Listen.Device.Header, c.Listen.Device.Body = timeout, timeout
	})
	tests := []struct {
		name, addr, request string
		tls                 bool
	}{
		{"device telemetry", h.device, "POST /devices/dev1/messages/events?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\n" +
			"Authorization: " + h.deviceToken(t) + "\r\nContent-Length: 200000\r\n\r\n{}", true},
		{"dashboard login", h.dash, "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
			"Content-Length: 200000\r\n\r\nus", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			if tt.tls {
				tc := tls.Client(c, h.tlsConfig())
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				c = tc
			}
			if _, err := io.WriteString(c, tt.request); err != nil {
				t.Fatal(err)
			}
			awaitClosed(t, "slow body", c, start.Add(2*timeout+20*time.Second))
		})
	}
	// The hub goes on serving.
	h.sendTelemetry(t, "")
	h.operatorPage(t, "")
}

// TestServeDashboardTLS: --dashboard-tls serves the dashboard over HTTPS
// with the hub's certificate, Secure cookies and HSTS, and only over HTTPS.
func TestServeDashboardTLS(t *testing.T) {
	h := startServe(t, []string{"--dashboard-tls"}, nil)
	if !strings.HasPrefix(h.url, "https://") {
		t.Fatalf("the banner shows %s, want an https URL", h.url)
	}
	if strings.Contains(h.logs.String(), "without TLS") {
		t.Error("warned about a plain dashboard while serving TLS")
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(h.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("GET /login: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security = %q, want max-age=31536000", got)
	}
	var csrf string
	for _, c := range resp.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s is not Secure", c.Name)
		}
		csrf = c.Value
	}
	if h.password == "" {
		t.Fatal("no admin password in the log")
	}
	resp, err = client.PostForm(h.url+"/login", url.Values{"username": {"admin"}, "password": {h.password}, "_csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "fieldhub_session" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil || !session.Secure {
		t.Errorf("sign-in: %d, session cookie %+v; want 303 and a Secure session cookie", resp.StatusCode, session)
	}
	// Not over plain HTTP.
	plain, err := http.Get("http://" + strings.TrimPrefix(h.url, "https://") + "/login")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the dashboard: %d, want 400", plain.StatusCode)
		}
	}
}

// TestServeWarnsOfPlainDashboard: on an address other machines reach and
// without TLS, serve says at start that passwords travel in clear text.
func TestServeWarnsOfPlainDashboard(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot listen on all interfaces: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := startServe(t, []string{"--addr", addr}, nil)
	if !strings.Contains(h.logs.String(), "the dashboard is served without TLS") {
		t.Errorf("no warning for a plain dashboard on %s:\n%s", addr, h.logs.String())
	}
}

// TestServeDeviceFloodLeavesTheDashboard: with the device listeners at
// their total caps (many sources, each under its per-source cap), further
// device connections are turned away while operators are still served,
// because each listener counts against its own share.
func TestServeDeviceFloodLeavesTheDashboard(t *testing.T) {
	const total = 6
	h := startServe(t, []string{"--device-max-conns", fmt.Sprint(total), "--mqtt-max-conns", fmt.Sprint(total)},
		func(c *serveConfig) {
			long := netlimit.HTTPTimeouts{Header: 5 * time.Minute, Body: time.Minute, Idle: 5 * time.Minute}
			c.Listen.Device, c.Listen.MQTTConnect = long, 5*time.Minute
		})
	for _, addr := range []string{h.device, h.mqtt} {
		for i := range total {
			src := fmt.Sprintf("127.0.1.%d", i+1)
			c, err := dialer(src).Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if err := tls.Client(c, h.tlsConfig()).Handshake(); err != nil {
				t.Fatalf("%s: connection %d of %d not served: %v", addr, i+1, total, err)
			}
		}
		if !refused(t, "127.0.2.1", addr) {
			t.Errorf("%s: a connection over the total cap was taken in", addr)
		}
	}
	h.operatorPage(t, "127.0.2.2")
}
