package serviceapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
)

// Device is a device identity as IoT Hub's registry shows it.
type Device struct {
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"`
	ETag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	Status                     string         `json:"status"`
	StatusReason               *string        `json:"statusReason"`
	ConnectionStateUpdatedTime string         `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          string         `json:"statusUpdatedTime"`
	LastActivityTime           string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               Capabilities   `json:"capabilities"`
}

// Authentication is IoT Hub's authentication mechanism: both objects are
// always present, their unused fields null, as IoT Hub answers.
type Authentication struct {
	SymmetricKey   SymmetricKey   `json:"symmetricKey"`
	X509Thumbprint X509Thumbprint `json:"x509Thumbprint"`
	Type           string         `json:"type"`
}

// SymmetricKey holds a SAS device's keys.
type SymmetricKey struct {
	PrimaryKey   *string `json:"primaryKey"`
	SecondaryKey *string `json:"secondaryKey"`
}

// X509Thumbprint holds a selfSigned device's certificate thumbprints.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Capabilities are a device's capabilities; Fieldhub has no IoT Edge.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// Connection states and device statuses as IoT Hub names them.
const (
	Connected    = "Connected"
	Disconnected = "Disconnected"
	Enabled      = "enabled"
	Disabled     = "disabled"
)

// zeroTime is how IoT Hub writes a time that never happened.
const zeroTime = "0001-01-01T00:00:00Z"

// Time formats t as IoT Hub does (UTC, fractional seconds), a zero t as
// 0001-01-01T00:00:00Z.
func Time(t time.Time) string {
	if t.IsZero() {
		return zeroTime
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// DeviceETag is a device's etag: it changes with every change of the
// device's registration (not with its connection), like IoT Hub's.
func DeviceETag(dev db.Device) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(dev.UpdatedAt.UnixMilli(), 10)))
}

// GenerationID tells a device from an earlier one of the same id: it is
// fixed at creation.
func GenerationID(dev db.Device) string {
	return fmt.Sprintf("%d%06d", dev.CreatedAt.UnixMilli(), dev.ID%1_000_000)
}

// NewDevice shows dev as IoT Hub does; c2d is the number of its
// cloud-to-device messages waiting.
func NewDevice(dev db.Device, c2d int) Device {
	out := Device{
		DeviceID: dev.DeviceID, GenerationID: GenerationID(dev), ETag: DeviceETag(dev),
		ConnectionState: Disconnected, Status: Enabled,
		ConnectionStateUpdatedTime: Time(dev.DisconnectedAt),
		StatusUpdatedTime:          Time(dev.UpdatedAt),
		LastActivityTime:           Time(dev.LastActivity),
		CloudToDeviceMessageCount:  c2d,
	}
	if dev.Connected {
		out.ConnectionState = Connected
		// The store keeps when a connection closed, not when it opened:
		// the last activity is the closest it knows.
		out.ConnectionStateUpdatedTime = Time(dev.LastActivity)
	}
	if !dev.Enabled {
		out.Status = Disabled
	}
	out.Authentication.Type = dev.Auth.Type
	if dev.Auth.Type == auth.AuthSAS {
		out.Authentication.SymmetricKey = SymmetricKey{strPtr(dev.PrimaryKey), strPtr(dev.SecondaryKey)}
	}
	out.Authentication.X509Thumbprint = X509Thumbprint{strPtr(dev.Auth.PrimaryThumbprint), strPtr(dev.Auth.SecondaryThumbprint)}
	return out
}

// DeviceInput is a device as clients send it (PUT /devices/{id}, bulk):
// fields IoT Hub computes (generationId, connectionState, …) are ignored.
type DeviceInput struct {
	DeviceID       string     `json:"deviceId"`
	ETag           string     `json:"etag"`
	Status         string     `json:"status"`
	StatusReason   string     `json:"statusReason"`
	Authentication *AuthInput `json:"authentication"`
	Capabilities   *struct {
		IotEdge bool `json:"iotEdge"`
	} `json:"capabilities"`
}

// AuthInput is the authentication a client sends.
type AuthInput struct {
	SymmetricKey *struct {
		PrimaryKey   *string `json:"primaryKey"`
		SecondaryKey *string `json:"secondaryKey"`
	} `json:"symmetricKey"`
	X509Thumbprint *struct {
		PrimaryThumbprint   *string `json:"primaryThumbprint"`
		SecondaryThumbprint *string `json:"secondaryThumbprint"`
	} `json:"x509Thumbprint"`
	Type string `json:"type"`
}

// Bounds of the bodies of the registry.
const (
	// MaxDeviceBody bounds PUT /devices/{id}: a device with the longest
	// keys and thumbprints is about 1 KiB.
	MaxDeviceBody = 16 * 1024
	// MaxBulkDevices is IoT Hub's limit of one bulk call.
	MaxBulkDevices = 100
	// MaxBulkBody bounds POST /devices.
	MaxBulkBody = MaxBulkDevices * 4 * 1024
)

// ParseDevice reads the body of PUT /devices/{id} for the device id of the
// path: a deviceId in the body must match it.
func ParseDevice(body []byte, pathID string) (DeviceInput, error) {
	var in DeviceInput
	if err := decodeJSON(body, &in); err != nil {
		return in, err
	}
	if in.DeviceID != "" && in.DeviceID != pathID {
		return in, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "deviceId %q in the body does not match %q in the path", clip(in.DeviceID), clip(pathID))
	}
	in.DeviceID = pathID
	return in, nil
}

// decodeJSON reads one JSON value; anything after it is an error.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "the body is not the JSON expected: %s", clip(err.Error()))
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, CodeArgumentInvalid, "the body holds more than one JSON value")
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// enabled reads status: "" keeps what there is (nil).
func (in DeviceInput) enabled() (*bool, error) {
	switch strings.ToLower(in.Status) {
	case "":
		return nil, nil
	case Enabled:
		t := true
		return &t, nil
	case Disabled:
		f := false
		return &f, nil
	}
	return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "status must be enabled or disabled, not %q", clip(in.Status))
}

// authentication reads the authentication: the type (sas when none is
// given and no thumbprint either) and any keys the client chose.
func (in DeviceInput) authentication() (db.Authentication, [2]string, error) {
	var a db.Authentication
	var keys [2]string
	if in.Capabilities != nil && in.Capabilities.IotEdge {
		return a, keys, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "Fieldhub has no IoT Edge: capabilities.iotEdge must be false")
	}
	ai := in.Authentication
	if ai == nil {
		ai = &AuthInput{}
	}
	if x := ai.X509Thumbprint; x != nil {
		a.PrimaryThumbprint, a.SecondaryThumbprint = deref(x.PrimaryThumbprint), deref(x.SecondaryThumbprint)
	}
	if k := ai.SymmetricKey; k != nil {
		keys = [2]string{deref(k.PrimaryKey), deref(k.SecondaryKey)}
	}
	switch t := ai.Type; {
	case t == "" && a.PrimaryThumbprint != "":
		a.Type = auth.AuthSelfSigned
	case t == "" || strings.EqualFold(t, auth.AuthSAS):
		a.Type = auth.AuthSAS
	case strings.EqualFold(t, auth.AuthSelfSigned):
		a.Type = auth.AuthSelfSigned
	case strings.EqualFold(t, auth.AuthCertificateAuthority):
		a.Type = auth.AuthCertificateAuthority
	case strings.EqualFold(t, "none"):
		return a, keys, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "authentication type none is not supported: every Fieldhub device authenticates (sas, selfSigned or certificateAuthority)")
	default:
		return a, keys, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "unknown authentication type %q, use sas, selfSigned or certificateAuthority", clip(t))
	}
	if a.Type == auth.AuthSAS {
		// A SAS device may be sent with empty thumbprints, as the SDKs do.
		a.PrimaryThumbprint, a.SecondaryThumbprint = "", ""
	} else if keys != [2]string{} {
		return a, keys, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "an X.509 device (%s) has no symmetric keys", a.Type)
	}
	return a, keys, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

// NewDeviceSpec is what creating in asks of the registry: the device, and
// whether it starts disabled.
func (in DeviceInput) NewDeviceSpec() (db.NewDevice, bool, error) {
	en, err := in.enabled()
	if err != nil {
		return db.NewDevice{}, false, err
	}
	a, keys, err := in.authentication()
	if err != nil {
		return db.NewDevice{}, false, err
	}
	nd := db.NewDevice{DeviceID: in.DeviceID, Auth: a, PrimaryKey: keys[0], SecondaryKey: keys[1]}
	return nd, en != nil && !*en, nil
}

// Update is what replacing a device with in asks of the registry.
func (in DeviceInput) Update() (db.DeviceUpdate, error) {
	en, err := in.enabled()
	if err != nil {
		return db.DeviceUpdate{}, err
	}
	a, keys, err := in.authentication()
	if err != nil {
		return db.DeviceUpdate{}, err
	}
	u := db.DeviceUpdate{Enabled: en, Auth: &a}
	if keys != [2]string{} {
		u.Keys = &keys
	}
	return u, nil
}

// MatchETag reports whether an If-Match value admits current: "*" (quoted
// or not, as the SDKs send it) admits any, otherwise the etag itself,
// quoted or not, weak or strong.
func MatchETag(ifMatch, current string) bool {
	v := strings.TrimSpace(ifMatch)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	return v == "*" || v == current
}
