package bus

import (
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// AnnounceRule tells the other instances that the alert rule id was
// created, changed or deleted here (alerting.RuleAnnouncer), so that their
// evaluators reload it. Best-effort, like live events: a lost announcement
// is caught up by the evaluators' periodic reload. One instance: nothing.
func (b *Bus) AnnounceRule(id int64) {
	if b.nc == nil {
		return
	}
	msg := &nats.Msg{Subject: subjectRules, Data: strconv.AppendInt(nil, id, 10), Header: nats.Header{headerNode: []string{b.node}}}
	if err := b.nc.PublishMsg(msg); err != nil {
		b.log.Warn("alert rule change not announced to other instances; they reload their rules periodically", "rule", id, "err", err)
	}
}

// OnRules calls changed with the id of each alert rule another instance
// announces (AnnounceRule), on the bus's goroutine: changed must not
// block. One instance: nothing to hear.
func (b *Bus) OnRules(changed func(id int64)) error {
	if b.nc == nil {
		return nil
	}
	return b.subscribe(subjectRules, func(m *nats.Msg) {
		if m.Header.Get(headerNode) == b.node || b.tooBig(m) {
			return
		}
		id, err := strconv.ParseInt(string(m.Data), 10, 64)
		if err != nil || id <= 0 {
			b.peerError(fmt.Errorf("alert rule announcement %.20q is not a rule id", m.Data))
			return
		}
		changed(id)
	})
}
