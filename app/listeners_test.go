package app

import (
	"fieldhub/netlimit"
	"log/slog"
	"strings"
	"testing"
)

func TestConnectionCapsWithinFileLimit(t *testing.T) {
	dashboard := func(total int) ListenConfig {
		return ListenConfig{DashboardConns: netlimit.Limits{Total: total}}
	}
	tests := []struct {
		name                    string
		in                      ListenConfig
		fileLimit               int
		dashboard, device, mqtt int
		wantErr                 string
	}{
		// 20,000 - 1,250 reserved = 18,750: the dashboard 1,024, the rest 1:3.
		{"defaults", ListenConfig{}, 20000, 1024, 4431, 13295, ""},
		{"small limit: the dashboard gets a quarter", ListenConfig{}, 1024, 224, 168, 504, ""},
		{"set by hand, rest shared", dashboard(100), 20000, 100, 4662, 13988, ""},
		{"MQTT set, device takes the rest", ListenConfig{MQTTConns: netlimit.Limits{Total: 1000}}, 20000, 1024, 16726, 1000, ""},
		{"too many by hand", ListenConfig{DeviceConns: netlimit.Limits{Total: 10000}, MQTTConns: netlimit.Limits{Total: 10000}}, 20000, 0, 0, 0, "file limit of 20000"},
		{"limit unknown: as set", dashboard(5), 0, 5, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConnectionCaps(tt.in, tt.fileLimit)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.DashboardConns.Total != tt.dashboard || got.DeviceConns.Total != tt.device || got.MQTTConns.Total != tt.mqtt {
				t.Errorf("caps = dashboard %d, device %d, MQTT %d; want %d, %d, %d",
					got.DashboardConns.Total, got.DeviceConns.Total, got.MQTTConns.Total, tt.dashboard, tt.device, tt.mqtt)
			}
			if sum := got.DashboardConns.Total + got.DeviceConns.Total + got.MQTTConns.Total; tt.fileLimit > 0 && sum > tt.fileLimit-fdReserve(tt.fileLimit) {
				t.Errorf("caps add up to %d, over what the file limit %d leaves", sum, tt.fileLimit)
			}
		})
	}
}

func TestWarnPlainDashboard(t *testing.T) {
	tests := []struct {
		addr string
		tls  bool
		warn bool
	}{
		{"127.0.0.1:8080", false, false},
		{"localhost:8080", false, false},
		{"[::1]:8080", false, false},
		{":8080", false, true},
		{"0.0.0.0:8080", false, true},
		{"192.0.2.10:8080", false, true},
		{":8080", true, false},
	}
	for _, tt := range tests {
		var logs strings.Builder
		warnPlainDashboard(slog.New(slog.NewTextHandler(&logs, nil)), tt.addr, tt.tls)
		if got := strings.Contains(logs.String(), "without TLS"); got != tt.warn {
			t.Errorf("addr %s, TLS %v: warned %v, want %v (%q)", tt.addr, tt.tls, got, tt.warn, logs.String())
		}
	}
}
