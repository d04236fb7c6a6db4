package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorCommand runs `fieldhub doctor` with serve's flags against a
// port this test holds and connection caps no file limit here allows.
func TestDoctorCommand(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	data := t.TempDir()
	out, _, err := cli(t, "", "doctor", "--data", data, "--addr", "127.0.0.1:0", "--device-addr", taken.Addr().String(),
		"--mqtt-addr", "127.0.0.1:0", "--mqtt-max-conns", "100000000")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "doctor found 2 problems") {
		t.Errorf("doctor = %v (exit %d), want 2 problems, exit 1", err, exitCode(err))
	}
	for _, want := range []string{
		"PROBLEM  port         device HTTPS endpoint port " + taken.Addr().String() + " is in use by ",
		"fix: stop what listens there, or move the device HTTPS endpoint with --device-addr (env FIELDHUB_DEVICE_ADDR)",
		"PROBLEM  file limit",
		"the connection caps set by hand need",
		"ok       data folder  " + data + " is writable by",
		"ok       certificate  none yet",
		"2 problems, 0 warnings.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	// Without the problems: exit 0 (warnings do not count).
	if out, _, err := cli(t, "", "doctor", "--data", data, "--addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0", "--mqtt-addr", ""); err != nil {
		t.Errorf("doctor on free ports: %v\n%s", err, out)
	}
}

// TestDoctorWhileAHubRuns: on the data folder of a running hub, with its
// settings, doctor names the hub and counts its ports as its own.
func TestDoctorWhileAHubRuns(t *testing.T) {
	data := t.TempDir()
	hub := serveInProcess(t, data)
	dash, dev := strings.TrimPrefix(hub.dashURL, "http://"), strings.TrimPrefix(hub.deviceURL, "https://")
	out, _, err := cli(t, "", "doctor", "--data", data, "--addr", dash, "--device-addr", dev, "--mqtt-addr", hub.mqttAddr)
	if err != nil {
		t.Errorf("doctor: %v\n%s", err, out)
	}
	pid := os.Getpid()
	for _, want := range []string{
		fmt.Sprintf("ok       data folder  a hub is running on %s: pid %d (fieldhub serve, started ", data, pid),
		fmt.Sprintf("dashboard port %s is held by the hub running on this data folder (pid %d)", dash, pid),
		fmt.Sprintf("device HTTPS endpoint port %s is held by the hub running on this data folder (pid %d)", dev, pid),
		fmt.Sprintf("MQTT/TLS endpoint port %s is held by the hub running on this data folder (pid %d)", hub.mqttAddr, pid),
		"ok       certificate  " + filepath.Join(data, "tls", "server.pem") + " names localhost",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}
