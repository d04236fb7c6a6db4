package serviceapi

import (
	"net/http"
	"time"
)

// MinAPIVersion is the oldest api-version the service API accepts: the
// shapes here are those of 2020-09-30 and later (the current SDKs send
// 2021-04-12 or newer).
const MinAPIVersion = "2020-09-30"

// CheckAPIVersion checks the api-version query parameter: a date
// (YYYY-MM-DD, with an optional suffix such as -preview) no older than
// MinAPIVersion. IoT Hub refuses a request without one.
func CheckAPIVersion(v string) error {
	if v == "" {
		return Errorf(http.StatusBadRequest, CodeInvalidProtocolVersion, "the api-version query parameter is required, %s or later", MinAPIVersion)
	}
	if len(v) > 32 {
		return Errorf(http.StatusBadRequest, CodeInvalidProtocolVersion, "api-version is longer than 32 characters")
	}
	day := v
	if len(day) > 10 {
		if day[10] != '-' {
			return Errorf(http.StatusBadRequest, CodeInvalidProtocolVersion, "api-version %q is not a date like %s", v, MinAPIVersion)
		}
		day = day[:10]
	}
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		return Errorf(http.StatusBadRequest, CodeInvalidProtocolVersion, "api-version %q is not a date like %s", v, MinAPIVersion)
	}
	if day < MinAPIVersion {
		return Errorf(http.StatusBadRequest, CodeInvalidProtocolVersion, "api-version %s is older than %s, the oldest this hub speaks", day, MinAPIVersion)
	}
	return nil
}
