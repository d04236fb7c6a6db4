package handlers

import (
	"context"
	"net/http"
	"time"

	"fieldhub/storage"
	"fieldhub/views"

	"github.com/labstack/echo/v4"
)

// storageKind is one kind of record on the storage page and in its API.
type storageKind struct {
	Kind      string `json:"kind"`
	Rows      int64  `json:"rows"`
	Bytes     int64  `json:"bytes"`
	Estimated bool   `json:"estimated"`
	// KeptSeconds is how long the kind is kept; -1 for ever, absent when
	// the hub does not say.
	KeptSeconds *int64 `json:"keptSeconds,omitempty"`
	kept        string
}

// diskUsage reads the store's figures and adds each kind's retention.
func (s *Server) diskUsage(ctx context.Context) (storage.DiskUsage, []storageKind, error) {
	u, err := s.store.DiskUsage(ctx)
	if err != nil {
		return u, nil, err
	}
	type kept struct {
		d    time.Duration
		flag string
	}
	keep := map[string]kept{
		storage.KindAudit:  {s.auditRetention, "--audit-retention"},
		storage.KindAlerts: {s.alertRetention, "--alert-retention"},
	}
	if s.telemetry != nil {
		r := s.telemetry.Retention()
		keep[storage.KindMessages] = kept{r.Messages, "--message-retention"}
		keep[storage.KindRaw] = kept{r.Raw, "--retention"}
	}
	out := make([]storageKind, len(u.Kinds))
	for i, k := range u.Kinds {
		out[i] = storageKind{Kind: k.Kind, Rows: k.Rows, Bytes: k.Bytes, Estimated: k.Estimated}
		if k.Kind == storage.KindRollups && s.telemetry != nil {
			r := s.telemetry.Retention()
			out[i].kept = views.KeptFor(r.Minutes, "per minute, --minute-rollup-retention") + "; " + views.KeptFor(r.Hours, "per hour, --hour-rollup-retention")
			continue
		}
		if kp, ok := keep[k.Kind]; ok && kp.d != 0 {
			secs := int64(kp.d.Seconds())
			if kp.d < 0 {
				secs = -1
			}
			out[i].KeptSeconds = &secs
			out[i].kept = views.KeptFor(kp.d, kp.flag)
		}
	}
	return u, out, nil
}

// showStorage: GET /storage — disk use by kind (admins).
func (s *Server) showStorage(c echo.Context) error {
	u, kinds, err := s.diskUsage(c.Request().Context())
	if err != nil {
		return err
	}
	m := views.StoragePage{Page: s.page(c, "Storage", views.NavStorage), Total: u.Total, Free: u.Free}
	for _, k := range kinds {
		m.Kinds = append(m.Kinds, views.StorageKind{Kind: k.Kind, Rows: k.Rows, Bytes: k.Bytes, Kept: k.kept})
		m.Estimated = m.Estimated || k.Estimated
	}
	return s.render(c, http.StatusOK, views.StorageView(m))
}

// apiShowStorage: GET /api/v1/storage — the same as JSON.
func (s *Server) apiShowStorage(c echo.Context) error {
	u, kinds, err := s.diskUsage(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"totalBytes": u.Total, "freeBytes": u.Free, "kinds": kinds})
}
