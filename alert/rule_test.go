package alert

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// issueBody is the rule body of issue 12, byte for byte.
const issueBody = `{"name":"Too warm","severity":"major","scope":{"tags":{"site":"berlin"}},"condition":{"kind":"threshold","metric":"temperature","op":">","value":30,"forSeconds":0}}`

func TestDecodeIssueRule(t *testing.T) {
	r, err := DecodeRule([]byte(issueBody))
	if err != nil {
		t.Fatal(err)
	}
	want := Rule{Name: "Too warm", Severity: Major, Enabled: true, Scope: Scope{Tags: map[string]string{"site": "berlin"}},
		Condition: Condition{Kind: Threshold, Metric: "temperature", Op: Greater, Value: 30}}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("decoded %+v, want %+v", r, want)
	}
	b := encode(t, r)
	// The same body, with the enabled flag an answer always carries.
	wantJSON := strings.Replace(issueBody, `"severity":"major",`, `"severity":"major","enabled":true,`, 1)
	if string(b) != wantJSON {
		t.Fatalf("encoded\n %s\nwant\n %s", b, wantJSON)
	}
}

// encode writes JSON as the API does, but without escaping < > & as
// \u003c…, which encoding/json does by default and which means the same.
func encode(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func TestRuleJSONForms(t *testing.T) {
	tests := []struct {
		name, in, out string
	}{
		{"device scope, silence", `{"id":7,"name":"Pump offline","severity":"critical","enabled":false,"scope":{"deviceId":"pump-1"},"condition":{"kind":"silence","seconds":300}}`,
			`{"id":7,"name":"Pump offline","severity":"critical","enabled":false,"scope":{"deviceId":"pump-1"},"condition":{"kind":"silence","seconds":300}}`},
		{"fleet, changed property", `{"name":"Firmware","severity":"info","scope":{"fleet":true},"condition":{"kind":"changed","property":"properties.reported.firmware"}}`,
			`{"name":"Firmware","severity":"info","enabled":true,"scope":{"fleet":true},"condition":{"kind":"changed","property":"properties.reported.firmware"}}`},
		{"changed metric", `{"name":"Mode","severity":"warning","scope":{"fleet":true},"condition":{"kind":"changed","metric":"mode"}}`,
			`{"name":"Mode","severity":"warning","enabled":true,"scope":{"fleet":true},"condition":{"kind":"changed","metric":"mode"}}`},
		{"hysteresis", `{"name":"Hot","severity":"minor","scope":{"fleet":true},"condition":{"kind":"threshold","metric":"t","op":">=","value":-1.5,"forSeconds":120,"hysteresis":0.5}}`,
			`{"name":"Hot","severity":"minor","enabled":true,"scope":{"fleet":true},"condition":{"kind":"threshold","metric":"t","op":">=","value":-1.5,"forSeconds":120,"hysteresis":0.5}}`},
		{"clear condition, forSeconds omitted", `{"name":"Low","severity":"warning","scope":{"fleet":true},"condition":{"kind":"threshold","metric":"b","op":"<","value":10,"clear":{"op":">=","value":20}}}`,
			`{"name":"Low","severity":"warning","enabled":true,"scope":{"fleet":true},"condition":{"kind":"threshold","metric":"b","op":"<","value":10,"forSeconds":0,"clear":{"op":">=","value":20}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRule([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			b := encode(t, r)
			if string(b) != tt.out {
				t.Fatalf("encoded\n %s\nwant\n %s", b, tt.out)
			}
		})
	}
}

func TestDecodeRuleErrors(t *testing.T) {
	long := strings.Repeat("x", 129)
	body := func(scope, cond string) string {
		return `{"name":"n","severity":"major","scope":` + scope + `,"condition":` + cond + `}`
	}
	fleet := `{"fleet":true}`
	temp := func(rest string) string {
		return body(fleet, `{"kind":"threshold","metric":"temp","op":">","value":30`+rest+`}`)
	}
	tests := []struct {
		name, in, field, reason string // field "" means a syntax error
	}{
		{"not JSON", `{"name":`, "", ""},
		{"trailing data", issueBody + `{}`, "", ""},
		{"unknown field", `{"name":"n","severity":"major","colour":"red","scope":{"fleet":true},"condition":{"kind":"silence","seconds":5}}`, "colour", "is not a field of a rule"},
		{"name missing", `{"severity":"major","scope":{"fleet":true},"condition":{"kind":"silence","seconds":5}}`, "name", "is required"},
		{"name blank", `{"name":"  ","severity":"major","scope":{"fleet":true},"condition":{"kind":"silence","seconds":5}}`, "name", "is required"},
		{"name long", `{"name":"` + long + `","severity":"major","scope":{"fleet":true},"condition":{"kind":"silence","seconds":5}}`, "name", "is 129 characters; at most 128"},
		{"name control", `{"name":"a\u0007","severity":"major","scope":{"fleet":true},"condition":{"kind":"silence","seconds":5}}`, "name", "must not contain control characters"},
		{"name number", `{"name":5,"severity":"major","scope":{"fleet":true},"condition":{"kind":"silence","seconds":5}}`, "name", "must be a JSON string, got number"},
		{"severity", `{"name":"n","severity":"fatal","scope":{"fleet":true},"condition":{"kind":"silence","seconds":5}}`, "severity", `"fatal" is not a severity; use critical, major, minor, warning or info`},
		{"scope missing", `{"name":"n","severity":"major","condition":{"kind":"silence","seconds":5}}`, "scope", "is required: give deviceId, tags or fleet"},
		{"scope empty", body(`{}`, `{"kind":"silence","seconds":5}`), "scope", "give one of deviceId, tags or fleet"},
		{"scope two", body(`{"fleet":true,"deviceId":"a"}`, `{"kind":"silence","seconds":5}`), "scope", "give only one of deviceId, tags or fleet"},
		{"scope no tags", body(`{"tags":{}}`, `{"kind":"silence","seconds":5}`), "scope.tags", "give at least one tag; use fleet for every device"},
		{"scope bad device", body(`{"deviceId":"a/b"}`, `{"kind":"silence","seconds":5}`), "scope.deviceId", `contains '/' at position 2; allowed are ASCII letters, digits and - . : + % _ # * ? ! ( ) , = @ $ '`},
		{"scope long device", body(`{"deviceId":"`+long+`"}`, `{"kind":"silence","seconds":5}`), "scope.deviceId", "is 129 bytes; at most 128"},
		{"scope tag name", body(`{"tags":{"a=b":"c"}}`, `{"kind":"silence","seconds":5}`), "scope.tags", `tag name "a=b" must not contain '=', ',' or control characters`},
		{"scope tag value", body(`{"tags":{"a":"`+strings.Repeat("v", 513)+`"}}`, `{"kind":"silence","seconds":5}`), "scope.tags", `value of tag "a" is 513 bytes; at most 512`},
		{"condition missing", `{"name":"n","severity":"major","scope":{"fleet":true}}`, "condition", "is required"},
		{"kind missing", body(fleet, `{"metric":"t"}`), "condition.kind", "is required: threshold, silence or changed"},
		{"kind unknown", body(fleet, `{"kind":"average"}`), "condition.kind", `"average" is not a kind; use threshold, silence or changed`},
		{"field of another kind", body(fleet, `{"kind":"silence","seconds":5,"metric":"t"}`), "condition.metric", "is not used by silence conditions"},
		{"unknown condition field", body(fleet, `{"kind":"silence","seconds":5,"for":1}`), "condition.for", "is not a field of a rule"},
		{"op missing", body(fleet, `{"kind":"threshold","metric":"t","value":1}`), "condition.op", "is required: one of > >= < <= == !="},
		{"op unknown", temp(`,"op":"=>"`), "", ""}, // duplicate key "op": the last wins, then it is checked below
		{"op bad", body(fleet, `{"kind":"threshold","metric":"t","op":"=>","value":1}`), "condition.op", `"=>" is not a comparison; use one of > >= < <= == !=`},
		{"value missing", body(fleet, `{"kind":"threshold","metric":"t","op":">"}`), "condition.value", "is required"},
		{"value string", body(fleet, `{"kind":"threshold","metric":"t","op":">","value":"30"}`), "condition.value", `must be a JSON number, got string`},
		{"value huge", temp(`0e400`), "condition.value", "must be a finite number, got 300e400"},
		{"metric missing", body(fleet, `{"kind":"threshold","op":">","value":1}`), "condition.metric", "is required"},
		{"metric long", body(fleet, `{"kind":"threshold","metric":"`+strings.Repeat("m", 257)+`","op":">","value":1}`), "condition.metric", "is 257 bytes; at most 256"},
		{"metric empty segment", body(fleet, `{"kind":"threshold","metric":"a..b","op":">","value":1}`), "condition.metric", `"a..b" has an empty name between dots`},
		{"forSeconds negative", temp(`,"forSeconds":-1`), "condition.forSeconds", "must be a whole number from 0 to 604800 (7 days), got -1"},
		{"forSeconds fraction", temp(`,"forSeconds":1.5`), "condition.forSeconds", "must be a whole number from 0 to 604800 (7 days), got 1.5"},
		{"forSeconds long", temp(`,"forSeconds":604801`), "condition.forSeconds", "must be a whole number from 0 to 604800 (7 days), got 604801"},
		{"hysteresis negative", temp(`,"hysteresis":-1`), "condition.hysteresis", "must be a finite number, 0 or more"},
		{"hysteresis on ==", body(fleet, `{"kind":"threshold","metric":"t","op":"==","value":1,"hysteresis":1}`), "condition.hysteresis", "applies only to > >= < <=, not =="},
		{"hysteresis and clear", temp(`,"hysteresis":1,"clear":{"op":"<","value":1}`), "condition.hysteresis", "give hysteresis or a clear condition, not both"},
		{"clear overlaps", temp(`,"clear":{"op":"<","value":40}`), "condition.clear", "temp < 40 overlaps the raising condition temp > 30 (both hold for 35)"},
		{"clear overlaps !=", temp(`,"clear":{"op":"!=","value":40}`), "condition.clear", "temp != 40 overlaps the raising condition temp > 30 (both hold for 35)"},
		{"clear op missing", temp(`,"clear":{"value":1}`), "condition.clear.op", "is required: one of > >= < <= == !="},
		{"silence seconds missing", body(fleet, `{"kind":"silence"}`), "condition.seconds", "is required"},
		{"silence zero", body(fleet, `{"kind":"silence","seconds":0}`), "condition.seconds", "must be a whole number from 1 to 2592000 (30 days), got 0"},
		{"changed nothing", body(fleet, `{"kind":"changed"}`), "condition.metric", "give a metric or a property"},
		{"changed both", body(fleet, `{"kind":"changed","metric":"a","property":"b"}`), "condition.property", "give a metric or a property, not both"},
		{"property metadata", body(fleet, `{"kind":"changed","property":"properties.reported.$version"}`), "condition.property", `"properties.reported.$version": names starting with $ are twin metadata, not properties`},
		{"property empty name", body(fleet, `{"kind":"changed","property":"a."}`), "condition.property", `"a." has an empty name between dots`},
		{"property deep", body(fleet, `{"kind":"changed","property":"`+strings.Repeat("a.", 16)+`a"}`), "condition.property", "has 17 names; at most 16"},
		{"too big", `{"name":"` + strings.Repeat(" ", MaxRuleJSON) + `"}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "op unknown" {
				return // documents JSON's duplicate-key rule; covered by "op bad"
			}
			_, err := DecodeRule([]byte(tt.in))
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *FieldError
			if tt.field == "" {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("error %v, want a syntax error", err)
				}
				return
			}
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			if fe.Field != tt.field || fe.Reason != tt.reason {
				t.Fatalf("error %q / %q, want %q / %q", fe.Field, fe.Reason, tt.field, tt.reason)
			}
		})
	}
}

func TestValidateSetFieldsOfAnotherKind(t *testing.T) {
	r := silenceRule(1, 60)
	r.Condition.ForSeconds = 5
	var fe *FieldError
	if err := r.Validate(); !errors.As(err, &fe) || fe.Field != "condition.forSeconds" {
		t.Fatalf("Validate = %v, want condition.forSeconds refused", err)
	}
}

func TestParseTags(t *testing.T) {
	tests := []struct {
		in     string
		want   map[string]string
		reason string
	}{
		{"site=berlin,kind=climate", map[string]string{"site": "berlin", "kind": "climate"}, ""},
		{" site = berlin , kind=climate ,", map[string]string{"site": "berlin", "kind": "climate"}, ""},
		{"site=", map[string]string{"site": ""}, ""},
		{"a=b=c", map[string]string{"a": "b=c"}, ""},
		{"", nil, "no tags given; write name=value[,name=value]…"},
		{" , ", nil, "no tags given; write name=value[,name=value]…"},
		{"site=berlin,kind", nil, `"kind" (item 2) is not name=value`},
		{"=berlin", nil, "a tag name is empty"},
		{"site=a,site=b", nil, `tag "site" is given twice`},
		{"site=a\x01", nil, `value of tag "site" must not contain ',' or control characters`},
		{strings.Repeat("k", 129) + "=v", nil, `tag name "kkkkkkkkkkkkkkkkkkkk"… is 129 bytes; at most 128`},
		{strings.TrimSuffix(strings.Repeat("k=v,", 0), ",") + manyTags(33), nil, "more than 32 tags"},
	}
	for _, tt := range tests {
		got, err := ParseTags(tt.in)
		if tt.reason != "" {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "scope.tags" || fe.Reason != tt.reason {
				t.Errorf("ParseTags(%q) error = %v, want scope.tags: %s", tt.in, err, tt.reason)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTags(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if s := FormatTags(map[string]string{"site": "berlin", "kind": "climate"}); s != "kind=climate, site=berlin" {
		t.Errorf("FormatTags = %q", s)
	}
}

func manyTags(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "k" + strings.Repeat("x", i) + "=v"
	}
	return strings.Join(parts, ",")
}

func TestSeverityOrder(t *testing.T) {
	s := Severities()
	for i := 1; i < len(s); i++ {
		if !s[i-1].Worse(s[i]) || s[i].Worse(s[i-1]) {
			t.Errorf("%s should be worse than %s", s[i-1], s[i])
		}
	}
	if Severity("fatal").Valid() || Severity("").Worse(Info) {
		t.Error("unknown severity treated as valid")
	}
}

func TestConditionString(t *testing.T) {
	tests := map[string]Condition{
		"temperature > 30 for 120s": {Kind: Threshold, Metric: "temperature", Op: Greater, Value: 30, ForSeconds: 120},
		"b <= 0.5":                  {Kind: Threshold, Metric: "b", Op: LessEqual, Value: 0.5},
		"silent for 300s":           {Kind: Silence, Seconds: 300},
		"firmware changed":          {Kind: Changed, Property: "firmware"},
		"mode changed":              {Kind: Changed, Metric: "mode"},
	}
	for want, c := range tests {
		if got := c.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// FuzzDecodeRule: any input either fails with a FieldError or a syntax
// error, or gives a valid rule that encodes to JSON decoding to the same
// rule.
func FuzzDecodeRule(f *testing.F) {
	f.Add([]byte(issueBody))
	f.Add([]byte(`{"id":7,"name":"Pump offline","severity":"critical","enabled":false,"scope":{"deviceId":"pump-1"},"condition":{"kind":"silence","seconds":300}}`))
	f.Add([]byte(`{"name":"F","severity":"info","scope":{"fleet":true},"condition":{"kind":"changed","property":"properties.reported.firmware"}}`))
	f.Add([]byte(`{"name":"Low","severity":"warning","scope":{"tags":{"a":"b","c":""}},"condition":{"kind":"threshold","metric":"b","op":"<","value":10,"clear":{"op":">=","value":20}}}`))
	f.Add([]byte(`{"name":"H","severity":"minor","scope":{"fleet":true},"condition":{"kind":"threshold","metric":"t","op":">=","value":-1e300,"forSeconds":604800,"hysteresis":1e300}}`))
	f.Add([]byte(`{"name":"x","severity":"major","scope":{"fleet":true},"condition":{"kind":"changed","metric":"m","clear":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRule(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) && !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v is neither a FieldError nor a syntax error", err)
			}
			if fe != nil && (fe.Field == "" || fe.Reason == "") {
				t.Fatalf("FieldError without field or reason: %#v", fe)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded rule does not validate: %v", err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := DecodeRule(b)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b, err)
		}
		if !reflect.DeepEqual(r, again) {
			t.Fatalf("round trip changed the rule:\n %+v\n %+v", r, again)
		}
		if r.ID > 0 { // every valid rule can be evaluated
			if _, err := New(Options{}).SetRule(r, t0); err != nil {
				t.Fatalf("SetRule of a valid rule: %v", err)
			}
		}
	})
}

// FuzzParseTags: parsed tags are valid and survive FormatTags.
func FuzzParseTags(f *testing.F) {
	for _, s := range []string{"site=berlin,kind=climate", " a = b ,", "a=b=c", "=x", "a=1,a=2", "é=ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags, err := ParseTags(s)
		if err != nil {
			return
		}
		if err := validateScopeTags(tags); err != nil {
			t.Fatalf("ParseTags(%q) gave invalid tags: %v", s, err)
		}
		again, err := ParseTags(FormatTags(tags))
		if err != nil || !reflect.DeepEqual(tags, again) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}
