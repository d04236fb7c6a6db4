package sqlite

import (
	"testing"

	"fieldhub/telemetry"
)

// TestNextRun: plain rows get statements of their own only in runs of
// minPlainRun or more (or when nothing else is left); shorter runs ride in
// the full layout with their neighbours.
func TestNextRun(t *testing.T) {
	rows := func(pattern string) []telemetry.MessageRow {
		out := make([]telemetry.MessageRow, len(pattern))
		for i, c := range pattern {
			m := &telemetry.Message{AuthMethod: "sas-primary", ContentType: "application/json"}
			if c == 'F' {
				m.MessageID = "m"
			}
			out[i] = telemetry.MessageRow{Device: 1, Message: m}
		}
		return out
	}
	for _, tt := range []struct {
		pattern string
		layout  int
		n       int
	}{
		{"ppp", layoutPlain, 3},
		{"pppppppppF", layoutPlain, 9},
		{"pppF", layoutFull, 4},
		{"FpppF", layoutFull, 5},
		{"FFppppppppF", layoutFull, 2},
		{"FpppppppF", layoutFull, 9},
		{"FFF", layoutFull, 3},
	} {
		layout, n := nextRun(rows(tt.pattern))
		if layout != tt.layout || n != tt.n {
			t.Errorf("%s: layout %d, %d rows; want layout %d, %d rows", tt.pattern, layout, n, tt.layout, tt.n)
		}
	}
	long := make([]byte, 200)
	for i := range long {
		long[i] = 'p'
	}
	if layout, n := nextRun(rows(string(long))); layout != layoutPlain || n != insertChunk {
		t.Errorf("200 plain rows: layout %d, %d rows; want plain, %d", layout, n, insertChunk)
	}
}
