package main

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// serveFlagHelp walks serve's flag set as `fieldhub serve --help` prints
// it: each flag's name, value type ("" for booleans) and usage.
func serveFlagHelp(t *testing.T) map[string][2]string {
	t.Helper()
	var help bytes.Buffer
	if _, err := parseServe(env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: &help}, []string{"--help"}); !errors.Is(err, errHelp) {
		t.Fatalf("serve --help: %v", err)
	}
	flags := map[string][2]string{}
	head := regexp.MustCompile(`^  -([a-z0-9-]+)(?: (\S+))?$`)
	var name string
	for _, line := range strings.Split(help.String(), "\n") {
		if m := head.FindStringSubmatch(line); m != nil {
			name = m[1]
			flags[name] = [2]string{m[2], ""}
			continue
		}
		if name != "" {
			f := flags[name]
			f[1] += strings.TrimSpace(line) + " "
			flags[name] = f
		}
	}
	if len(flags) < 10 {
		t.Fatalf("found %d flags in serve --help:\n%s", len(flags), help.String())
	}
	return flags
}

// TestEveryServeFlagHasAnEnvVar holds the README's promise that every
// serve flag has a FIELDHUB_* variable: its usage names the variable, and
// setting the variable gives the same configuration as giving the flag
// the same value, which differs from the default.
func TestEveryServeFlagHasAnEnvVar(t *testing.T) {
	envName := regexp.MustCompile(`\(env (FIELDHUB_[A-Z0-9_]+)`)
	// Values to try, by the type --help shows, until one is valid for the
	// flag and not its default.
	values := map[string][]string{
		"":         {"1"},
		"duration": {"1234s", "42s"},
		"int":      {"7"},
		"float":    {"7"},
	}
	strs := []string{"7", "127.0.0.1:18999", "hub.example", "json", "https://time.example", "10.0.0.0/8", "nats://127.0.0.1:4222"}
	// Flags valid only with another.
	partners := map[string][]string{"tls-cert": {"--tls-key", "key.pem"}, "tls-key": {"--tls-cert", "cert.pem"}}
	parse := func(vars map[string]string, args []string) (serveConfig, error) {
		e := env{getenv: func(k string) string { return vars[k] }, stdout: io.Discard, stderr: io.Discard}
		return parseServe(e, args)
	}
	for name, f := range serveFlagHelp(t) {
		t.Run(name, func(t *testing.T) {
			typ, usage := f[0], f[1]
			m := envName.FindStringSubmatch(usage)
			if m == nil {
				t.Fatalf("--%s: usage %q names no FIELDHUB_* variable", name, usage)
			}
			key := m[1]
			base, baseErr := parse(nil, partners[name])
			candidates, ok := values[typ]
			if !ok {
				candidates = strs
			}
			for _, v := range candidates {
				flagArg := "--" + name + "=" + v
				if typ == "" {
					flagArg = "--" + name + "=true"
				}
				fromFlag, err := parse(nil, append(append([]string{}, partners[name]...), flagArg))
				if err != nil || (baseErr == nil && reflect.DeepEqual(fromFlag, base)) {
					continue // not valid here, or the default
				}
				fromEnv, err := parse(map[string]string{key: v}, partners[name])
				if err != nil {
					t.Fatalf("%s=%s: %v (while %s parses)", key, v, err, flagArg)
				}
				if !reflect.DeepEqual(fromEnv, fromFlag) {
					t.Fatalf("%s=%s parses to\n%+v\nbut %s to\n%+v", key, v, fromEnv, flagArg, fromFlag)
				}
				return
			}
			t.Fatalf("--%s (%s): none of %q is valid and not the default; add a value to this test", name, typ, candidates)
		})
	}
}
