package serviceapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"fieldhub/auth"
	"fieldhub/db"
	"fieldhub/storage"
)

func wantCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) || se.Status != status || se.Code != code {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
}

func TestCheckAPIVersion(t *testing.T) {
	for _, v := range []string{"2020-09-30", "2021-04-12", "2021-04-12-preview", "2030-01-01"} {
		if err := CheckAPIVersion(v); err != nil {
			t.Errorf("%q refused: %v", v, err)
		}
	}
	for _, v := range []string{"", "2020-09-29", "2018-06-30", "yesterday", "2021-4-12", "2021-04-12x", strings.Repeat("2", 40)} {
		wantCode(t, CheckAPIVersion(v), http.StatusBadRequest, CodeInvalidProtocolVersion)
	}
}

func TestErrorBody(t *testing.T) {
	b := NewBody(Errorf(404, CodeDeviceNotFound, "device %q not found; gone", "d1"), "abc", time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC))
	// The SDKs split Message at ';': code before, message after.
	if b.Message != `ErrorCode:DeviceNotFound;device "d1" not found, gone` {
		t.Errorf("Message = %q", b.Message)
	}
	if b.ExceptionMessage != "Tracking ID:abc-TimeStamp:12/02/2026 03:04:05" {
		t.Errorf("ExceptionMessage = %q", b.ExceptionMessage)
	}
}

func TestFrom(t *testing.T) {
	tests := []struct {
		err      error
		notFound string
		status   int
		code     string
		known    bool
	}{
		{fmt.Errorf("device %q: %w", "d", storage.ErrNotFound), CodeDeviceNotFound, 404, CodeDeviceNotFound, true},
		{fmt.Errorf("job: %w", storage.ErrNotFound), CodeJobNotFound, 404, CodeJobNotFound, true},
		{fmt.Errorf("x: %w", storage.ErrConflict), CodeDeviceNotFound, 409, CodeDeviceAlreadyExists, true},
		{storage.Invalid("id", "bad"), CodeDeviceNotFound, 400, CodeArgumentInvalid, true},
		{db.ErrVersionMismatch, CodeDeviceNotFound, 412, CodePreconditionFailed, true},
		{errors.New("disk on fire"), CodeDeviceNotFound, 500, CodeServerError, false},
	}
	for _, tt := range tests {
		se, known := From(tt.err, tt.notFound)
		if se.Status != tt.status || se.Code != tt.code || known != tt.known {
			t.Errorf("From(%v) = %d %s %v, want %d %s %v", tt.err, se.Status, se.Code, known, tt.status, tt.code, tt.known)
		}
		if !known && strings.Contains(se.Message, "fire") {
			t.Errorf("an internal cause leaks: %q", se.Message)
		}
	}
}

func TestNewDeviceShape(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dev := db.Device{ID: 7, DeviceID: "d1", PrimaryKey: "pk", SecondaryKey: "sk", Auth: db.Authentication{Type: auth.AuthSAS},
		Enabled: true, CreatedAt: at, UpdatedAt: at.Add(time.Second)}
	b, _ := json.Marshal(NewDevice(dev, 3))
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	want := map[string]any{
		"deviceId": "d1", "generationId": GenerationID(dev), "etag": DeviceETag(dev), "connectionState": "Disconnected",
		"status": "enabled", "statusReason": nil, "connectionStateUpdatedTime": "0001-01-01T00:00:00Z",
		"statusUpdatedTime": "2026-01-02T03:04:06Z", "lastActivityTime": "0001-01-01T00:00:00Z", "cloudToDeviceMessageCount": 3.0,
		"authentication": map[string]any{"type": "sas",
			"symmetricKey":   map[string]any{"primaryKey": "pk", "secondaryKey": "sk"},
			"x509Thumbprint": map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}},
		"capabilities": map[string]any{"iotEdge": false},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("device JSON\n got %v\nwant %v", got, want)
	}
	dev2 := dev
	dev2.UpdatedAt = dev.UpdatedAt.Add(time.Millisecond)
	if DeviceETag(dev2) == DeviceETag(dev) {
		t.Error("the etag did not change with the device")
	}
	again := dev
	again.ID, again.CreatedAt = 8, at.Add(time.Minute)
	if GenerationID(again) == GenerationID(dev) {
		t.Error("a device created again has the same generationId")
	}
}

func TestParseDevice(t *testing.T) {
	const key = "c2Vjb25kYXJ5IGtleSBvZiB0aGUgcG9saWN5IGhlcmU="
	tests := []struct {
		name     string
		body     string
		wantType string
		wantKeys [2]string
		disabled bool
		wantErr  string
	}{
		{"bare", `{"deviceId":"d1"}`, auth.AuthSAS, [2]string{}, false, ""},
		{"no id in the body", `{}`, auth.AuthSAS, [2]string{}, false, ""},
		{"as the Node SDK sends it", `{"deviceId":"d1","status":"disabled","authentication":{"symmetricKey":{"primaryKey":"","secondaryKey":""},"x509Thumbprint":{"primaryThumbprint":"","secondaryThumbprint":""}},"connectionState":"Disconnected","etag":"x"}`, auth.AuthSAS, [2]string{}, true, ""},
		{"chosen keys", `{"deviceId":"d1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"` + key + `","secondaryKey":null}}}`, auth.AuthSAS, [2]string{key, ""}, false, ""},
		{"thumbprint without type", `{"deviceId":"d1","authentication":{"x509Thumbprint":{"primaryThumbprint":"` + strings.Repeat("AB", 32) + `"}}}`, auth.AuthSelfSigned, [2]string{}, false, ""},
		{"CA", `{"deviceId":"d1","authentication":{"type":"certificateAuthority"}}`, auth.AuthCertificateAuthority, [2]string{}, false, ""},
		{"other id", `{"deviceId":"d2"}`, "", [2]string{}, false, "does not match"},
		{"none", `{"authentication":{"type":"none"}}`, "", [2]string{}, false, "none is not supported"},
		{"edge", `{"capabilities":{"iotEdge":true}}`, "", [2]string{}, false, "IoT Edge"},
		{"status", `{"status":"paused"}`, "", [2]string{}, false, "enabled or disabled"},
		{"keys on X.509", `{"authentication":{"type":"certificateAuthority","symmetricKey":{"primaryKey":"` + key + `"}}}`, "", [2]string{}, false, "no symmetric keys"},
		{"not JSON", `{"deviceId":`, "", [2]string{}, false, "not the JSON"},
		{"two values", `{} {}`, "", [2]string{}, false, "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseDevice([]byte(tt.body), "d1")
			var nd db.NewDevice
			var disabled bool
			if err == nil {
				nd, disabled, err = in.NewDeviceSpec()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				wantCode(t, err, 400, CodeArgumentInvalid)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if nd.DeviceID != "d1" || nd.Auth.Type != tt.wantType || [2]string{nd.PrimaryKey, nd.SecondaryKey} != tt.wantKeys || disabled != tt.disabled {
				t.Errorf("got %+v disabled %v", nd, disabled)
			}
		})
	}
}

func TestMatchETag(t *testing.T) {
	for _, tt := range []struct {
		ifMatch string
		want    bool
	}{{"*", true}, {`"*"`, true}, {`"abc="`, true}, {"abc=", true}, {`W/"abc="`, true}, {`"abd="`, false}, {"", false}} {
		if got := MatchETag(tt.ifMatch, "abc="); got != tt.want {
			t.Errorf("MatchETag(%q) = %v, want %v", tt.ifMatch, got, tt.want)
		}
	}
}

func TestTwinPatchAndReplace(t *testing.T) {
	in, err := ParseTwin([]byte(`{"etag":"*","tags":{"site":"north","old":null},"properties":{"desired":{"rate":5,"cfg":{"a":1},"$version":3,"$metadata":{}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	tags, changed, err := in.TagsAfter(map[string]string{"old": "x", "keep": "y"}, false)
	if err != nil || !changed || fmt.Sprint(tags) != "map[keep:y site:north]" {
		t.Errorf("patched tags = %v %v %v", tags, changed, err)
	}
	tags, _, _ = in.TagsAfter(map[string]string{"old": "x", "keep": "y"}, true)
	if fmt.Sprint(tags) != "map[site:north]" {
		t.Errorf("replaced tags = %v", tags)
	}
	cur := map[string]any{"rate": json.Number("1"), "gone": true, "cfg": map[string]any{"a": json.Number("1"), "b": json.Number("2")}}
	patch, err := in.DesiredPatch(cur, false)
	if err != nil || string(patch) != `{"cfg":{"a":1},"rate":5}` {
		t.Errorf("desired patch = %s, %v", patch, err)
	}
	patch, err = in.DesiredPatch(cur, true)
	if err != nil || string(patch) != `{"cfg":{"a":1,"b":null},"gone":null,"rate":5}` {
		t.Errorf("desired replacement = %s, %v", patch, err)
	}
	if _, _, err := (mustTwin(t, `{"tags":{"n":5}}`)).TagsAfter(nil, false); err == nil || !strings.Contains(err.Error(), "not a string") {
		t.Errorf("a number tag: %v", err)
	}
	if _, err := ParseTwin([]byte(`{"properties":{"reported":{"x":1}}}`)); err == nil {
		t.Error("reported properties from a service were accepted")
	}
	if _, err := ParseTwin([]byte(`{"properties":{"desired":[1]}}`)); err == nil {
		t.Error("an array as desired was accepted")
	}
	none := mustTwin(t, `{}`)
	if p, _ := none.DesiredPatch(cur, false); p != nil {
		t.Errorf("an empty patch changes desired: %s", p)
	}
	if _, changed, _ := none.TagsAfter(map[string]string{"a": "b"}, false); changed {
		t.Error("an empty patch changes tags")
	}
}

func mustTwin(t *testing.T, s string) TwinInput {
	t.Helper()
	in, err := ParseTwin([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestParseBulk(t *testing.T) {
	ops, err := ParseBulk([]byte(`[{"id":"a","importMode":"create"},{"id":"b","importMode":"UpdateIfMatchETag","eTag":"x"},{"id":"c","importMode":"Delete"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 3 || ops[0].Mode() != ModeCreate || ops[1].Mode() != ModeUpdateIfMatchETag || ops[2].Mode() != ModeDelete || ops[1].Device().ETag != "x" {
		t.Errorf("ops = %+v", ops)
	}
	var many strings.Builder
	many.WriteString("[")
	for i := range 10_000 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `{"id":"d%d","importMode":"create"}`, i)
	}
	many.WriteString("]")
	for name, tt := range map[string]struct {
		body string
		code string
	}{
		"10,000 devices": {many.String(), CodeTooManyDevices},
		"not an array":   {`{"id":"a"}`, CodeArgumentInvalid},
		"empty":          {`[]`, CodeArgumentInvalid},
		"no id":          {`[{"importMode":"create"}]`, CodeArgumentInvalid},
		"bad mode":       {`[{"id":"a","importMode":"upsert"}]`, CodeArgumentInvalid},
		"twice":          {`[{"id":"a","importMode":"create"},{"id":"a","importMode":"delete"}]`, CodeArgumentInvalid},
		"cut short":      {`[{"id":"a","importMode":"create"}`, CodeArgumentInvalid},
		"trailing":       {`[] []`, CodeArgumentInvalid},
	} {
		_, err := ParseBulk([]byte(tt.body))
		var se *Error
		if !errors.As(err, &se) || se.Code != tt.code || se.Status != 400 {
			t.Errorf("%s: err = %v, want 400 %s", name, err, tt.code)
		}
	}
}

func TestParseJob(t *testing.T) {
	spec, err := ParseJob([]byte(`{"jobId":"j1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":20},"queryCondition":"deviceId IN ['a']","startTime":"2026-01-02T03:04:05.000Z","maxExecutionTimeInSeconds":3600}`), "j1")
	if err != nil {
		t.Fatal(err)
	}
	if spec.ID != "j1" || spec.Type != db.JobMethod || spec.Method.Name != "reboot" || string(spec.Method.Payload) != `{"delay":1}` ||
		spec.Method.ResponseTimeoutInSeconds != 20 || spec.DeviceTimeout != 25*time.Second || spec.Query != "deviceId IN ['a']" ||
		!spec.StartAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("method job = %+v (%+v)", spec, spec.Method)
	}
	spec, err = ParseJob([]byte(`{"type":"scheduleUpdateTwin","updateTwin":{"etag":"*","properties":{"desired":{"rate":5,"$version":1}}},"queryCondition":"tags.site = 'north'","startTime":null}`), "j2")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Type != db.JobTwin || string(spec.Patch) != `{"rate":5}` || !spec.StartAt.IsZero() {
		t.Errorf("twin job = %+v", spec)
	}
	for name, body := range map[string]string{
		"other id":     `{"jobId":"x","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"a=1"}`,
		"no query":     `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"}}`,
		"no method":    `{"type":"scheduleDeviceMethod","queryCondition":"a=1"}`,
		"no name":      `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{},"queryCondition":"a=1"}`,
		"export":       `{"type":"export","queryCondition":"a=1"}`,
		"tags":         `{"type":"scheduleUpdateTwin","updateTwin":{"tags":{"a":"b"}},"queryCondition":"a=1"}`,
		"no desired":   `{"type":"scheduleUpdateTwin","updateTwin":{},"queryCondition":"a=1"}`,
		"bad start":    `{"type":"scheduleUpdateTwin","updateTwin":{"properties":{"desired":{"a":1}}},"queryCondition":"a=1","startTime":"tomorrow"}`,
		"long max":     `{"type":"scheduleUpdateTwin","updateTwin":{"properties":{"desired":{"a":1}}},"queryCondition":"a=1","maxExecutionTimeInSeconds":9999999}`,
		"huge timeout": `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":99999999999},"queryCondition":"a=1"}`,
	} {
		if _, err := ParseJob([]byte(body), "j1"); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			wantCode(t, err, 400, CodeArgumentInvalid)
		}
	}
}

func TestJobContinuation(t *testing.T) {
	for _, n := range []int{0, 1, 100, MaxJobOffset} {
		got, err := ParseJobContinuation(JobContinuation(n))
		if err != nil || got != n {
			t.Errorf("round trip of %d = %d, %v", n, got, err)
		}
	}
	for _, s := range []string{"x", JobContinuation(MaxJobOffset + 1), "am9iczotMQ", "am9iczowMQ", strings.Repeat("a", 100)} {
		if _, err := ParseJobContinuation(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestJobFilterAndPageSize(t *testing.T) {
	if typ, st, err := JobFilter("scheduleUpdateTwin", "Queued"); err != nil || typ != db.JobTwin || st != db.JobScheduled {
		t.Errorf("JobFilter = %q %q %v", typ, st, err)
	}
	if _, _, err := JobFilter("export", ""); err == nil {
		t.Error("jobType export accepted")
	}
	if _, _, err := JobFilter("", "paused"); err == nil {
		t.Error("jobStatus paused accepted")
	}
	for _, h := range []string{"0", "-1", "1001", "1000000", "ten"} {
		if _, err := PageSize(h); err == nil {
			t.Errorf("x-ms-max-item-count %q accepted", h)
		}
	}
	if n, err := PageSize(""); n != DefaultPageSize || err != nil {
		t.Errorf("PageSize(\"\") = %d, %v", n, err)
	}
}

func TestNewJobResponse(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	j := db.Job{ID: "j1", Type: db.JobMethod, Query: "a = 1", Status: db.JobRunning, Payload: json.RawMessage(`{"name":"reboot","payload":null,"responseTimeoutInSeconds":10}`),
		CreatedAt: at, StartAt: at, Total: 10, Succeeded: 4, Failed: 1, Cancelled: 1}
	r := NewJobResponse(j, 2)
	s := r.DeviceJobStatistics
	if r.Type != JobTypeMethod || r.Status != "running" || r.EndTime != nil || r.CloudToDeviceMethod.MethodName != "reboot" ||
		s.DeviceCount != 10 || s.SucceededCount != 4 || s.FailedCount != 2 || s.RunningCount != 2 || s.PendingCount != 2 {
		t.Errorf("response = %+v", r)
	}
	j.Status, j.FinishedAt, j.Type, j.Payload = db.JobCompleted, at.Add(time.Minute), db.JobTwin, json.RawMessage(`{"a":1}`)
	r = NewJobResponse(j, 0)
	if r.EndTime == nil || *r.EndTime != "2026-01-02T03:05:05Z" || r.UpdateTwin == nil || string(r.UpdateTwin.Properties.Desired) != `{"a":1}` || r.Type != JobTypeTwin {
		t.Errorf("finished twin job = %+v", r)
	}
}
