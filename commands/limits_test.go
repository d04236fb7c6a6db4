package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"fieldhub/commands"
	"fieldhub/db"
	"fieldhub/internal/testkit"
	"fieldhub/storage"
)

// TestCheckMethodName: the one rule for method names, and the pattern the
// page's form carries, agree on every name of the shared table.
func TestCheckMethodName(t *testing.T) {
	pattern := regexp.MustCompile(`^(?:` + commands.MethodNamePattern + `)$`)
	for _, tt := range testkit.MethodNames {
		err := commands.CheckMethodName(tt.Name)
		var inv *commands.InvalidMethodError
		if (err == nil) != tt.OK || (err != nil && !errors.As(err, &inv)) {
			t.Errorf("CheckMethodName(%q) = %v, want ok=%v (an InvalidMethodError otherwise)", tt.Name, err, tt.OK)
		}
		if pattern.MatchString(tt.Name) != tt.OK {
			t.Errorf("pattern %s matches %q: %v, want %v", commands.MethodNamePattern, tt.Name, !tt.OK, tt.OK)
		}
	}
}

// TestCloudMessageLimits: a message beyond a limit is refused with the
// field it broke, before anything is queued or audited.
func TestCloudMessageLimits(t *testing.T) {
	ctx := context.Background()
	d, _, _ := setup(t)
	q := commands.NewCloudQueue(commands.CloudQueueConfig{Store: d, Now: d.Now})
	props := map[string]string{}
	for i := range commands.MaxCloudProperties + 1 {
		props[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = "v"
	}
	tests := []struct {
		name  string
		m     commands.Message
		field string
	}{
		{"body too large", commands.Message{Body: make([]byte, commands.MaxCloudBody+1)}, "body"},
		{"ttl too short", commands.Message{TTL: commands.MinCloudTTL - time.Second}, "ttlSeconds"},
		{"ttl too long", commands.Message{TTL: commands.MaxCloudTTL + time.Second}, "ttlSeconds"},
		{"property name with space", commands.Message{Properties: map[string]string{"a b": "v"}}, "properties"},
		{"property value with newline", commands.Message{Properties: map[string]string{"a": "v\nx"}}, "properties"},
		{"too many properties", commands.Message{Properties: props}, "properties"},
		{"properties too large", commands.Message{Properties: map[string]string{"a": strings.Repeat("v", commands.MaxCloudPropertiesSize)}}, "properties"},
		{"message id too long", commands.Message{MessageID: strings.Repeat("x", commands.MaxCloudID+1)}, "messageId"},
		{"correlation id with a control character", commands.Message{CorrelationID: "a\x00"}, "correlationId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := q.Send(ctx, "cli", "dev1", tt.m)
			var inv *storage.InvalidError
			if !errors.As(err, &inv) || inv.Field != tt.field {
				t.Errorf("error = %v, want an InvalidError on %q", err, tt.field)
			}
		})
	}
	if msgs, _ := q.History(ctx, "dev1", 0); len(msgs) != 0 {
		t.Errorf("refused messages queued: %d", len(msgs))
	}
	if entries, _ := d.AuditEntries(ctx, db.AuditFilter{}); len(entries) != 0 {
		t.Errorf("refused messages audited: %+v", entries)
	}
	m, err := q.Send(ctx, "cli", "dev1", commands.Message{Body: make([]byte, commands.MaxCloudBody)})
	if err != nil || m.MessageID == "" || m.TTL() != commands.DefaultCloudTTL || m.MaxDeliveryCount != commands.DefaultMaxDeliveryCount {
		t.Errorf("at the limits with defaults: %+v, %v", m, err)
	}
}

// TestTwinSectionLimit: the limit applies to the merged section, not only
// to the patch.
func TestTwinSectionLimit(t *testing.T) {
	ctx := context.Background()
	d, _, _ := setup(t)
	tw := commands.NewTwins(commands.TwinsConfig{Store: d})
	big := strings.Repeat("x", commands.MaxTwinSection*5/8)
	if _, err := tw.PatchReported(ctx, "dev1", json.RawMessage(`{"a":"`+big+`"}`)); err != nil {
		t.Fatalf("first patch: %v", err)
	}
	_, err := tw.PatchReported(ctx, "dev1", json.RawMessage(`{"b":"`+big+`"}`))
	var inv *storage.InvalidError
	if !errors.As(err, &inv) || inv.Field != db.TwinReported {
		t.Errorf("section past %d bytes: %v, want an InvalidError on reported", commands.MaxTwinSection, err)
	}
}

func TestParseTwinPatch(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"object", `{"a":1}`, true},
		{"version dropped", `{"$version":4,"a":1}`, true},
		{"array", `[1]`, false},
		{"string", `"x"`, false},
		{"reserved name", `{"$x":1}`, false},
		{"nested reserved name", `{"a":{"$x":1}}`, false},
		{"empty name", `{"":1}`, false},
		{"two values", `{} {}`, false},
		{"too deep", strings.Repeat(`{"a":`, 11) + `1` + strings.Repeat(`}`, 11), false},
		{"deep enough", strings.Repeat(`{"a":`, 10) + `1` + strings.Repeat(`}`, 10), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := commands.ParseTwinPatch([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseTwinPatch(%s) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err == nil {
				if _, has := p["$version"]; has {
					t.Error("$version kept in the patch")
				}
			}
		})
	}
}

func FuzzParseTwinPatch(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":null}}`, `[]`, `{"$version":1}`, `{"a":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := commands.ParseTwinPatch(b)
		if err != nil {
			return
		}
		// A valid patch merges into an empty document and the result encodes.
		if _, err := json.Marshal(db.MergePatch(map[string]any{}, p)); err != nil {
			t.Fatalf("merged patch does not encode: %v", err)
		}
	})
}
