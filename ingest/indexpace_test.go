package ingest

import (
	"testing"
	"time"
)

// The pace's bound after a sequence of steps, each a number of rows indexed
// and the time it took (the budget is 10ms, the bound at most 20,000 rows).
func TestIndexPace(t *testing.T) {
	type step struct {
		n    int
		took time.Duration
	}
	ms := time.Millisecond
	ramp := []step{{1000, ms}, {2000, 2 * ms}, {4000, 4 * ms}} // 1µs a row: bound 8,000
	for _, tc := range []struct {
		name  string
		max   int
		steps []step
		want  int
	}{
		{"starts at the smallest step", 20000, nil, 1000},
		{"smallest step at most the bound", 7, nil, 7},
		{"grows at most twofold a step", 20000, ramp[:1], 2000},
		{"grows to what fits the budget", 20000, append(ramp, step{8000, 8 * ms}), 10000},
		{"never past the bound", 20000, []step{{1000, 0}, {2000, 0}, {4000, 0}, {8000, 0}, {16000, 0}, {20000, ms}}, 20000},
		{"settles where the fastest step's rows fit the budget", 20000, []step{{1000, 2 * ms}, {2000, 4 * ms}, {4000, 8 * ms}, {5000, 20 * ms}}, 5000},
		{"slow steps on a loaded machine do not shrink it", 20000, append(ramp, step{8000, 80 * ms}, step{8000, 80 * ms}), 10000},
		{"a slow machine forgets the fastest step after 16 steps", 20000, append(ramp,
			step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms},
			step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms},
			step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms}, step{4000, 40 * ms},
			step{4000, 40 * ms}), 1000},
		{"never under the smallest step", 20000, []step{{1000, 100 * ms}, {1000, 100 * ms}}, 1000},
		{"a caught-up step within the budget says nothing", 20000, append(ramp[:2], step{300, 9 * ms}), 4000},
		{"an empty step says nothing", 20000, []step{{1000, ms}, {0, 5 * ms}}, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newIndexPace(tc.max, 10*ms)
			for _, s := range tc.steps {
				p.observe(s.n, s.took)
			}
			if p.rows != tc.want {
				t.Errorf("bound %d rows, want %d", p.rows, tc.want)
			}
		})
	}
}
