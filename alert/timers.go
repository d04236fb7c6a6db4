package alert

import (
	"container/heap"
	"time"
)

// advance moves time to now (never back) and fires the timers due.
func (e *Evaluator) advance(now time.Time, out *[]Transition) {
	if now = now.Round(0); now.After(e.now) {
		e.now = now
	}
	e.fire(out)
}

func (e *Evaluator) fire(out *[]Transition) {
	for len(e.timers) > 0 && !e.timers[0].at.After(e.now) {
		tr := heap.Pop(&e.timers).(*track)
		switch tr.rule.Condition.Kind {
		case Silence:
			d := tr.dev
			due := d.lastSeen.Add(seconds(tr.rule.Condition.Seconds))
			if due.After(tr.at) { // it spoke since the timer was set; due may still be past, and fires in its turn
				e.schedule(tr, due)
				continue
			}
			tr.num = float64(tr.rule.Condition.Seconds)
			e.raise(tr, due, tr.num, nil, out)
		case Threshold:
			at := tr.at
			tr.pending, tr.num = false, tr.pendingNum
			if tr.open {
				e.repeat(tr, at, tr.num, nil, out)
			} else {
				e.raise(tr, at, tr.num, nil, out)
			}
		}
	}
}

// signal wakes the caller's timer loop when the next deadline moved earlier
// than the one it sleeps towards.
func (e *Evaluator) signal() {
	if len(e.timers) == 0 || e.announcedOK && !e.timers[0].at.Before(e.announced) {
		return
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Evaluator) schedule(tr *track, at time.Time) {
	tr.at = at
	if tr.index >= 0 {
		heap.Fix(&e.timers, tr.index)
		return
	}
	heap.Push(&e.timers, tr)
}

func (e *Evaluator) unschedule(tr *track) {
	if tr.index >= 0 {
		heap.Remove(&e.timers, tr.index)
	}
}

// timerHeap orders tracks by deadline, then rule and device, so that
// transitions due at the same time come out in a stable order.
type timerHeap []*track

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	if a.rule.ID != b.rule.ID {
		return a.rule.ID < b.rule.ID
	}
	return a.dev.id < b.dev.id
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	tr := x.(*track)
	tr.index = len(*h)
	*h = append(*h, tr)
}
func (h *timerHeap) Pop() any {
	old := *h
	tr := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	tr.index = -1
	return tr
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }
