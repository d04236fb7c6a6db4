package handlers

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/serviceapi"
)

// Twins and direct methods of the service API.

func (s *Server) svcGetTwin(c echo.Context) error {
	ctx := c.Request().Context()
	dev, err := s.store.Device(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	tw, err := s.twins.Get(ctx, dev.DeviceID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, serviceapi.NewTwin(dev, tw))
}

func (s *Server) svcPatchTwin(c echo.Context) error { return s.svcWriteTwin(c, false) }

func (s *Server) svcReplaceTwin(c echo.Context) error { return s.svcWriteTwin(c, true) }

// svcWriteTwin patches (or replaces) a twin's tags and desired properties.
// Tags are the device's (the registry changes them), desired properties
// the twin service's; with an etag in If-Match, the desired change is
// refused if desired moved since, atomically, and the tags are checked
// against the etag just before they change.
func (s *Server) svcWriteTwin(c echo.Context, replace bool) error {
	body, err := readServiceBody(c, serviceapi.MaxTwinBody)
	if err != nil {
		return err
	}
	in, err := serviceapi.ParseTwin(body)
	if err != nil {
		return err
	}
	ctx, actor, id := c.Request().Context(), serviceActor(c), c.Param("id")
	dev, err := s.store.Device(ctx, id)
	if err != nil {
		return err
	}
	tw, err := s.twins.Get(ctx, id)
	if err != nil {
		return err
	}
	var ifVersion int64
	if ifMatch := strings.TrimSpace(c.Request().Header.Get("If-Match")); ifMatch != "" {
		if !serviceapi.MatchETag(ifMatch, serviceapi.TwinETag(dev, tw)) {
			return errPrecondition("twin")
		}
		if !serviceapi.MatchETag(ifMatch, "*") {
			ifVersion = tw.DesiredVersion
		}
	}
	tags, changed, err := in.TagsAfter(dev.Tags, replace)
	if err != nil {
		return err
	}
	patch, err := in.DesiredPatch(tw.Desired, replace)
	if err != nil {
		return err
	}
	if changed {
		if dev, err = s.devices.Update(ctx, actor, id, db.DeviceUpdate{Tags: tags}); err != nil {
			return err
		}
	}
	if patch != nil {
		if tw, err = s.twins.PatchDesired(ctx, actor, id, patch, ifVersion); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, serviceapi.NewTwin(dev, tw))
}

// svcInvokeMethod calls a direct method and answers the device's status
// and payload; a device without a live connection is IoT Hub's 404
// DeviceNotOnline, one that does not answer in time 504.
func (s *Server) svcInvokeMethod(c echo.Context) error {
	body, err := readServiceBody(c, serviceapi.MaxMethodBody)
	if err != nil {
		return err
	}
	call, err := serviceapi.ParseMethod(body)
	if err != nil {
		return err
	}
	res, err := s.methods.Invoke(c.Request().Context(), serviceActor(c), c.Param("id"), call)
	if err != nil {
		return err
	}
	payload := res.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	return c.JSON(http.StatusOK, serviceapi.MethodResponse{Status: res.Status, Payload: payload})
}
