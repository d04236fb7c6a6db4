package simulate

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"fieldhub/auth"
)

// MQTTConfig says what to simulate over MQTT and where.
type MQTTConfig struct {
	// Addr is the hub's MQTT-over-TLS endpoint, host:port (e.g. localhost:8883).
	Addr string
	// HostName goes into SAS tokens and user names (host[:port]); empty
	// uses Addr, as the SDKs do with a HostName that carries a port.
	HostName string
	Devices  []Device
	Interval time.Duration // between two messages of one device (default 1 s)
	// TLS must trust the hub's certificate.
	TLS      *tls.Config
	Logger   *slog.Logger
	Seed     uint64        // 0: random
	TokenTTL time.Duration // default 1 h; renewed after three quarters by reconnecting
}

// MQTT topics the simulated devices use (Azure IoT Hub's).
const (
	methodsFilter    = "$iothub/methods/POST/#"
	twinResFilter    = "$iothub/twin/res/#"
	desiredFilter    = "$iothub/twin/PATCH/properties/desired/#"
	reportedTopicFmt = "$iothub/twin/PATCH/properties/reported/?$rid=%d"
)

// RunMQTT runs every device over MQTT until ctx ends, then returns nil: it
// sends telemetry at QoS 1, completes cloud-to-device messages, answers
// direct methods and reports desired properties back, like a device built
// on the Azure IoT SDK. It returns an error only for a configuration it
// cannot run.
func RunMQTT(ctx context.Context, cfg MQTTConfig, stats *Stats) error {
	if len(cfg.Devices) == 0 {
		return errors.New("simulate: no devices to run")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return fmt.Errorf("simulate: MQTT endpoint %q is not host:port", cfg.Addr)
	}
	if cfg.HostName == "" {
		cfg.HostName = cfg.Addr
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if stats == nil {
		stats = &Stats{}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	var wg sync.WaitGroup
	for i, d := range cfg.Devices {
		sim := &mqttDevice{cfg: &cfg, dev: d, stats: stats, sensors: newSensors(rand.New(rand.NewPCG(seed, uint64(i))))}
		offset := cfg.Interval * time.Duration(i) / time.Duration(len(cfg.Devices))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sim.run(ctx, offset)
		}()
	}
	wg.Wait()
	return nil
}

// mqttDevice is one simulated device on one MQTT connection at a time.
type mqttDevice struct {
	cfg     *MQTTConfig
	dev     Device
	stats   *Stats
	sensors *sensors
	seq     int
	rid     int
	warned  bool
	mu      sync.Mutex // guards rid (handlers run on paho's goroutines)
}

func (d *mqttDevice) run(ctx context.Context, offset time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	for ctx.Err() == nil {
		if err := d.session(ctx); err != nil && ctx.Err() == nil {
			d.fail(err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second): // reconnect back-off
			}
		}
	}
}

// session connects with a fresh token and sends telemetry until the token
// is due for renewal, the connection drops, or ctx ends.
func (d *mqttDevice) session(ctx context.Context) error {
	now := time.Now()
	tok, err := auth.SignSAS(d.cfg.HostName+"/devices/"+d.dev.ID, d.dev.Key, now.Add(d.cfg.TokenTTL))
	if err != nil {
		return fmt.Errorf("sign token: %w", err)
	}
	renewAt := now.Add(d.cfg.TokenTTL * 3 / 4)
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker("ssl://" + d.cfg.Addr).
		SetClientID(d.dev.ID).
		SetUsername(d.cfg.HostName + "/" + d.dev.ID + "/?api-version=2021-04-12&DeviceClientType=fieldhub-simulate").
		SetPassword(tok).
		SetTLSConfig(d.cfg.TLS).
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetKeepAlive(180 * time.Second).
		SetAutoReconnect(false).
		SetOrderMatters(false).
		SetConnectTimeout(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	client := paho.NewClient(opts)
	if t := client.Connect(); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		if t.Error() != nil {
			return fmt.Errorf("connect: %w", t.Error())
		}
		return errors.New("connect: timed out")
	}
	defer client.Disconnect(250)

	subs := map[string]byte{
		"devices/" + d.dev.ID + "/messages/devicebound/#": 1,
		methodsFilter: 0, twinResFilter: 0, desiredFilter: 0,
	}
	// One handler for everything: paho completes a QoS 1 message (PUBACK)
	// when it returns, which settles cloud-to-device messages.
	if t := client.SubscribeMultiple(subs, func(c paho.Client, m paho.Message) { d.handle(c, m) }); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return fmt.Errorf("subscribe: %v", t.Error())
	}
	d.report(client, map[string]any{"firmware": "simulator-1.0", "intervalSeconds": d.cfg.Interval.Seconds()})

	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	renew := time.NewTimer(time.Until(renewAt))
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renew.C:
			return nil // reconnect with a new token, like the SDK
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-tick.C:
			d.send(client)
		}
	}
}

func (d *mqttDevice) send(client paho.Client) {
	t, h, b := d.sensors.reading()
	body, _ := json.Marshal(message{Temperature: t, Humidity: h, Battery: b})
	d.seq++
	bag := url.Values{}
	bag.Set("$.mid", d.dev.ID+"-"+strconv.FormatInt(time.Now().UnixMilli(), 36)+"-"+strconv.Itoa(d.seq))
	bag.Set("$.ct", "application/json")
	bag.Set("$.ce", "utf-8")
	bag.Set("source", "simulator")
	topic := "devices/" + d.dev.ID + "/messages/events/" + strings.ReplaceAll(bag.Encode(), "+", "%20")
	tok := client.Publish(topic, 1, false, body)
	go func() {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			d.fail(fmt.Errorf("telemetry not acknowledged: %v", tok.Error()))
			return
		}
		d.stats.Sent.Add(1)
	}()
}

// handle answers what the hub sends: the methods of DeviceMethods, desired
// properties are reported back as applied, messages are logged.
func (d *mqttDevice) handle(client paho.Client, m paho.Message) {
	topic := m.Topic()
	switch {
	case strings.HasPrefix(topic, "$iothub/methods/POST/"):
		rest := strings.TrimPrefix(topic, "$iothub/methods/POST/")
		name, query, _ := strings.Cut(rest, "/?")
		q, _ := url.ParseQuery(query)
		var payload any
		_ = json.Unmarshal(m.Payload(), &payload)
		status, answer := answerMethod(name, payload, time.Now().UTC())
		body, _ := json.Marshal(answer)
		client.Publish(fmt.Sprintf("$iothub/methods/res/%d/?$rid=%s", status, url.QueryEscape(q.Get("$rid"))), 0, false, body)
	case strings.HasPrefix(topic, "$iothub/twin/PATCH/properties/desired/"):
		var patch map[string]any
		if err := json.Unmarshal(m.Payload(), &patch); err == nil {
			delete(patch, "$version")
			d.report(client, patch)
		}
	case strings.HasPrefix(topic, "devices/"):
		d.cfg.Logger.Info("simulated device got a message", "device", d.dev.ID, "bytes", len(m.Payload()))
	}
}

// DeviceMethods are the direct methods a simulated device implements:
// echo answers with what it received, ping with the time, reboot says it
// would. Any other name is a 404 that names them, as a real device's
// handler for an unknown method should answer.
var DeviceMethods = []string{"echo", "ping", "reboot"}

// answerMethod is a simulated device's answer to the direct method name.
func answerMethod(name string, payload any, now time.Time) (int, map[string]any) {
	switch name {
	case "echo":
		return 200, map[string]any{"method": name, "received": payload, "at": now}
	case "ping":
		return 200, map[string]any{"pong": true, "at": now}
	case "reboot":
		return 200, map[string]any{"rebooting": true, "at": now}
	}
	return 404, map[string]any{"error": fmt.Sprintf("method %q is not implemented by this device; it implements %s", name, strings.Join(DeviceMethods, ", "))}
}

// report patches the device's reported properties.
func (d *mqttDevice) report(client paho.Client, props map[string]any) {
	body, err := json.Marshal(props)
	if err != nil {
		return
	}
	d.mu.Lock()
	d.rid++
	rid := d.rid
	d.mu.Unlock()
	client.Publish(fmt.Sprintf(reportedTopicFmt, rid), 0, false, body)
}

func (d *mqttDevice) fail(err error) {
	d.stats.Failed.Add(1)
	d.mu.Lock()
	first := !d.warned
	d.warned = true
	d.mu.Unlock()
	if first {
		d.cfg.Logger.Warn("simulated MQTT device could not send", "device", d.dev.ID, "err", err)
	}
}
