package telemetry

import (
	"hash/maphash"
	"sync/atomic"
)

// nameSlots is the size of a Names table: a power of two, large enough that
// a fleet's few hundred distinct metric names rarely share a slot (32 KB of
// pointers, and at most nameSlots × MaxMetricName bytes of names held).
const nameSlots = 4096

// Names remembers recently seen metric names so that a message naming the
// same metrics as earlier ones gets the same strings instead of new copies:
// devices send the same keys message after message, and those strings were
// most of what flattening a body allocated (ten a message for ten fields).
// Shared strings also compare at the cost of a pointer check where the
// writer matches a device's metrics against its last message's.
//
// It is a fixed table, a name kept in one of two slots chosen by a seeded
// hash (two, so that the few names of a fleet that hash alike do not take
// turns in one slot), a newer name replacing an older one when both are
// taken: however many distinct names hostile devices send, it holds
// nameSlots of them at most, and what a flood of names costs others is an
// allocation again, no more. The nil *Names interns nothing. Safe for
// concurrent use.
type Names struct {
	seed  maphash.Seed
	slots [nameSlots]atomic.Pointer[string]
}

// NewNames returns an empty table.
func NewNames() *Names {
	return &Names{seed: maphash.MakeSeed()}
}

// intern returns name as a string, the table's copy when it holds one.
func (n *Names) intern(name []byte) string {
	if n == nil {
		return string(name)
	}
	h := maphash.Bytes(n.seed, name)
	a, b := &n.slots[h&(nameSlots-1)], &n.slots[(h>>32)&(nameSlots-1)]
	pa := a.Load()
	if pa != nil && *pa == string(name) {
		return *pa
	}
	pb := b.Load()
	if pb != nil && *pb == string(name) {
		return *pb
	}
	s := string(name)
	if pa == nil || (pb != nil && h&(1<<31) != 0) {
		a.Store(&s)
	} else {
		b.Store(&s)
	}
	return s
}
