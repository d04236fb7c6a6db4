package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"fieldhub/telemetry"

	"github.com/labstack/echo/v4"
)

// Telemetry is what the API and the pages read of the message log and the
// time series; *telemetry.Store implements it.
type Telemetry interface {
	Metrics(ctx context.Context, deviceID string) ([]telemetry.Metric, error)
	Readings(ctx context.Context, deviceID, metric string, from, to time.Time, points int) (telemetry.Downsampled, error)
	ReadingsAt(ctx context.Context, deviceID, metric string, from, to time.Time, points int, t telemetry.Tier) (telemetry.Downsampled, error)
	RawReadings(ctx context.Context, deviceID, metric string, from, to time.Time, fn func(t time.Time, v float64) error) error
	RollupReadings(ctx context.Context, deviceID, metric string, t telemetry.Tier, from, to time.Time, fn func(telemetry.Rollup) error) error
	ExportTier(from, to time.Time) telemetry.Tier
	// Retention is how long each kind of telemetry is kept (the storage page).
	Retention() telemetry.Retention
	Messages(ctx context.Context, deviceID string, f telemetry.MessageFilter) ([]telemetry.Message, error)
}

// Defaults of the readings query.
const (
	defaultRange  = time.Hour
	defaultPoints = 1000
)

type metricJSON struct {
	Name      string     `json:"name"`
	LastValue *float64   `json:"lastValue"`
	LastTime  *time.Time `json:"lastTime"`
}

// apiListMetrics: GET /api/v1/devices/{id}/metrics — names, last value, last time.
func (s *Server) apiListMetrics(c echo.Context) error {
	id, err := protocolDeviceID(c)
	if err != nil {
		return err
	}
	ms, err := s.telemetry.Metrics(c.Request().Context(), id)
	if err != nil {
		return err
	}
	out := make([]metricJSON, len(ms))
	for i, m := range ms {
		out[i].Name = m.Name
		if !m.LastTime.IsZero() {
			v, t := m.LastValue, m.LastTime
			out[i].LastValue, out[i].LastTime = &v, &t
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"metrics": out})
}

// bucketJSON is one downsampled bucket; t is its start in Unix milliseconds.
type bucketJSON struct {
	T     int64   `json:"t"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Avg   float64 `json:"avg"`
	Count int     `json:"count"`
}

// apiListReadings: GET /api/v1/devices/{id}/readings?metric=&from=&to=&points=&tier=
// downsampled to at most points buckets, from the tier the range calls for
// unless tier= says which; &format=csv or &format=json streams the range's
// readings (raw, or rollup rows where raw ones are no longer kept) as a
// download instead.
func (s *Server) apiListReadings(c echo.Context) error {
	id, err := protocolDeviceID(c)
	if err != nil {
		return err
	}
	metric := c.QueryParam("metric")
	if metric == "" {
		return errorf(http.StatusBadRequest, "metric is required, e.g. ?metric=temperature (see …/metrics for the names)")
	}
	from, to, err := timeRange(c, s.now())
	if err != nil {
		return err
	}
	tier, auto, err := tierParam(c)
	if err != nil {
		return err
	}
	switch format := c.QueryParam("format"); format {
	case "":
	case "csv", "json":
		if auto {
			tier = s.telemetry.ExportTier(from, to)
		}
		return s.exportReadings(c, id, metric, from, to, format, tier)
	default:
		return errorf(http.StatusBadRequest, "format %q: use csv or json for a raw export, or leave it out for chart buckets", format)
	}
	points, err := intParam(c, "points", defaultPoints, 1, telemetry.MaxBuckets)
	if err != nil {
		return err
	}
	var d telemetry.Downsampled
	if auto {
		d, err = s.telemetry.Readings(c.Request().Context(), id, metric, from, to, points)
	} else {
		d, err = s.telemetry.ReadingsAt(c.Request().Context(), id, metric, from, to, points, tier)
	}
	if err != nil {
		return err
	}
	out := make([]bucketJSON, len(d.Buckets))
	for i, b := range d.Buckets {
		out[i] = bucketJSON{T: b.Time.UnixMilli(), Min: b.Min, Max: b.Max, Avg: b.Avg, Count: b.Count}
	}
	return c.JSON(http.StatusOK, map[string]any{
		"device": id, "metric": metric, "from": from, "to": to, "points": points, "tier": d.Tier.String(), "buckets": out,
	})
}

// tierParam reads tier= (raw, 1m or 1h); auto when it is absent or "auto".
func tierParam(c echo.Context) (t telemetry.Tier, auto bool, err error) {
	v := c.QueryParam("tier")
	if v == "" || v == "auto" {
		return 0, true, nil
	}
	t, ok := telemetry.ParseTier(v)
	if !ok {
		return 0, false, errorf(http.StatusBadRequest, "tier %q: use raw, 1m or 1h, or leave it out to let the range decide", v)
	}
	return t, false, nil
}

// timeRange reads from and to (RFC 3339 or Unix milliseconds); the default is
// the hour up to now.
func timeRange(c echo.Context, now time.Time) (time.Time, time.Time, error) {
	to, err := timeParam(c, "to", now)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	from, err := timeParam(c, "from", to.Add(-defaultRange))
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if to.Before(from) {
		return time.Time{}, time.Time{}, errorf(http.StatusBadRequest, "from (%s) is after to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

func timeParam(c echo.Context, name string, def time.Time) (time.Time, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		if ms < -1e15 || ms > 1e15 {
			return time.Time{}, errorf(http.StatusBadRequest, "%s=%s is out of range for Unix milliseconds", name, v)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, "%s=%q: use RFC 3339 (2026-05-01T10:00:00Z) or Unix milliseconds", name, v)
	}
	return t.UTC(), nil
}

// exportReadings streams a tier's readings as CSV or JSON while reading
// them, so an export of any size needs little memory. Which tier it holds is
// in the X-Fieldhub-Tier header, the file name (…-1m.csv) and the columns:
// time,value for raw readings, time,min,max,avg,count for rollups.
func (s *Server) exportReadings(c echo.Context, id, metric string, from, to time.Time, format string, tier telemetry.Tier) error {
	ctx := c.Request().Context()
	resp := c.Response()
	w := bufio.NewWriterSize(resp, 32*1024)
	// Headers go out with the first reading (or at the end), so that an unknown
	// device or metric is still a proper 404 rather than a broken download.
	started := false
	start := func() {
		started = true
		name := exportName(id, metric, format)
		if tier != telemetry.TierRaw {
			name = exportName(id, metric+"-"+tier.String(), format)
		}
		h := resp.Header()
		h.Set("X-Fieldhub-Tier", tier.String())
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, name, url.PathEscape(name)))
		h.Set("Cache-Control", "no-store")
		if format == "csv" {
			h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
		} else {
			h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		}
		resp.WriteHeader(http.StatusOK)
		switch {
		case format == "csv" && tier == telemetry.TierRaw:
			w.WriteString("time,value\n")
		case format == "csv":
			w.WriteString("time,min,max,avg,count\n")
		case tier == telemetry.TierRaw:
			fmt.Fprintf(w, `{"device":%s,"metric":%s,"tier":"raw","readings":[`, jsonString(id), jsonString(metric))
		default:
			fmt.Fprintf(w, `{"device":%s,"metric":%s,"tier":"%s","rollups":[`, jsonString(id), jsonString(metric), tier)
		}
	}
	var buf []byte
	first := true
	var err error
	if tier != telemetry.TierRaw {
		err = s.telemetry.RollupReadings(ctx, id, metric, tier, from, to, func(r telemetry.Rollup) error {
			if !started {
				start()
			}
			buf = appendRollup(buf[:0], r, format, first)
			first = false
			_, err := w.Write(buf)
			return err
		})
	} else {
		err = s.exportRaw(ctx, w, id, metric, from, to, format, start, &started)
	}
	if err != nil && !started {
		return err
	}
	if !started {
		start()
	}
	if format == "json" && err == nil {
		w.WriteString("]}\n")
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		// The status is sent; all that is left is to cut the download short.
		s.log.Warn("export readings", "device", id, "metric", metric, "tier", tier.String(), "err", err)
	}
	return nil
}

// appendRollup appends one rollup row of an export.
func appendRollup(buf []byte, r telemetry.Rollup, format string, first bool) []byte {
	t := time.UnixMilli(r.Bucket).UTC()
	avg := r.Sum / float64(r.N)
	if format == "csv" {
		buf = t.AppendFormat(buf, time.RFC3339Nano)
		for _, v := range []float64{r.Min, r.Max, avg} {
			buf = append(buf, ',')
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
		}
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(r.N), 10)
		return append(buf, '\n')
	}
	if !first {
		buf = append(buf, ',')
	}
	buf = append(buf, `{"time":"`...)
	buf = t.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","min":`...)
	buf = appendJSONFloat(buf, r.Min)
	buf = append(buf, `,"max":`...)
	buf = appendJSONFloat(buf, r.Max)
	buf = append(buf, `,"avg":`...)
	buf = appendJSONFloat(buf, avg)
	buf = append(buf, `,"count":`...)
	buf = strconv.AppendInt(buf, int64(r.N), 10)
	return append(buf, '}')
}

// exportRaw writes the raw readings of an export.
func (s *Server) exportRaw(ctx context.Context, w *bufio.Writer, id, metric string, from, to time.Time, format string, start func(), started *bool) error {
	var buf []byte
	first := true
	return s.telemetry.RawReadings(ctx, id, metric, from, to, func(t time.Time, v float64) error {
		if !*started {
			start()
		}
		buf = buf[:0]
		if format == "csv" {
			buf = t.AppendFormat(buf, time.RFC3339Nano)
			buf = append(buf, ',')
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
			buf = append(buf, '\n')
		} else {
			if !first {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"time":"`...)
			buf = t.AppendFormat(buf, time.RFC3339Nano)
			buf = append(buf, `","value":`...)
			buf = appendJSONFloat(buf, v)
			buf = append(buf, '}')
		}
		first = false
		_, err := w.Write(buf)
		return err
	})
}

func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// exportName is a safe file name for a download.
func exportName(id, metric, ext string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r < 0x20 || strings.ContainsRune(`"\/:*?<>|%`, r) {
				return '_'
			}
			return r
		}, s)
	}
	return clean(id) + "-" + clean(metric) + "." + ext
}

// apiListMessages: GET /api/v1/devices/{id}/messages?limit=&before= — the
// message log, newest first; "next" is the before= of the following page.
func (s *Server) apiListMessages(c echo.Context) error {
	id, err := protocolDeviceID(c)
	if err != nil {
		return err
	}
	limit, err := intParam(c, "limit", 50, 1, telemetry.MaxMessagePage)
	if err != nil {
		return err
	}
	var before int64
	if v := c.QueryParam("before"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			return errorf(http.StatusBadRequest, "before must be a message id (a positive whole number)")
		}
	}
	msgs, err := s.telemetry.Messages(c.Request().Context(), id, telemetry.MessageFilter{Limit: limit, Before: before})
	if err != nil {
		return err
	}
	out := make([]telemetry.MessageView, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].View()
	}
	resp := map[string]any{"messages": out}
	if len(msgs) == limit {
		resp["next"] = msgs[len(msgs)-1].ID
	}
	return c.JSON(http.StatusOK, resp)
}
