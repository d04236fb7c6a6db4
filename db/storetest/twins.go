package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"fieldhub/db"
	"fieldhub/storage"
)

// RunTwins tests device twins: merge patches, versions, If-Match and the
// size bound.
func RunTwins(t *testing.T, b Backend) {
	cases(t, b,
		test{"Patch", testTwinPatch},
		test{"SizeLimit", testTwinSizeLimit},
	)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// twinLimit is the section size these tests give PatchTwin, the one
// commands.MaxTwinSection sets in production.
const twinLimit = 32 * 1024

// mustPatch decodes a patch as commands.ParseTwinPatch does (numbers exact),
// dropping $version.
func mustPatch(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var p map[string]any
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("parse patch %s: %v", s, err)
	}
	delete(p, "$version")
	return p
}

func testTwinPatch(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1", Tags: map[string]string{"site": "north"}}); err != nil {
		t.Fatal(err)
	}
	tw, err := d.Twin(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if tw.DesiredVersion != 1 || tw.ReportedVersion != 1 || len(tw.Desired) != 0 || tw.Tags["site"] != "north" {
		t.Fatalf("new twin = %+v, want empty sections at version 1 with the device's tags", tw)
	}

	tw, err = d.PatchTwin(ctx, "dev1", db.TwinDesired, mustPatch(t, `{"fan":{"speed":3,"mode":"auto"},"led":true,"$version":99}`), 1, twinLimit)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(t, tw.Desired), `{"fan":{"mode":"auto","speed":3},"led":true}`; got != want || tw.DesiredVersion != 2 || tw.ReportedVersion != 1 {
		t.Errorf("after first patch: desired %s v%d reported v%d; want %s v2 v1", got, tw.DesiredVersion, tw.ReportedVersion, want)
	}
	tw, err = d.PatchTwin(ctx, "dev1", db.TwinDesired, mustPatch(t, `{"fan":{"speed":null},"led":null}`), 0, twinLimit)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(t, tw.Desired), `{"fan":{"mode":"auto"}}`; got != want || tw.DesiredVersion != 3 {
		t.Errorf("after delete patch: %s v%d, want %s v3", got, tw.DesiredVersion, want)
	}

	// If-Match: a patch made against version 2 is refused now that it is 3.
	_, err = d.PatchTwin(ctx, "dev1", db.TwinDesired, mustPatch(t, `{"x":1}`), 2, twinLimit)
	if !errors.Is(err, db.ErrVersionMismatch) {
		t.Errorf("stale version: %v, want ErrVersionMismatch", err)
	}

	// Reported has its own version and does not disturb desired.
	tw, err = d.PatchTwin(ctx, "dev1", db.TwinReported, mustPatch(t, `{"fan":{"speed":2}}`), 0, twinLimit)
	if err != nil {
		t.Fatal(err)
	}
	if tw.ReportedVersion != 2 || tw.DesiredVersion != 3 || mustJSON(t, tw.Reported) != `{"fan":{"speed":2}}` {
		t.Errorf("after reported patch: %+v", tw)
	}
	again, err := d.Twin(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, again.Desired) != mustJSON(t, tw.Desired) || mustJSON(t, again.Reported) != mustJSON(t, tw.Reported) ||
		again.DesiredVersion != 3 || again.ReportedVersion != 2 {
		t.Errorf("read back %+v, want %+v", again, tw)
	}

	if _, err := d.PatchTwin(ctx, "nope", db.TwinDesired, map[string]any{}, 0, twinLimit); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown device: %v, want ErrNotFound", err)
	}
}

func testTwinSizeLimit(t *testing.T, b Backend) {
	ctx := context.Background()
	d, _ := open(t, b)
	if _, err := d.CreateDevice(ctx, db.NewDevice{DeviceID: "dev1"}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 20*1024)
	if _, err := d.PatchTwin(ctx, "dev1", db.TwinReported, map[string]any{"a": big}, 0, twinLimit); err != nil {
		t.Fatalf("20 KB section: %v", err)
	}
	// The limit applies to the merged section, not only to the patch.
	_, err := d.PatchTwin(ctx, "dev1", db.TwinReported, map[string]any{"b": big}, 0, twinLimit)
	var inv *storage.InvalidError
	if !errors.As(err, &inv) || inv.Field != db.TwinReported || !strings.Contains(err.Error(), "32768") {
		t.Errorf("40 KB section: %v, want an InvalidError naming the 32768-byte limit", err)
	}
	tw, err := d.Twin(ctx, "dev1")
	if err != nil || tw.ReportedVersion != 2 || len(tw.Reported) != 1 {
		t.Errorf("refused patch changed the twin: %+v, %v", tw, err)
	}
}
