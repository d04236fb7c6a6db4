// Package alert is Fieldhub's alerting core: rules, their evaluation over
// the stream of committed messages, the lifecycle of the alerts they raise,
// and signed webhook payloads. It holds no database and serves no HTTP; the
// caller stores rules and alerts, feeds events and delivers webhooks.
//
// # Rules
//
// A Rule watches a Scope (one device, the devices carrying all of some tags,
// or the fleet) for a Condition:
//
//   - threshold: a metric compared with a value (> >= < <= == !=), raised
//     when the comparison has held for ForSeconds (0: at once, on the
//     reading). It clears when the comparison no longer holds, or, with
//     Hysteresis, only past the value moved back by it ("> 30" with
//     hysteresis 2 clears at 28 or below), or when a custom Clear
//     comparison holds (which must not overlap the raising one).
//   - silence: no message from the device for Seconds. Measured from the
//     device's last message (or reported-property update); a device never
//     heard from has not gone silent and is not watched. Cleared by the
//     next message.
//   - changed: a metric, or a reported property ("firmware",
//     "modem.version", or "properties.reported.firmware"), takes a value
//     different from the previous one. The first value seen is the
//     baseline and raises nothing. For information: it stays open, counting
//     further changes, until an operator clears it.
//
// The JSON form is the API's:
//
//	{"name":"Too warm","severity":"major","scope":{"tags":{"site":"berlin"}},
//	 "condition":{"kind":"threshold","metric":"temperature","op":">","value":30,"forSeconds":0}}
//
// with scope {"deviceId":"pump-1"}, {"tags":{…}} or {"fleet":true}, and
// conditions {"kind":"silence","seconds":300} or
// {"kind":"changed","property":"firmware"}. DecodeRule refuses unknown fields and fields of
// another kind by name; Validate bounds every field.
//
// # Evaluation
//
// An Evaluator keeps a small state machine per (rule, device):
//
//	idle ──raising reading──▶ pending (forSeconds > 0) ──time up──▶ active
//	  ▲        (forSeconds = 0) ─────────────────────────────────▶   │
//	  │                  breaking reading: back to idle              │
//	  └──────────────────────── clearing reading ◀───────────────────┘
//
// Each transition comes out of the call that caused it: Raise, Repeat,
// Update and Clear (see TransitionKind). While an alert is active, readings
// that still raise move its last time and value (reported by Update at most
// once per Options.UpdateEvery); Count goes up only on a new crossing, that
// is after the value fell back inside the hysteresis band (neither raising
// nor clearing) and rose again (held for forSeconds, like a raise), or on
// each further change of a changed alert. So there is one open alert per
// (rule, device), never a row per message.
//
// The value of a metric is its last reading, held until the next one; a
// message without the metric changes nothing. Time is the hub's: every
// event carries it (the time the message was received, not the device's
// timestamp), Tick advances it, and timers due at or before an event's
// time fire before the event is applied, so results do not depend on how
// punctually Tick is called. A raise after forSeconds or silence is dated
// when the time was up, even if Tick came later.
//
// A rule's alerts clear when it is deleted (ReasonRuleDeleted), disabled
// (ReasonRuleDisabled) or its condition edited (ReasonRuleChanged); a
// device's when it is deleted or leaves the scope (ReasonOutOfScope).
// Rules entering a device's scope watch it from its next event (silence
// rules: from its last message).
//
// Per message, the cost is a map lookup for the device, one per metric of
// the message, and work only for the rules on those metrics: each device
// holds a plan of the rules that watch it, shared with every device watched
// by the same rules and rebuilt only when rules or its tags change. Plans
// are found through indexes (fleet rules, rules by device id, tag rules by
// one of their tags), never by trying every rule. State exists only for
// (rule, device) pairs that have something to remember.
//
// # Wiring
//
// The caller feeds the evaluator from the committed stream, after commit:
// Reading for every message (with its numeric readings), Reported after a
// reported-properties update, DeviceChanged and DeviceDeleted from the
// registry, SetRule and RemoveRule from the rule store. It then stores the
// transitions (NewAlert for a Raise, Alert.Apply for the others), publishes
// them (SSE) and queues webhooks (EventFor). Those calls are cheap and never
// block, so ingest can make them inline; the transitions' side effects
// should go to a queue. Timers need one goroutine:
//
//	timer := time.NewTimer(time.Hour)
//	for {
//		if next, ok := ev.NextDeadline(); ok {
//			timer.Reset(time.Until(next))
//		} else {
//			timer.Stop()
//		}
//		select {
//		case <-ctx.Done():
//			return
//		case <-ev.Wake(): // an earlier deadline appeared
//		case now := <-timer.C:
//			handle(ev.Tick(now))
//		}
//	}
//
// Operators' acknowledgements touch only the stored Alert; an operator's
// clear also calls ClearedByOperator, so that a problem that persists does
// not raise again at once.
//
// # Restarts
//
// Snapshot exports the state as plain data and Restore loads it into a new
// evaluator (after its rules are set): open alerts (and which of them sit
// inside their hysteresis band), forSeconds timers with their start, the
// suppressed (rule, device) pairs and the baselines of changed rules;
// devices with their tags and last message time, from which silence timers
// continue. The parts can come from different places: open alerts from the
// alerts table, devices from the registry, the rest from a snapshot saved
// at shutdown. A restart at the moment of a snapshot changes nothing that
// the evaluator emits afterwards (a test restarts at random moments). A timer that ran out while the hub was down
// fires at its own time when Restore advances to now.
//
// # Webhooks
//
// A delivery is a JSON POST of Event.Payload (or Event.Slack for Slack's
// incoming webhooks) with X-Fieldhub-Signature: Sign(secret, body), that is
// "sha256=" and the hex HMAC-SHA256 of the body, and X-Fieldhub-Timestamp.
// The body alone is signed; it carries its send time ("sentAt"), so a
// receiver's Verify checks the signature and refuses old (replayed)
// deliveries. RetryPolicy spaces attempts with jittered exponential backoff
// for an hour, and says when a hook failing for a day is disabled.
package alert
