package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"fieldhub/simulate"
	"fieldhub/storage"
)

// Settings are the store's settings, where the demo remembers that it
// created its devices once.
type Settings interface {
	Setting(ctx context.Context, key, def string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
}

// demoDevices are what `serve --demo` creates on first start. The tag
// "link" says how each connects, so the fleet list shows which take direct
// methods and pushed cloud-to-device messages (mqtt) and which only poll
// (https): see demoMQTTDevices.
var demoDevices = []simulate.Spec{
	{ID: "greenhouse-north", Name: "Greenhouse north", Tags: map[string]string{"site": "berlin", "kind": "climate", "demo": "true", "link": "https"}},
	{ID: "greenhouse-south", Name: "Greenhouse south", Tags: map[string]string{"site": "berlin", "kind": "climate", "demo": "true", "link": "https"}},
	{ID: "cold-store-2", Name: "Cold store 2", Tags: map[string]string{"site": "hamburg", "kind": "storage", "demo": "true", "link": "https"}},
	{ID: "office-3f", Name: "Office, 3rd floor", Tags: map[string]string{"site": "munich", "kind": "building", "demo": "true", "link": "mqtt"}},
	{ID: "server-room", Name: "Server room", Tags: map[string]string{"site": "munich", "kind": "building", "demo": "true", "link": "mqtt"}},
}

// settingDemoCreated records that the demo devices were created once, so a
// demo device the operator deleted stays deleted.
const settingDemoCreated = "demo_devices_created"

// demoFleet returns the demo devices to run: created on first start, and
// afterwards those still present and enabled.
func demoFleet(ctx context.Context, store Settings, reg simulate.Registry) ([]simulate.Device, error) {
	created, err := store.Setting(ctx, settingDemoCreated, "")
	if err != nil {
		return nil, err
	}
	if created == "" {
		devices, err := simulate.Provision(ctx, reg, "demo", demoDevices)
		if err != nil {
			return nil, err
		}
		if err := store.SetSetting(ctx, settingDemoCreated, time.Now().UTC().Format(time.RFC3339)); err != nil {
			return nil, err
		}
		return devices, nil
	}
	var devices []simulate.Device
	for _, s := range demoDevices {
		d, err := reg.Device(ctx, s.ID)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if d.Enabled {
			devices = append(devices, simulate.Device{ID: d.DeviceID, Key: d.PrimaryKey})
		}
	}
	return devices, nil
}

// demoMQTTDevices speak MQTT in the demo (when the broker runs), so the
// dashboard shows live presence, direct methods and twins; the rest POST
// over HTTPS.
var demoMQTTDevices = map[string]bool{"office-3f": true, "server-room": true}

// startDemo runs the demo devices in-process against the device endpoint
// (url, trusted by client; hostName goes into their SAS tokens) and, when
// mqttAddr is set, some of them against the MQTT broker there, until the
// returned stop is called. stop waits for the devices' last requests, so
// it must run before the ingest pipeline drains.
func startDemo(ctx context.Context, store Settings, reg simulate.Registry, url, hostName string, client *http.Client, mqttAddr string, log *slog.Logger) (stop func(), err error) {
	devices, err := demoFleet(ctx, store, reg)
	if err != nil {
		return nil, fmt.Errorf("demo devices: %w", err)
	}
	if len(devices) == 0 {
		log.Info("demo: no demo devices left to run")
		return func() {}, nil
	}
	var overHTTPS, overMQTT []simulate.Device
	for _, d := range devices {
		if mqttAddr != "" && demoMQTTDevices[d.ID] {
			overMQTT = append(overMQTT, d)
		} else {
			overHTTPS = append(overHTTPS, d)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if len(overHTTPS) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = simulate.Run(ctx, simulate.Config{
				URL: url, HostName: hostName, Devices: overHTTPS, Interval: time.Second, Client: client,
				Logger: log.With("component", "demo"),
			}, nil)
		}()
	}
	if len(overMQTT) > 0 {
		addr, err := loopbackAddr(mqttAddr)
		if err != nil {
			cancel()
			wg.Wait()
			return nil, fmt.Errorf("demo: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = simulate.RunMQTT(ctx, simulate.MQTTConfig{
				Addr: addr, HostName: hostName, Devices: overMQTT, Interval: time.Second,
				TLS:    client.Transport.(*http.Transport).TLSClientConfig,
				Logger: log.With("component", "demo"),
			}, nil)
		}()
	}
	log.Info("demo: running simulated devices", "https", len(overHTTPS), "mqtt", len(overMQTT), "endpoint", url)
	return func() {
		cancel()
		wg.Wait()
	}, nil
}

// loopbackAddr turns a listen address into one to dial on this machine.
func loopbackAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("address %q is not host:port: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// demoEndpoint is how the in-process demo reaches the device listener at
// addr: over loopback when it listens on every interface, trusting the
// listener's own certificate chain, with host (a name the certificate
// covers) as the TLS server name.
func demoEndpoint(addr net.Addr, host string, cert tls.Certificate) (string, *http.Client, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", nil, fmt.Errorf("demo: device listener address %s is not TCP", addr)
	}
	ip := tcp.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", nil, fmt.Errorf("demo: parse the device listener's certificate: %w", err)
		}
		pool.AddCert(c)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}
	url := "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
	return url, &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}
