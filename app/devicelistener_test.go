package app

import "testing"

func TestConnectionHost(t *testing.T) {
	tests := []struct {
		name, https, mqtt, want string
	}{
		{"mqtt on its default port", "[::]:8443", "[::]:8883", "hub"},
		{"mqtt elsewhere", "[::]:8443", "127.0.0.1:18883", "hub:18883"},
		{"no mqtt, https on 443", "0.0.0.0:443", "", "hub"},
		{"no mqtt, https elsewhere", "0.0.0.0:8443", "", "hub:8443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connectionHost("hub", tt.https, tt.mqtt); got != tt.want {
				t.Errorf("connectionHost(hub, %q, %q) = %q, want %q", tt.https, tt.mqtt, got, tt.want)
			}
		})
	}
}
