package serviceapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// Import modes of a bulk registry operation.
const (
	ModeCreate            = "create"
	ModeUpdate            = "update"
	ModeUpdateIfMatchETag = "updateIfMatchETag"
	ModeDelete            = "delete"
	ModeDeleteIfMatchETag = "deleteIfMatchETag"
)

// BulkDevice is one entry of POST /devices (IoT Hub's ExportImportDevice).
type BulkDevice struct {
	ID             string     `json:"id"`
	ETag           string     `json:"eTag"`
	ImportMode     string     `json:"importMode"`
	Status         string     `json:"status"`
	StatusReason   string     `json:"statusReason"`
	Authentication *AuthInput `json:"authentication"`
	Capabilities   *struct {
		IotEdge bool `json:"iotEdge"`
	} `json:"capabilities"`
}

// Mode is the entry's import mode, spelled canonically whatever case the
// client used; "" when it is none of the modes above.
func (b BulkDevice) Mode() string {
	for _, m := range []string{ModeCreate, ModeUpdate, ModeUpdateIfMatchETag, ModeDelete, ModeDeleteIfMatchETag} {
		if strings.EqualFold(b.ImportMode, m) {
			return m
		}
	}
	return ""
}

// Device is the entry as a device input.
func (b BulkDevice) Device() DeviceInput {
	return DeviceInput{DeviceID: b.ID, ETag: b.ETag, Status: b.Status, StatusReason: b.StatusReason,
		Authentication: b.Authentication, Capabilities: b.Capabilities}
}

// ParseBulk reads the body of POST /devices: an array of at most
// MaxBulkDevices entries, each with an id and an import mode, no id twice.
// The count is checked while decoding, so that a huge array costs no more
// than MaxBulkDevices entries.
func ParseBulk(body []byte) ([]BulkDevice, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "the body must be a JSON array of devices, each with id and importMode")
	}
	var out []BulkDevice
	seen := map[string]bool{}
	for dec.More() {
		if len(out) == MaxBulkDevices {
			return nil, Errorf(http.StatusBadRequest, CodeTooManyDevices, "a bulk operation takes at most %d devices", MaxBulkDevices)
		}
		var d BulkDevice
		if err := dec.Decode(&d); err != nil {
			return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "device %d of the array is not the JSON expected: %s", len(out)+1, clip(err.Error()))
		}
		switch {
		case d.ID == "":
			return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "device %d of the array has no id", len(out)+1)
		case d.Mode() == "":
			return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "device %q: importMode must be one of create, update, updateIfMatchETag, delete, deleteIfMatchETag, not %q", clip(d.ID), clip(d.ImportMode))
		case seen[d.ID]:
			return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "device %q appears twice: each device may be named once per call", clip(d.ID))
		}
		seen[d.ID] = true
		out = append(out, d)
	}
	if _, err := dec.Token(); err != nil {
		return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "the body is not a complete JSON array: %s", clip(err.Error()))
	}
	if dec.More() {
		return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "the body holds more than one JSON value")
	}
	if len(out) == 0 {
		return nil, Errorf(http.StatusBadRequest, CodeArgumentInvalid, "the array names no device")
	}
	return out, nil
}

// BulkResult is the answer of POST /devices (IoT Hub's
// BulkRegistryOperationResult).
type BulkResult struct {
	IsSuccessful bool          `json:"isSuccessful"`
	Errors       []BulkError   `json:"errors"`
	Warnings     []BulkWarning `json:"warnings"`
}

// BulkError is why one device's operation failed.
type BulkError struct {
	DeviceID    string `json:"deviceId"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
	Operation   string `json:"operation"`
}

// BulkWarning is IoT Hub's; Fieldhub gives none.
type BulkWarning struct {
	DeviceID      string `json:"deviceId"`
	WarningCode   string `json:"warningCode"`
	WarningStatus string `json:"warningStatus"`
}
