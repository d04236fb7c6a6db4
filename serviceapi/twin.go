package serviceapi

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"fieldhub/commands"
	"fieldhub/db"
)

// Twin is a device twin as IoT Hub's service API shows it.
type Twin struct {
	DeviceID                  string            `json:"deviceId"`
	ETag                      string            `json:"etag"`
	DeviceETag                string            `json:"deviceEtag"`
	Status                    string            `json:"status"`
	StatusUpdateTime          string            `json:"statusUpdateTime"`
	ConnectionState           string            `json:"connectionState"`
	LastActivityTime          string            `json:"lastActivityTime"`
	CloudToDeviceMessageCount int               `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string            `json:"authenticationType"`
	X509Thumbprint            X509Thumbprint    `json:"x509Thumbprint"`
	Version                   int64             `json:"version"`
	Capabilities              Capabilities      `json:"capabilities"`
	Tags                      map[string]string `json:"tags"`
	Properties                TwinProperties    `json:"properties"`
}

// TwinProperties are a twin's desired and reported properties, each with
// its "$version" and "$metadata" as IoT Hub adds them.
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// TwinETag is a twin's etag: it changes when its tags (the device's
// registration) or its desired properties change, not when the device
// reports, so an app's edit is refused only when what it edits changed.
func TwinETag(dev db.Device, tw db.Twin) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(tw.DesiredVersion, 10) + "." + strconv.FormatInt(dev.UpdatedAt.UnixMilli(), 10)))
}

// NewTwin shows a device's twin as IoT Hub does.
func NewTwin(dev db.Device, tw db.Twin) Twin {
	d := NewDevice(dev, 0)
	view := commands.NewTwinView(tw)
	meta := map[string]any{"$lastUpdated": Time(tw.UpdatedAt)}
	desired, reported := maps.Clone(view.Properties.Desired), maps.Clone(view.Properties.Reported)
	desired["$metadata"], reported["$metadata"] = meta, meta
	tags := dev.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return Twin{
		DeviceID: dev.DeviceID, ETag: TwinETag(dev, tw), DeviceETag: d.ETag,
		Status: d.Status, StatusUpdateTime: d.StatusUpdatedTime, ConnectionState: d.ConnectionState,
		LastActivityTime: d.LastActivityTime, AuthenticationType: dev.Auth.Type, X509Thumbprint: d.Authentication.X509Thumbprint,
		Version:    tw.DesiredVersion + tw.ReportedVersion,
		Tags:       tags,
		Properties: TwinProperties{Desired: desired, Reported: reported},
	}
}

// MaxTwinBody bounds PATCH and PUT /twins/{id}: the largest desired
// section with tags and room for the JSON around them.
const MaxTwinBody = commands.MaxTwinSection + 64*1024

// TwinInput is a twin patch or replacement as clients send it; any other
// field (etag, deviceId, …) is ignored, If-Match carries the etag.
type TwinInput struct {
	Tags       map[string]json.RawMessage `json:"tags"`
	Properties *struct {
		Desired  json.RawMessage `json:"desired"`
		Reported json.RawMessage `json:"reported"`
	} `json:"properties"`
	desired map[string]any // parsed, without "$…" keys
}

// ParseTwin reads the body of PATCH or PUT /twins/{id}.
func ParseTwin(body []byte) (TwinInput, error) {
	var in TwinInput
	if err := decodeJSON(body, &in); err != nil {
		return in, err
	}
	if in.Properties != nil {
		if len(in.Properties.Reported) > 0 && string(in.Properties.Reported) != "null" {
			return in, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "reported properties belong to the device: a service may change tags and desired properties only")
		}
		if d := in.Properties.Desired; len(d) > 0 && string(d) != "null" {
			obj, err := db.DecodeObject(d)
			if err != nil {
				return in, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "properties.desired must be a JSON object: %s", clip(err.Error()))
			}
			// $version and $metadata are IoT Hub's, sent back by clients
			// that replace a twin they read.
			for k := range obj {
				if strings.HasPrefix(k, "$") {
					delete(obj, k)
				}
			}
			in.desired = obj
		}
	}
	return in, nil
}

// HasDesired reports whether the input sets desired properties.
func (in TwinInput) HasDesired() bool { return in.desired != nil }

// TagsAfter returns the tags after the input: merged into current (a
// patch: a string sets, null removes) or replacing them. Fieldhub's tags
// are flat strings; any other value is refused. changed is false when the
// input leaves the tags as they are.
func (in TwinInput) TagsAfter(current map[string]string, replace bool) (tags map[string]string, changed bool, err error) {
	if in.Tags == nil && !replace {
		return current, false, nil
	}
	out := map[string]string{}
	if !replace {
		out = maps.Clone(current)
		if out == nil {
			out = map[string]string{}
		}
	}
	for k, raw := range in.Tags {
		if string(raw) == "null" {
			delete(out, k)
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, false, Errorf(http.StatusBadRequest, CodeArgumentInvalid,
				"tag %q is not a string: Fieldhub's tags are flat string values (send \"%s\": \"…\")", clip(k), clip(k))
		}
		out[k] = v
	}
	return out, !maps.Equal(out, current), nil
}

// DesiredPatch is the JSON merge patch the input makes to desired
// properties now at current: the input itself for a patch, or for a
// replacement what turns current into the input (nulls for what goes).
// nil when the input leaves desired as it is.
func (in TwinInput) DesiredPatch(current map[string]any, replace bool) (json.RawMessage, error) {
	var p map[string]any
	switch {
	case replace:
		p = replacement(current, in.desired)
	case in.desired != nil:
		p = in.desired
	}
	if len(p) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "desired properties: %s", clip(err.Error()))
	}
	return b, nil
}

// replacement is the merge patch that turns cur into next.
func replacement(cur, next map[string]any) map[string]any {
	p := map[string]any{}
	for k := range cur {
		if strings.HasPrefix(k, "$") {
			continue
		}
		if _, ok := next[k]; !ok {
			p[k] = nil
		}
	}
	for k, v := range next {
		cv, curObj := cur[k].(map[string]any)
		nv, nextObj := v.(map[string]any)
		if curObj && nextObj {
			if sub := replacement(cv, nv); len(sub) > 0 {
				p[k] = sub
			}
			continue
		}
		p[k] = v
	}
	return p
}
