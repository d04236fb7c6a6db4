package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the Makefile: -ldflags "-X main.version=… -X main.commit=… -X main.buildTime=…".
var (
	version   = ""
	commit    = ""
	buildTime = ""
)

// buildInfo is what `fieldhub version` prints.
type buildInfo struct {
	Version, Commit, BuildTime string
}

// currentBuild is the build as the linker flags say, or else as the Go
// toolchain stamped it: `go build` in a git checkout records the commit and
// its time (vcs.revision, vcs.time), `go install module@version` the
// version. What neither knows is "dev" or "unknown".
func currentBuild() buildInfo {
	info, _ := debug.ReadBuildInfo()
	return resolveBuild(version, commit, buildTime, info)
}

func resolveBuild(version, commit, buildTime string, info *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: version, Commit: commit, BuildTime: buildTime}
	if info != nil {
		if b.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if b.Commit == "" && settings["vcs.revision"] != "" {
			b.Commit = settings["vcs.revision"]
			if settings["vcs.modified"] == "true" {
				b.Commit += " (modified)"
			}
		}
		if b.BuildTime == "" && settings["vcs.time"] != "" {
			b.BuildTime = "unknown; committed " + settings["vcs.time"]
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.BuildTime == "" {
		b.BuildTime = "unknown"
	}
	return b
}

func runVersion(_ context.Context, e env, args []string) error {
	fs := newFlagSet(e, "version", "version")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	b := currentBuild()
	fmt.Fprintf(e.stdout, "fieldhub %s\ncommit:  %s\nbuilt:   %s\ngo:      %s %s/%s\n",
		b.Version, b.Commit, b.BuildTime, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
