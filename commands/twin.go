package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"fieldhub/db"
)

// TwinsConfig configures Twins.
type TwinsConfig struct {
	Store     TwinStore
	Publisher Publisher
	Logger    *slog.Logger
}

// Twins is the device twin service: operators patch desired properties, devices
// patch reported ones, and listeners (the MQTT transport) hear about desired
// changes so they can push them to connected devices.
type Twins struct {
	store   TwinStore
	pub     Publisher
	log     *slog.Logger
	desired listeners[func(deviceID string, patch json.RawMessage, version int64)]
}

// NewTwins builds the twin service.
func NewTwins(cfg TwinsConfig) *Twins {
	if cfg.Publisher == nil {
		cfg.Publisher = nopPublisher{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Twins{store: cfg.Store, pub: cfg.Publisher, log: cfg.Logger}
}

// Get reads a device's twin.
func (t *Twins) Get(ctx context.Context, deviceID string) (db.Twin, error) {
	return t.store.Twin(ctx, deviceID)
}

// PatchDesired merges a JSON merge patch into the desired properties on behalf of
// actor. With ifVersion > 0 it is refused (db.ErrVersionMismatch) unless desired
// is still at that version. Listeners get the patch with its new "$version".
func (t *Twins) PatchDesired(ctx context.Context, actor, deviceID string, patch json.RawMessage, ifVersion int64) (db.Twin, error) {
	p, err := ParseTwinPatch(patch)
	if err != nil {
		return db.Twin{}, err
	}
	tw, err := t.store.PatchTwin(ctx, deviceID, db.TwinDesired, p, ifVersion, MaxTwinSection)
	if err != nil {
		return db.Twin{}, err
	}
	audit(ctx, t.store, t.log, db.AuditEntry{Actor: actor, Action: "twin.desired", Target: deviceID,
		Detail: fmt.Sprintf("version %d, keys %s", tw.DesiredVersion, keyList(p))})
	t.pub.PublishTwin(NewTwinView(tw))
	p["$version"] = tw.DesiredVersion
	out, err := json.Marshal(p)
	if err != nil {
		return tw, fmt.Errorf("encode desired patch: %w", err)
	}
	t.desired.each(func(fn func(string, json.RawMessage, int64)) { fn(deviceID, out, tw.DesiredVersion) })
	return tw, nil
}

// PatchReported merges a device's reported-properties patch and returns the new
// reported version. The MQTT transport calls it for
// $iothub/twin/PATCH/properties/reported/.
func (t *Twins) PatchReported(ctx context.Context, deviceID string, patch json.RawMessage) (int64, error) {
	p, err := ParseTwinPatch(patch)
	if err != nil {
		return 0, err
	}
	tw, err := t.store.PatchTwin(ctx, deviceID, db.TwinReported, p, 0, MaxTwinSection)
	if err != nil {
		return 0, err
	}
	audit(ctx, t.store, t.log, db.AuditEntry{Actor: "device:" + deviceID, Action: "twin.reported", Target: deviceID,
		Detail: fmt.Sprintf("version %d, keys %s", tw.ReportedVersion, keyList(p))})
	t.pub.PublishTwin(NewTwinView(tw))
	return tw.ReportedVersion, nil
}

// OnDesired registers fn to be called after every desired change with the patch
// (including "$version") as a device receives it. fn must not block.
func (t *Twins) OnDesired(fn func(deviceID string, patch json.RawMessage, version int64)) (cancel func()) {
	return t.desired.add(fn)
}

// ETag is a twin's entity tag: its desired version, quoted. Only desired counts,
// because If-Match guards operators' edits of desired; a device reporting in the
// meantime does not make an edit stale.
func ETag(tw db.Twin) string { return `"` + strconv.FormatInt(tw.DesiredVersion, 10) + `"` }

// ParseETag reads an If-Match value: a quoted or bare version, or "*" / "" for
// any (0). A weak tag W/"n" is accepted as n.
func ParseETag(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return 0, nil
	}
	s = strings.TrimPrefix(s, "W/")
	s = strings.Trim(s, `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("If-Match %q is not a twin ETag; send the ETag from GET …/twin", s)
	}
	return v, nil
}

// TwinView is a twin in the shape of Azure's twin JSON.
type TwinView struct {
	DeviceID   string            `json:"deviceId"`
	ETag       string            `json:"etag"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	} `json:"properties"`
	UpdatedAt *time.Time `json:"updatedAt,omitempty"`
}

// NewTwinView shows tw with "$version" inside each section, as devices see it.
func NewTwinView(tw db.Twin) TwinView {
	v := TwinView{DeviceID: tw.DeviceID, ETag: ETag(tw), Tags: tw.Tags}
	if v.Tags == nil {
		v.Tags = map[string]string{}
	}
	v.Properties.Desired = withVersion(tw.Desired, tw.DesiredVersion)
	v.Properties.Reported = withVersion(tw.Reported, tw.ReportedVersion)
	if !tw.UpdatedAt.IsZero() {
		u := tw.UpdatedAt
		v.UpdatedAt = &u
	}
	return v
}

// TwinDocument is the body a device gets for a twin GET:
// {"desired":{…,"$version":n},"reported":{…,"$version":m}}.
func TwinDocument(tw db.Twin) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"desired":  withVersion(tw.Desired, tw.DesiredVersion),
		"reported": withVersion(tw.Reported, tw.ReportedVersion),
	})
	return b
}

func withVersion(section map[string]any, version int64) map[string]any {
	out := make(map[string]any, len(section)+1)
	for k, v := range section {
		out[k] = v
	}
	out["$version"] = version
	return out
}

// keyList names a patch's top-level keys for the audit log, at most 20 of them.
func keyList(m map[string]any) string {
	keys := slices.Sorted(maps.Keys(m))
	if len(keys) > 20 {
		keys = append(keys[:20], "…")
	}
	return strings.Join(keys, ", ")
}
