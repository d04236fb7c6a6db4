package alert_test

import (
	"fmt"
	"time"

	"fieldhub/alert"
)

// A rule from the API, a device crossing it and holding, the timer that
// raises it, and the reading that clears it.
func ExampleEvaluator() {
	rule, err := alert.DecodeRule([]byte(`{"name":"Too warm","severity":"major","scope":{"tags":{"site":"berlin"}},
		"condition":{"kind":"threshold","metric":"temperature","op":">","value":30,"forSeconds":120,"hysteresis":2}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rule.ID = 1 // as the rule store assigns it
	start := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	ev := alert.New(alert.Options{})
	if _, err := ev.SetRule(rule, start); err != nil {
		fmt.Println(err)
		return
	}
	berlin := map[string]string{"site": "berlin"}
	print := func(ts []alert.Transition) {
		for _, t := range ts {
			fmt.Printf("%s %s at %s: %v (count %d)\n", t.Kind, t.Alert.DeviceID, t.At.Format("15:04:05"), t.Value, t.Alert.Count)
		}
	}
	print(ev.Reading("freezer-1", berlin, start, []alert.Sample{{Metric: "temperature", Value: 31}}))
	next, _ := ev.NextDeadline()
	fmt.Println("sleep until", next.Format("15:04:05"))
	print(ev.Tick(next))
	print(ev.Reading("freezer-1", berlin, start.Add(3*time.Minute), []alert.Sample{{Metric: "temperature", Value: 29}}))
	print(ev.Reading("freezer-1", berlin, start.Add(4*time.Minute), []alert.Sample{{Metric: "temperature", Value: 27.5}}))
	// Output:
	// sleep until 03:02:00
	// raise freezer-1 at 03:02:00: 31 (count 1)
	// clear freezer-1 at 03:04:00: 27.5 (count 1)
}

// A receiver checks a delivery's signature and age.
func ExampleVerify() {
	secret := []byte("from the webhook form")
	sentAt := time.Date(2026, 3, 1, 3, 2, 0, 0, time.UTC)
	body, _ := alert.Event{ID: "alert-7-raised", Type: alert.EventRaised, SentAt: sentAt}.Payload()
	signature := alert.Sign(secret, body) // the X-Fieldhub-Signature header

	ev, err := alert.Verify(secret, body, signature, sentAt.Add(3*time.Second), 5*time.Minute)
	fmt.Println(ev.ID, err)
	_, err = alert.Verify(secret, body, signature, sentAt.Add(time.Hour), 5*time.Minute)
	fmt.Println(err)
	// Output:
	// alert-7-raised <nil>
	// webhook delivery is too old or from the future: sent at 2026-03-01T03:02:00Z, now 2026-03-01T04:02:00Z
}
