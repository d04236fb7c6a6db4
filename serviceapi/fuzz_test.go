package serviceapi

import (
	"errors"
	"testing"
)

// The parsers of the service API's bodies and headers: whatever they are
// given, they return a value or an *Error with a 4xx status, never panic.

func checkRefusal(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var se *Error
	if !errors.As(err, &se) || se.Status < 400 || se.Status >= 500 || se.Code == "" || se.Message == "" {
		t.Fatalf("%s: error %v is not a 4xx *Error with a code and a message", what, err)
	}
}

func FuzzParseBulk(f *testing.F) {
	f.Add(`[{"id":"a","importMode":"create","authentication":{"type":"sas"}},{"id":"b","importMode":"delete","eTag":"x"}]`)
	f.Add(`[{"id":"a","importMode":"create"},{"id":"a","importMode":"create"}]`)
	f.Add(`[`)
	f.Add(`[] x`)
	f.Fuzz(func(t *testing.T, body string) {
		ops, err := ParseBulk([]byte(body))
		checkRefusal(t, "ParseBulk", err)
		if err != nil {
			return
		}
		if len(ops) == 0 || len(ops) > MaxBulkDevices {
			t.Fatalf("ParseBulk accepted %d devices", len(ops))
		}
		seen := map[string]bool{}
		for _, op := range ops {
			if op.ID == "" || op.Mode() == "" || seen[op.ID] {
				t.Fatalf("ParseBulk accepted %+v", op)
			}
			seen[op.ID] = true
			if _, _, err := op.Device().NewDeviceSpec(); err != nil {
				checkRefusal(t, "NewDeviceSpec", err)
			}
		}
	})
}

func FuzzParseJob(f *testing.F) {
	f.Add(`{"jobId":"j1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","payload":{},"responseTimeoutInSeconds":30},"queryCondition":"deviceId = 'a'","startTime":"2026-01-02T03:04:05Z","maxExecutionTimeInSeconds":60}`)
	f.Add(`{"type":"scheduleUpdateTwin","updateTwin":{"etag":"*","properties":{"desired":{"a":{"b":null}}}},"queryCondition":"tags.x = 1"}`)
	f.Add(`{"type":"scheduleUpdateTwin","updateTwin":{"tags":{"a":1}},"queryCondition":"x"}`)
	f.Fuzz(func(t *testing.T, body string) {
		spec, err := ParseJob([]byte(body), "j1")
		checkRefusal(t, "ParseJob", err)
		if err == nil && (spec.ID != "j1" || spec.Query == "" || (spec.Method == nil) == (spec.Patch == nil)) {
			t.Fatalf("ParseJob accepted %+v", spec)
		}
	})
}

func FuzzParseJobContinuation(f *testing.F) {
	f.Add(JobContinuation(0))
	f.Add(JobContinuation(150))
	f.Add("am9iczotMQ")
	f.Fuzz(func(t *testing.T, token string) {
		n, err := ParseJobContinuation(token)
		checkRefusal(t, "ParseJobContinuation", err)
		if err != nil {
			return
		}
		if n < 0 || n > MaxJobOffset {
			t.Fatalf("offset %d out of bounds", n)
		}
		if token != "" && JobContinuation(n) != token {
			t.Fatalf("token %q reads as %d, which is written %q", token, n, JobContinuation(n))
		}
	})
}

func FuzzParseDeviceAndTwin(f *testing.F) {
	f.Add(`{"deviceId":"d1","status":"disabled","authentication":{"symmetricKey":{"primaryKey":"","secondaryKey":""}}}`)
	f.Add(`{"tags":{"a":"b","c":null},"properties":{"desired":{"x":{"y":1},"$version":2}}}`)
	f.Add(`{"methodName":"m","payload":[1,2],"responseTimeoutInSeconds":5,"connectTimeoutInSeconds":0}`)
	f.Add(`{"query":"SELECT * FROM devices"}`)
	f.Fuzz(func(t *testing.T, body string) {
		b := []byte(body)
		if in, err := ParseDevice(b, "d1"); err != nil {
			checkRefusal(t, "ParseDevice", err)
		} else {
			_, _, err := in.NewDeviceSpec()
			checkRefusal(t, "NewDeviceSpec", err)
			_, err = in.Update()
			checkRefusal(t, "Update", err)
		}
		if in, err := ParseTwin(b); err != nil {
			checkRefusal(t, "ParseTwin", err)
		} else {
			_, _, err := in.TagsAfter(map[string]string{"a": "b"}, false)
			checkRefusal(t, "TagsAfter", err)
			_, err = in.DesiredPatch(map[string]any{"x": map[string]any{"z": 1}}, true)
			checkRefusal(t, "DesiredPatch", err)
		}
		_, err := ParseMethod(b)
		checkRefusal(t, "ParseMethod", err)
		_, err = ParseQuery(b)
		checkRefusal(t, "ParseQuery", err)
	})
}

func FuzzHeaders(f *testing.F) {
	f.Add("2021-04-12", "100")
	f.Add("2020-09-30-preview", "0")
	f.Fuzz(func(t *testing.T, version, size string) {
		checkRefusal(t, "CheckAPIVersion", CheckAPIVersion(version))
		n, err := PageSize(size)
		checkRefusal(t, "PageSize", err)
		if err == nil && (n < 1 || n > MaxPageSize) {
			t.Fatalf("PageSize(%q) = %d", size, n)
		}
	})
}
