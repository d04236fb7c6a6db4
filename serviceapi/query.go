package serviceapi

import (
	"net/http"
	"strings"

	"fieldhub/query"
)

// The x-ms-item-type of a query's answer: twins for SELECT *, raw rows for
// projections and aggregates.
const (
	ItemTwin        = "twin"
	ItemRaw         = "raw"
	ItemJobResponse = "jobResponse"
)

// ParseQuery reads the body of POST /devices/query: {"query": "SELECT …"}.
func ParseQuery(body []byte) (string, error) {
	var q struct {
		Query string `json:"query"`
	}
	if err := decodeJSON(body, &q); err != nil {
		return "", err
	}
	if strings.TrimSpace(q.Query) == "" {
		return "", Errorf(http.StatusBadRequest, CodeArgumentInvalid, "query is required, such as SELECT * FROM devices WHERE tags.site = 'north'")
	}
	if len(q.Query) > query.MaxLength {
		return "", Errorf(http.StatusBadRequest, CodeArgumentInvalid, "query is %d bytes, at most %d are allowed", len(q.Query), query.MaxLength)
	}
	return q.Query, nil
}
