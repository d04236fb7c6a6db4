package app

import "testing"

// TestFilesForCaps: the file limit doctor asks for is the smallest within
// which serve's connection budget accepts the caps set by hand.
func TestFilesForCaps(t *testing.T) {
	l := DefaultListenConfig()
	if n := filesForCaps(l); n != 0 {
		t.Errorf("no caps set by hand: %d, want 0", n)
	}
	for _, set := range []func(*ListenConfig){
		func(l *ListenConfig) { l.MQTTConns.Total = 50000 },
		func(l *ListenConfig) {
			l.DashboardConns.Total, l.DeviceConns.Total, l.MQTTConns.Total = 100, 2000, 30000
		},
		func(l *ListenConfig) { l.DeviceConns.Total = 5 },
	} {
		l := DefaultListenConfig()
		set(&l)
		n := int(filesForCaps(l))
		if _, err := ConnectionCaps(l, n); err != nil {
			t.Errorf("caps %+v %+v %+v do not fit %d: %v", l.DashboardConns, l.DeviceConns, l.MQTTConns, n, err)
		}
		if _, err := ConnectionCaps(l, n-1); err == nil {
			t.Errorf("caps %+v %+v %+v fit %d already", l.DashboardConns, l.DeviceConns, l.MQTTConns, n-1)
		}
	}
}
