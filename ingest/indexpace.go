package ingest

import "time"

// minIndexStepRows is the smallest step the pace sizes (or IndexStepRows,
// if smaller): below a few thousand rows a step's fixed part (its commit)
// dominates and the WAL it writes per message grows fast (bench/README.md,
// issue 10, eighth round), and the index must keep up with the log.
const minIndexStepRows = 1000

// indexPace sizes the message index's steps so that each holds the writer
// about IndexStepTime: every message that arrives during a step waits for it,
// so the longest step is what the acknowledgement tail sees.
//
// The bound follows the fastest time per row of the last steps, not the
// latest: on a loaded machine a step also waits for a core and the disk,
// which fewer rows do not shorten (a 1,000-row step then takes as long as a
// 5,000-row one) while they multiply the WAL written per message. What a
// step's rows cost is what the fastest recent step shows; the rest is the
// machine's, and every commit waits for it alike.
type indexPace struct {
	rows     int // the next step's bound
	min, max int
	budget   time.Duration
	perRow   [16]time.Duration // of the last steps observed; 0: none yet
	next     int               // where the next observation goes in perRow
}

// newIndexPace starts at the smallest step: a backlog at start-up (after a
// restart, or a rate that rose) is then taken in steps that grow to the
// budget rather than one that holds the writer for the whole bound.
func newIndexPace(maxRows int, budget time.Duration) indexPace {
	lo := min(minIndexStepRows, maxRows)
	return indexPace{rows: lo, min: lo, max: maxRows, budget: budget}
}

// observe adjusts the bound after a step that indexed n rows in took. The
// bound grows at most twofold a step.
func (p *indexPace) observe(n int, took time.Duration) {
	if n <= 0 || n < p.rows && took <= p.budget {
		// Caught up within the budget: nothing learned about a fuller
		// step (a small step's fixed part makes its rows look dear).
		return
	}
	p.perRow[p.next] = max(took/time.Duration(n), 1)
	p.next = (p.next + 1) % len(p.perRow)
	var fastest time.Duration
	for _, d := range p.perRow {
		if d > 0 && (fastest == 0 || d < fastest) {
			fastest = d
		}
	}
	fit := int(min(int64(p.budget/fastest), int64(p.max)))
	p.rows = max(p.min, min(p.max, 2*p.rows, fit))
}
