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
// It is a fixed table, one name per slot chosen by a seeded hash, a newer
// name replacing an older one in its slot: however many distinct names
// hostile devices send, it holds nameSlots of them at most, and what a flood
// of names costs others is an allocation again, no more. The nil *Names
// interns nothing. Safe for concurrent use.
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
	slot := &n.slots[maphash.Bytes(n.seed, name)&(nameSlots-1)]
	if s := slot.Load(); s != nil && *s == string(name) {
		return *s
	}
	s := string(name)
	slot.Store(&s)
	return s
}
