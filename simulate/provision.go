package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"fieldhub/db"
	"fieldhub/storage"
)

// DeviceIDs names n simulated devices: prefix001, prefix002, …
func DeviceIDs(prefix string, n int) []string {
	width := max(3, len(fmt.Sprint(n)))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%0*d", prefix, width, i+1)
	}
	return ids
}

// Spec is a device to create when it does not exist yet.
type Spec struct {
	ID   string
	Name string
	Tags map[string]string
}

// Specs describes n simulated devices named by DeviceIDs.
func Specs(prefix string, n int) []Spec {
	ids := DeviceIDs(prefix, n)
	specs := make([]Spec, n)
	for i, id := range ids {
		specs[i] = Spec{ID: id, Name: fmt.Sprintf("Simulated sensor %d", i+1), Tags: map[string]string{"simulated": "true"}}
	}
	return specs
}

// Registry is the device registry (registry.Registry) the simulator
// creates its devices through, as an operator would.
type Registry interface {
	Device(ctx context.Context, deviceID string) (db.Device, error)
	Create(ctx context.Context, actor string, nd db.NewDevice) (db.Device, error)
}

// Provision returns the devices of specs with their primary keys, creating
// the missing ones through the registry on behalf of actor.
func Provision(ctx context.Context, devices Registry, actor string, specs []Spec) ([]Device, error) {
	out := make([]Device, 0, len(specs))
	for _, s := range specs {
		d, err := devices.Device(ctx, s.ID)
		if errors.Is(err, storage.ErrNotFound) {
			d, err = devices.Create(ctx, actor, db.NewDevice{DeviceID: s.ID, Name: s.Name, Tags: s.Tags})
		}
		if err != nil {
			return nil, fmt.Errorf("provision simulated device %s: %w", s.ID, err)
		}
		if !d.Enabled {
			return nil, fmt.Errorf("provision simulated device %s: it is disabled; enable it or use another --prefix", s.ID)
		}
		out = append(out, Device{ID: d.DeviceID, Key: d.PrimaryKey})
	}
	return out, nil
}

// apiDevice is the part of the operator API's device JSON we need.
type apiDevice struct {
	ID         string `json:"id"`
	Enabled    bool   `json:"enabled"`
	PrimaryKey string `json:"primaryKey"`
}

// ProvisionAPI returns the devices of specs with their primary keys through
// the operator API at apiURL (http(s)://host:port), creating the missing
// ones. Keys are shown only to admin tokens.
func ProvisionAPI(ctx context.Context, client *http.Client, apiURL, token string, specs []Spec) ([]Device, error) {
	base := strings.TrimSuffix(apiURL, "/") + "/api/v1/devices"
	out := make([]Device, 0, len(specs))
	for _, s := range specs {
		var d apiDevice
		status, err := callAPI(ctx, client, http.MethodGet, base+"/"+url.PathEscape(s.ID), token, nil, &d)
		if err == nil && status == http.StatusNotFound {
			req := map[string]any{"id": s.ID, "name": s.Name, "tags": s.Tags}
			status, err = callAPI(ctx, client, http.MethodPost, base, token, req, &d)
		}
		if err != nil {
			return nil, fmt.Errorf("provision simulated device %s: %w", s.ID, err)
		}
		if d.PrimaryKey == "" {
			return nil, fmt.Errorf("provision simulated device %s: the API returned no key; device keys are shown only to admin tokens", s.ID)
		}
		if !d.Enabled {
			return nil, fmt.Errorf("provision simulated device %s: it is disabled; enable it or use another --prefix", s.ID)
		}
		out = append(out, Device{ID: d.ID, Key: d.PrimaryKey})
	}
	return out, nil
}

// callAPI does one JSON request. A 404 is returned as a status, not an
// error, so the caller can create what is missing; other failures become
// errors carrying the API's message.
func callAPI(ctx context.Context, client *http.Client, method, u, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("%s %s: read reply: %w", method, u, err)
	}
	if resp.StatusCode == http.StatusNotFound && method == http.MethodGet {
		return resp.StatusCode, nil
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		_ = json.Unmarshal(raw, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, e.Error)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decode reply: %w", method, u, err)
	}
	return resp.StatusCode, nil
}
