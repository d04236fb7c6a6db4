package main

import (
	"io"
	"log/slog"
)

// logFormatUsage is the help of --log-format on every command that logs.
const logFormatUsage = "text (key=value) or json (one object a line, for log shippers); the keys are the same (env FIELDHUB_LOG_FORMAT)"

// newLogger writes records of level and above to w as text or JSON. Both
// are slog's own handlers, so a record has the same keys in either: time,
// level, msg and its attributes (a group's as group.key in text, nested
// in JSON).
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", format)
}
