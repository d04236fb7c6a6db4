package views

import (
	"testing"
)

func TestTelemetry(t *testing.T) {
	sec := TelemetrySection{
		DeviceID:    "pump:7",
		ReadingsURL: "/api/v1/devices/pump:7/readings",
		MessagesURL: "/api/v1/devices/pump:7/messages",
		Metrics:     []MetricSummary{{Name: "temp.inner", LastValue: 21.5, LastTime: testNow}, {Name: "rpm"}},
	}
	d := render(t, Telemetry(sec))
	root := d.one("[data-telemetry]")
	d.attrIs(root, "data-readings-url", sec.ReadingsURL)
	d.attrIs(root, "data-messages-url", sec.MessagesURL)
	d.attrIs(root, "data-metrics", `["temp.inner","rpm"]`)
	d.count("[data-range]", len(TimeRanges)+1)
	d.attrIs(d.one("[data-range=fit]"), "aria-pressed", "true")
	d.attrIs(d.one("[data-range=1h]"), "aria-pressed", "false")
	// The Telemetry and Messages tabs' panels.
	d.attrIs(d.one("section[id=telemetry]"), "role", "tabpanel")
	d.attrIs(d.one("section[id=messages]"), "role", "tabpanel")
	d.attrIs(d.one("[data-range=15m]"), "aria-pressed", "false")
	// Long ranges, charted from the rollups.
	for _, key := range []string{"30d", "90d", "1y"} {
		d.attrIs(d.one("[data-range="+key+"]"), "aria-pressed", "false")
	}
	d.attrIs(root, "data-chart-marks", `{"thresholds":null,"alerts":null,"ruleMetrics":null}`)
	d.count("[data-testid=charts-empty]", 0)
	d.count("option", 2)
	d.attrIs(d.one("[data-testid=download-csv]"), "href", "/api/v1/devices/pump:7/readings?format=csv&metric=temp.inner")
	if _, hidden := attr(d.one("[data-downloads]"), "hidden"); hidden {
		t.Error("downloads hidden although the device has metrics")
	}
	d.count("[data-messages]", 1)
}

func TestTelemetryWithoutMetrics(t *testing.T) {
	d := render(t, Telemetry(TelemetrySection{DeviceID: "d", ReadingsURL: "/r", MessagesURL: "/m"}))
	d.count("[data-testid=charts-empty]", 1)
	d.attrIs(d.one("[data-telemetry]"), "data-metrics", "[]")
	if _, hidden := attr(d.one("[data-downloads]"), "hidden"); !hidden {
		t.Error("downloads shown for a device without metrics")
	}
}
