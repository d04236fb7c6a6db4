package handlers

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"fieldhub/db"
	"fieldhub/registry"
)

// maxImportPreview bounds the devices an import answer lists.
const maxImportPreview = 1000

// importJSON is the answer of POST /api/v1/devices/import.
type importJSON struct {
	DryRun    bool `json:"dryRun"`
	Applied   bool `json:"applied"`
	Rows      int  `json:"rows"` // valid rows
	Created   int  `json:"created"`
	Updated   int  `json:"updated"`
	Unchanged int  `json:"unchanged"`
	// CredentialsReplaced counts the existing devices whose keys or
	// certificate registration the file replaces.
	CredentialsReplaced int                 `json:"credentialsReplaced"`
	Errors              []registry.RowError `json:"errors"`
	// ErrorRows counts the rows with an error; errors lists the first 200.
	ErrorRows int                `json:"errorRows"`
	Devices   []importDeviceJSON `json:"devices"`
	More      int                `json:"moreDevices,omitempty"` // devices not listed
}

type importDeviceJSON struct {
	Row     int               `json:"row"`
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Enabled bool              `json:"enabled"`
	Action  string            `json:"action"` // create, update, unchanged
	// Credentials is set when the row gives the device's keys or
	// certificate registration (an export with keys); ReplacesCredentials
	// when they replace the device's own.
	Credentials         bool `json:"credentials,omitempty"`
	ReplacesCredentials bool `json:"replacesCredentials,omitempty"`
}

// importFile reads the upload: the body as CSV, or the "file" part of a
// multipart form (the page), within the bound.
func (s *Server) importFile(c echo.Context) (registry.ImportFile, error) {
	req := c.Request()
	var r io.Reader = req.Body
	if req.MultipartForm != nil {
		// The page's form, parsed already by the CSRF check (within
		// limitImportBody's bound).
		fh, err := c.FormFile("file")
		if err != nil {
			return registry.ImportFile{}, errorf(http.StatusBadRequest, "choose a file to import")
		}
		file, err := fh.Open()
		if err != nil {
			return registry.ImportFile{}, err
		}
		defer file.Close()
		r = file
	} else if mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); mt == "multipart/form-data" {
		mr, err := req.MultipartReader()
		if err != nil {
			return registry.ImportFile{}, errorf(http.StatusBadRequest, "the upload is not a valid form: %v", err)
		}
		for {
			part, err := mr.NextPart()
			if err != nil {
				return registry.ImportFile{}, uploadError(err, "the form has no file field")
			}
			if part.FormName() == "file" {
				r = part
				break
			}
		}
	}
	f, err := registry.ParseImport(r)
	var le *registry.ImportLimitError
	switch {
	case errors.As(err, &le) && le.TooLarge:
		return f, errorf(http.StatusRequestEntityTooLarge, "%s", le.Reason)
	case errors.As(err, &le):
		return f, errorf(http.StatusUnprocessableEntity, "%s", le.Reason)
	case err != nil:
		return f, uploadError(err, "the file could not be read")
	}
	return f, nil
}

func uploadError(err error, what string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, "the upload is larger than %d MB", registry.MaxImportBytes>>20)
	}
	return errorf(http.StatusBadRequest, "%s: %v", what, err)
}

// runImport parses the upload and applies it (or, dry, previews it).
// Rows with errors stop the whole import: nothing is applied until the
// file is right.
func (s *Server) runImport(c echo.Context, dryRun bool) (importJSON, int, error) {
	f, err := s.importFile(c)
	if err != nil {
		return importJSON{}, 0, err
	}
	out := importJSON{DryRun: dryRun, Rows: len(f.Devices), Errors: f.Errors, ErrorRows: f.ErrorRows}
	if out.Errors == nil {
		out.Errors = []registry.RowError{}
	}
	status := http.StatusOK
	apply := !dryRun && f.ErrorRows == 0
	if f.ErrorRows > 0 {
		status = http.StatusUnprocessableEntity
	}
	sum, err := s.devices.Import(c.Request().Context(), actor(c), f, !apply)
	if err != nil {
		return importJSON{}, 0, err
	}
	out.Applied = apply
	out.Created, out.Updated, out.Unchanged = sum.Created, sum.Updated, sum.Unchanged
	out.CredentialsReplaced = len(sum.CredentialsChanged)
	replaced := make(map[string]bool, len(sum.CredentialsChanged))
	for _, id := range sum.CredentialsChanged {
		replaced[id] = true
	}
	for i, dev := range f.Devices {
		if i == maxImportPreview {
			out.More = len(f.Devices) - i
			break
		}
		out.Devices = append(out.Devices, importDeviceJSON{Row: f.Rows[i], ID: dev.DeviceID, Name: dev.Name, Tags: dev.Tags,
			Enabled: dev.Enabled, Action: sum.Actions[i], Credentials: dev.Credentials != nil, ReplacesCredentials: replaced[dev.DeviceID]})
	}
	return out, status, nil
}

// apiImportDevices is POST /api/v1/devices/import[?dryRun=true]: a CSV
// file (the body, or a multipart "file") of id,name,tags,enabled and,
// from an export with keys, the devices' credentials.
func (s *Server) apiImportDevices(c echo.Context) error {
	dryRun, err := boolParam(c, "dryRun")
	if err != nil {
		return err
	}
	if p, _ := principal(c); !dryRun && !p.IsAdmin() {
		return errorf(http.StatusForbidden, "applying an import needs the admin role; operators may preview one with dryRun=true")
	}
	out, status, err := s.runImport(c, dryRun)
	if err != nil {
		return err
	}
	return c.JSON(status, out)
}

func boolParam(c echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "%s must be true or false", name)
	}
	return b, nil
}

// importActionLabel names an action for people.
func importActionLabel(a string) string {
	switch a {
	case db.ImportCreate:
		return "new"
	case db.ImportUpdate:
		return "changes"
	}
	return "unchanged"
}

// limitImportBody bounds an import request's body before anything reads
// it (the CSRF check parses a page's form): the file's bound and room for
// the form around it.
func limitImportBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > registry.MaxImportBytes+64<<10 {
			return errorf(http.StatusRequestEntityTooLarge, "the upload is %d bytes; an import may have at most %d MB", req.ContentLength, registry.MaxImportBytes>>20)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, registry.MaxImportBytes+64<<10)
		return next(c)
	}
}
