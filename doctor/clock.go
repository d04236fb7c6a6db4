package doctor

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// ClockTolerance is the clock skew doctor lets pass. ClockLimit is where
// skew breaks devices: the Azure IoT SDKs sign hour-long SAS tokens and use
// them until 15 minutes before they expire, so a hub clock more than 15
// minutes ahead refuses tokens the devices still consider good; a clock an
// hour behind also makes a freshly generated certificate not yet valid.
const (
	ClockTolerance = time.Minute
	ClockLimit     = 15 * time.Minute
)

// Clock compares now with the Date header of url's answer. Date has
// one-second resolution and the answer was made somewhere between sending
// the request and reading the reply, so that much uncertainty is allowed
// on top of tolerance.
func Clock(ctx context.Context, client *http.Client, url string, now func() time.Time, tolerance time.Duration) Finding {
	f := Finding{Check: "clock"}
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		f.Severity, f.What, f.Fix = Warning, fmt.Sprintf("clock URL %q: %v", url, err), "give --clock-url a URL such as https://www.google.com"
		return f
	}
	sent := now()
	resp, err := client.Do(req)
	if err != nil {
		f.Severity, f.What = Warning, fmt.Sprintf("cannot compare the clock with %s: %v", url, err)
		f.Fix = "give --clock-url a URL this machine can reach (a TLS error about validity dates can itself mean the clock is wrong)"
		return f
	}
	resp.Body.Close()
	received := now()
	theirs, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		f.Severity, f.What, f.Fix = Warning, fmt.Sprintf("%s answered without a usable Date header (%q)", url, resp.Header.Get("Date")), "give --clock-url another URL"
		return f
	}
	ours := sent.Add(received.Sub(sent) / 2)
	// Date is truncated to the second: the server's time was up to 1 s later.
	skew := ours.Sub(theirs.Add(500 * time.Millisecond))
	slack := received.Sub(sent)/2 + 500*time.Millisecond
	abs := skew.Abs()
	dir := "ahead of"
	if skew < 0 {
		dir = "behind"
	}
	f.What = fmt.Sprintf("this clock is %s %s %s (±%s)", abs.Round(time.Second), dir, url, slack.Round(100*time.Millisecond))
	switch {
	case abs > ClockLimit+slack:
		f.Severity = Problem
	case abs > tolerance+slack:
		f.Severity = Warning
	default:
		return f
	}
	f.What += "; SAS tokens and certificate dates depend on it"
	f.Fix = "synchronise the clock with NTP: timedatectl set-ntp true (systemd-timesyncd or chrony)"
	return f
}
