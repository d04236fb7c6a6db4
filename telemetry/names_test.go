package telemetry

import (
	"fmt"
	"testing"
	"unsafe"
)

func TestNamesShareStrings(t *testing.T) {
	names := NewNames()
	body := []byte(`{"temperature":21.5,"engine":{"rpm":900},"note":"x"}`)
	first := names.NewRecord(Message{Body: body}).Readings
	second := names.NewRecord(Message{Body: body}).Readings
	want := []Reading{{"temperature", 21.5}, {"engine.rpm", 900}}
	assertReadings(t, first, want)
	assertReadings(t, second, want)
	for i := range first {
		if unsafe.StringData(first[i].Metric) != unsafe.StringData(second[i].Metric) {
			t.Errorf("%q: the second message got a new copy of the name", first[i].Metric)
		}
	}
	// Without a table every message gets its own strings.
	a, b := NewRecord(Message{Body: body}).Readings, NewRecord(Message{Body: body}).Readings
	if unsafe.StringData(a[0].Metric) == unsafe.StringData(b[0].Metric) {
		t.Error("NewRecord without a table shared a name")
	}
}

// A flood of distinct names takes no more room than the table's slots and
// still yields the right names.
func TestNamesBounded(t *testing.T) {
	names := NewNames()
	for i := range 4 * nameSlots {
		name := fmt.Sprintf("m%d", i)
		rs := names.NewRecord(Message{Body: fmt.Appendf(nil, `{%q:1}`, name)}).Readings
		if len(rs) != 1 || rs[0].Metric != name {
			t.Fatalf("message %d: readings %v", i, rs)
		}
	}
	held := 0
	for i := range names.slots {
		if names.slots[i].Load() != nil {
			held++
		}
	}
	if held > nameSlots {
		t.Fatalf("%d names held, at most %d slots", held, nameSlots)
	}
	if held < nameSlots/2 {
		t.Errorf("only %d of %d slots used: the hash does not spread names", held, nameSlots)
	}
}

// A fleet's working set of names, well under the table's size, is kept:
// names that hash to the same slot have a second one.
func TestNamesKeepAWorkingSet(t *testing.T) {
	names := NewNames()
	const n = 500
	pass := func() []string {
		out := make([]string, n)
		for i := range out {
			out[i] = names.intern(fmt.Appendf(nil, "sensor%d.value", i))
		}
		return out
	}
	pass()
	second, third := pass(), pass()
	kept := 0
	for i := range second {
		if unsafe.StringData(second[i]) == unsafe.StringData(third[i]) {
			kept++
		}
	}
	if kept < n-10 {
		t.Errorf("%d of %d names kept between passes", kept, n)
	}
}
