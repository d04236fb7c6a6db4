package live

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestBrowserListensToContractEvents holds the page scripts and the API
// docs to the contract in events.go: every "live:<type>" a module listens
// for is a device stream type, the fleet page handles fleet stream types
// only, the device page forwards the list the server renders (no list of
// its own to go stale), and docs/api.md names each stream's types.
func TestBrowserListensToContractEvents(t *testing.T) {
	scripts, err := filepath.Glob("../web/*.js")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no page scripts in ../web: %v", err)
	}
	listened := regexp.MustCompile(`live:([a-z]+)`)
	for _, path := range scripts {
		src := read(t, path)
		for _, m := range listened.FindAllStringSubmatch(src, -1) {
			if !slices.Contains(DeviceStreamEvents, m[1]) {
				t.Errorf("%s listens for live:%s, which the device stream never sends (live.DeviceStreamEvents %v)", path, m[1], DeviceStreamEvents)
			}
		}
	}

	fleet := read(t, "../web/fleet.js")
	call := fleet[strings.Index(fleet, "subscribe("):]
	handler := regexp.MustCompile(`(?m)^\s{6}([a-z]+)\(`)
	var handled []string
	for _, m := range handler.FindAllStringSubmatch(call[:strings.Index(call, "\n    },")], -1) {
		handled = append(handled, m[1])
	}
	if !sameSet(handled, FleetStreamEvents) {
		t.Errorf("web/fleet.js handles %v on the fleet stream; the contract's fleet events are %v", handled, FleetStreamEvents)
	}

	device := read(t, "../web/device.js")
	if !strings.Contains(device, "dataset.streamEvents") || regexp.MustCompile(`\[\s*'device'`).MatchString(device) {
		t.Error("web/device.js must forward the types of data-stream-events (rendered from live.DeviceStreamEvents), not a list of its own")
	}

	docs := read(t, "../docs/api.md")
	for stream, want := range map[string][]string{"/api/v1/events": FleetStreamEvents, "/api/v1/devices/{id}/events": DeviceStreamEvents,
		"/api/v1/jobs/events": JobStreamEvents} {
		row := regexp.MustCompile("(?m)^\\| `GET " + regexp.QuoteMeta(stream) + "[^|]*\\|[^|]*\\|([^|]*)\\|").FindStringSubmatch(docs)
		if row == nil {
			t.Errorf("docs/api.md has no row for GET %s", stream)
			continue
		}
		types, _, _ := strings.Cut(row[1], ";") // what follows is about parameters
		var named []string
		for _, m := range regexp.MustCompile("`([a-z]+)`").FindAllStringSubmatch(types, -1) {
			named = append(named, m[1])
		}
		// resync is described once for both streams.
		if !sameSet(append(named, EventResync), want) {
			t.Errorf("docs/api.md lists %v for %s; the contract says %v", named, stream, want)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
