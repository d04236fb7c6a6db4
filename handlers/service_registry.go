package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/query"
	"fieldhub/registry"
	"fieldhub/serviceapi"
)

// The identity registry of the service API: devices, bulk operations,
// statistics and device queries.

// maxListTop bounds GET /devices?top= (IoT Hub's bound too).
const maxListTop = 1000

func (s *Server) svcListDevices(c echo.Context) error {
	top := maxListTop
	if v := c.QueryParam("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListTop {
			return serviceapi.Errorf(http.StatusBadRequest, serviceapi.CodeArgumentInvalid, "top must be a whole number from 1 to %d", maxListTop)
		}
		top = n
	}
	devs, _, err := s.store.Devices(c.Request().Context(), db.DeviceFilter{Sort: db.DeviceSortID, Limit: top})
	if err != nil {
		return err
	}
	out := make([]serviceapi.Device, len(devs))
	for i, d := range devs {
		out[i] = serviceapi.NewDevice(d, 0)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) svcGetDevice(c echo.Context) error {
	ctx := c.Request().Context()
	dev, err := s.store.Device(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, serviceapi.NewDevice(dev, s.waitingCloudMessages(ctx, dev.DeviceID)))
}

// waitingCloudMessages counts a device's cloud-to-device messages not yet
// settled (commands.MaxCloudQueue at most); 0 when the count fails, since
// it is a figure to show, not a reason to fail the request.
func (s *Server) waitingCloudMessages(ctx context.Context, deviceID string) int {
	msgs, err := s.cloud.History(ctx, deviceID, 200)
	if err != nil {
		s.log.Warn("count cloud-to-device messages", "device", deviceID, "err", err)
		return 0
	}
	n := 0
	for _, m := range msgs {
		if !m.Final() {
			n++
		}
	}
	return n
}

// svcPutDevice creates a device, or with If-Match replaces one: its status
// and authentication (keys, thumbprints, type).
func (s *Server) svcPutDevice(c echo.Context) error {
	id := c.Param("id")
	body, err := readServiceBody(c, serviceapi.MaxDeviceBody)
	if err != nil {
		return err
	}
	in, err := serviceapi.ParseDevice(body, id)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var dev db.Device
	if ifMatch := c.Request().Header.Get("If-Match"); ifMatch == "" {
		dev, err = s.svcCreateDevice(ctx, serviceActor(c), in)
	} else {
		dev, err = s.svcUpdateDevice(ctx, serviceActor(c), in, ifMatch)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, serviceapi.NewDevice(dev, s.waitingCloudMessages(ctx, dev.DeviceID)))
}

func (s *Server) svcCreateDevice(ctx context.Context, actor string, in serviceapi.DeviceInput) (db.Device, error) {
	nd, disabled, err := in.NewDeviceSpec()
	if err != nil {
		return db.Device{}, err
	}
	dev, err := s.devices.Create(ctx, actor, nd)
	if err != nil || !disabled {
		return dev, err
	}
	return s.devices.SetEnabled(ctx, actor, dev.DeviceID, false)
}

// svcUpdateDevice replaces a device if ifMatch admits its etag (412
// otherwise). The check and the update are two steps: a change made in
// between by another writer is overwritten, as the operator API does.
func (s *Server) svcUpdateDevice(ctx context.Context, actor string, in serviceapi.DeviceInput, ifMatch string) (db.Device, error) {
	cur, err := s.store.Device(ctx, in.DeviceID)
	if err != nil {
		return db.Device{}, err
	}
	if !serviceapi.MatchETag(ifMatch, serviceapi.DeviceETag(cur)) {
		return db.Device{}, errPrecondition("device")
	}
	u, err := in.Update()
	if err != nil {
		return db.Device{}, err
	}
	return s.devices.Update(ctx, actor, in.DeviceID, u)
}

func errPrecondition(what string) error {
	return serviceapi.Errorf(http.StatusPreconditionFailed, serviceapi.CodePreconditionFailed,
		"the etag in If-Match is not the %s's current one: it changed since it was read", what)
}

func (s *Server) svcDeleteDevice(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if ifMatch := c.Request().Header.Get("If-Match"); ifMatch != "" {
		cur, err := s.store.Device(ctx, id)
		if err != nil {
			return err
		}
		if !serviceapi.MatchETag(ifMatch, serviceapi.DeviceETag(cur)) {
			return errPrecondition("device")
		}
	}
	if err := s.devices.Delete(ctx, serviceActor(c), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// svcBulkDevices creates, updates and deletes up to 100 devices, each on
// its own: a device that fails is named in errors, the others are done.
// 200 when every one succeeded, 400 with the same body otherwise, as IoT Hub.
func (s *Server) svcBulkDevices(c echo.Context) error {
	body, err := readServiceBody(c, serviceapi.MaxBulkBody)
	if err != nil {
		return err
	}
	ops, err := serviceapi.ParseBulk(body)
	if err != nil {
		return err
	}
	ctx, actor := c.Request().Context(), serviceActor(c)
	res := serviceapi.BulkResult{IsSuccessful: true, Errors: []serviceapi.BulkError{}, Warnings: []serviceapi.BulkWarning{}}
	for _, op := range ops {
		err := s.bulkOne(ctx, actor, op)
		if err == nil {
			continue
		}
		se, known := serviceapi.From(err, serviceapi.CodeDeviceNotFound)
		if !known {
			s.log.Error("bulk registry operation failed", "device", op.ID, "mode", op.Mode(), "err", err)
		}
		res.IsSuccessful = false
		res.Errors = append(res.Errors, serviceapi.BulkError{DeviceID: op.ID, ErrorCode: se.Code, ErrorStatus: se.Message, Operation: op.Mode()})
	}
	status := http.StatusOK
	if !res.IsSuccessful {
		status = http.StatusBadRequest
	}
	return c.JSON(status, res)
}

func (s *Server) bulkOne(ctx context.Context, actor string, op serviceapi.BulkDevice) error {
	in := op.Device()
	ifMatch := ""
	switch op.Mode() {
	case serviceapi.ModeCreate:
		_, err := s.svcCreateDevice(ctx, actor, in)
		return err
	case serviceapi.ModeUpdateIfMatchETag, serviceapi.ModeDeleteIfMatchETag:
		if op.ETag == "" {
			return serviceapi.Errorf(http.StatusBadRequest, serviceapi.CodeArgumentInvalid, "%s needs the device's eTag", op.Mode())
		}
		ifMatch = op.ETag
	default:
		ifMatch = "*"
	}
	if op.Mode() == serviceapi.ModeUpdate || op.Mode() == serviceapi.ModeUpdateIfMatchETag {
		_, err := s.svcUpdateDevice(ctx, actor, in, ifMatch)
		return err
	}
	cur, err := s.store.Device(ctx, op.ID)
	if err != nil {
		return err
	}
	if !serviceapi.MatchETag(ifMatch, serviceapi.DeviceETag(cur)) {
		return errPrecondition("device")
	}
	return s.devices.Delete(ctx, actor, op.ID)
}

func (s *Server) svcDeviceStatistics(c echo.Context) error {
	n, err := s.store.FleetCounts(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]int{
		"totalDeviceCount": n.Online + n.Offline + n.Disabled, "enabledDeviceCount": n.Online + n.Offline, "disabledDeviceCount": n.Disabled,
	})
}

// svcServiceStatistics counts the devices online, Fieldhub's nearest to
// IoT Hub's connected devices: connected over MQTT, or heard from over
// HTTPS within the online window.
func (s *Server) svcServiceStatistics(c echo.Context) error {
	n, err := s.store.FleetCounts(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]int{"connectedDeviceCount": n.Online})
}

// svcQueryDevices runs a device query (the fleet query language) a page
// at a time: x-ms-max-item-count sets the page size, x-ms-continuation
// carries the token of the next page, which the answer gives in the same
// header while there is one.
func (s *Server) svcQueryDevices(c echo.Context) error {
	body, err := readServiceBody(c, query.MaxLength+1024)
	if err != nil {
		return err
	}
	text, err := serviceapi.ParseQuery(body)
	if err != nil {
		return err
	}
	size, err := serviceapi.PageSize(c.Request().Header.Get("x-ms-max-item-count"))
	if err != nil {
		return err
	}
	cont := c.Request().Header.Get("x-ms-continuation")
	if err := serviceapi.CheckContinuation(cont); err != nil {
		return err
	}
	// IoT Hub caps a page too rather than refuse a larger ask.
	size = min(size, registry.MaxQueryPageSize)
	res, err := s.devices.Query(c.Request().Context(), registry.QueryRequest{Text: text, PageSize: size, Continuation: cont})
	if err != nil {
		return err
	}
	h := c.Response().Header()
	if res.Continuation != "" {
		h.Set("x-ms-continuation", res.Continuation)
	}
	if res.Query.Star {
		h.Set("x-ms-item-type", serviceapi.ItemTwin)
		out := make([]serviceapi.Twin, len(res.Devices))
		for i, qd := range res.Devices {
			out[i] = serviceapi.NewTwin(qd.Device, qd.Twin)
		}
		return c.JSON(http.StatusOK, out)
	}
	h.Set("x-ms-item-type", serviceapi.ItemRaw)
	rows := res.Rows
	if rows == nil {
		rows = []map[string]any{}
	}
	return c.JSON(http.StatusOK, rows)
}
