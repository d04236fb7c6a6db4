package views

import (
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// relativeTime formats t relative to now ("5 min ago"). web/time.js applies
// the same rules in the browser to keep the text current; keep them in step.
func relativeTime(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	s := int(now.Sub(t) / time.Second)
	switch {
	case s < 10:
		return "just now"
	case s < 60:
		return strconv.Itoa(s) + " s ago"
	case s < 60*60:
		return strconv.Itoa(s/60) + " min ago"
	case s < 24*60*60:
		return strconv.Itoa(s/3600) + " h ago"
	case s < 30*24*60*60:
		return strconv.Itoa(s/86400) + " d ago"
	}
	return t.UTC().Format("2006-01-02")
}

// expiryText says when something expires relative to now: "in 29 d",
// "expired 3 h ago", or "never" for the zero time.
func expiryText(t, now time.Time) string {
	switch {
	case t.IsZero():
		return "never"
	case !now.Before(t):
		return "expired " + relativeTime(t, now)
	}
	s := int(t.Sub(now) / time.Second)
	switch {
	case s < 60:
		return "in " + strconv.Itoa(s) + " s"
	case s < 60*60:
		return "in " + strconv.Itoa(s/60) + " min"
	case s < 48*60*60:
		return "in " + strconv.Itoa(s/3600) + " h"
	case s < 365*24*60*60:
		return "in " + strconv.Itoa(s/86400) + " d"
	}
	return "on " + t.UTC().Format("2006-01-02")
}

// isoTime is the machine-readable form for <time datetime>.
func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// fullTime is the exact time, for tooltips and detail lists.
func fullTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// tagsText is the editable form of tags, the same syntax the add and edit
// forms accept: "k=v, k=v".
func tagsText(tags []Tag) string {
	var b strings.Builder
	for i, t := range tags {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.Key)
		b.WriteByte('=')
		b.WriteString(t.Value)
	}
	return b.String()
}

// devicePath is the dashboard address of a device, plus an optional suffix
// such as "/enable". Device ids may contain ? # % and other characters that
// must be escaped in a path.
func devicePath(id, suffix string) string {
	return "/devices/" + url.PathEscape(id) + suffix
}

// userPath is the address of a user's actions.
func userPath(name, suffix string) string {
	return "/users/" + url.PathEscape(name) + suffix
}

// pageWindow lists the page numbers to link to around current, with 0 for a
// gap: 1 … 4 5 [6] 7 8 … 200.
func pageWindow(current, count int) []int {
	if count <= 1 {
		return nil
	}
	const around = 2
	var pages []int
	for p := 1; p <= count; p++ {
		if p == 1 || p == count || (p >= current-around && p <= current+around) {
			pages = append(pages, p)
		} else if len(pages) > 0 && pages[len(pages)-1] != 0 {
			pages = append(pages, 0)
		}
	}
	return pages
}

// thousands formats n with comma separators: 10000 → "10,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// rate formats a per-minute message rate with at most one decimal.
func rate(x float64) string {
	if x >= 100 {
		return thousands(int(x + 0.5))
	}
	return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64)
}

// statusLabel is the text of a status badge.
func statusLabel(status string) string {
	switch status {
	case StatusOnline:
		return "Online"
	case StatusOffline:
		return "Offline"
	case StatusDisabled:
		return "Disabled"
	}
	return status
}

// displayName is the device's name, or its id when it has none.
func displayName(d DeviceDetail) string {
	if d.Name != "" {
		return d.Name
	}
	return d.ID
}

func pageTitle(title string) string {
	if title == "" {
		return "Fieldhub"
	}
	return title + " · Fieldhub"
}

// shortText is s cut to at most n characters, the last one "…", and whether
// it was cut.
func shortText(s string, n int) (string, bool) {
	if utf8.RuneCountInString(s) <= n {
		return s, false
	}
	end, k := 0, 0
	for end = range s {
		if k == n-1 {
			break
		}
		k++
	}
	return s[:end] + "…", true
}

// formatValue shows a metric's value as the tiles do: up to 4 decimals,
// without trailing zeros.
func formatValue(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e4)/1e4, 'f', -1, 64)
}
