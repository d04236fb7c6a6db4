package ingest

import "time"

// minIndexStepRows is the smallest step the pace sizes (or IndexStepRows,
// if smaller): below about a thousand rows a step's fixed part (its commit)
// dominates and the WAL it writes per message grows fast (bench/README.md,
// issue 10, eighth round), and on a machine too slow for the budget the index
// must still keep up with the log.
const minIndexStepRows = 1000

// indexPace sizes the message index's steps so that each holds the writer
// about IndexStepTime: every message that arrives during a step waits for it,
// so the longest step is what the acknowledgement tail sees. The bound
// follows the time per row the steps take on this machine, growing at most
// twofold and shrinking at most by half a step so that one step slowed by
// something else (the disk, the collector) does not swing it.
type indexPace struct {
	rows     int // the next step's bound
	min, max int
	budget   time.Duration
}

// newIndexPace starts at the smallest step: a backlog at start-up (after a
// restart, or a rate that rose) is then taken in steps that grow to the
// budget rather than one that holds the writer for the whole bound.
func newIndexPace(maxRows int, budget time.Duration) indexPace {
	lo := min(minIndexStepRows, maxRows)
	return indexPace{rows: lo, min: lo, max: maxRows, budget: budget}
}

// observe adjusts the bound after a step that indexed n rows in took.
func (p *indexPace) observe(n int, took time.Duration) {
	if n <= 0 {
		return
	}
	if n < p.rows && took <= p.budget {
		// Caught up within the budget: nothing learned about a fuller
		// step (a small step's fixed part makes its rows look dear).
		return
	}
	fit := p.max
	if took > 0 {
		fit = int(min(float64(n)*float64(p.budget)/float64(took), float64(p.max)))
	}
	p.rows = max(p.min, min(p.max, max(p.rows/2, min(2*p.rows, fit))))
}
