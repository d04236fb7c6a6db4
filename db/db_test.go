package db_test

import (
	"strings"
	"testing"

	"fieldhub/db"
)

func TestValidateDeviceID(t *testing.T) {
	tests := []struct {
		id      string
		wantErr string
	}{
		{"dev-1", ""},
		{"a.b:c+d%e_f#g*h?i!j(k)l,m=n@o$p'q", ""},
		{strings.Repeat("x", 128), ""},
		{"", "empty"},
		{strings.Repeat("x", 129), "129 characters"},
		{"has space", `' ' at position 4`},
		{"slash/no", `'/' at position 6`},
		{"ümlaut", "position 1"},
		{".", `device id "." is not allowed`},
		{"..", `device id ".." is not allowed`},
		{"...", ""},
		{".a", ""},
	}
	for _, tt := range tests {
		err := db.ValidateDeviceID(tt.id)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("ValidateDeviceID(%q) = %v, want nil", tt.id, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ValidateDeviceID(%q) = %v, want error containing %q", tt.id, err, tt.wantErr)
		}
	}
}
