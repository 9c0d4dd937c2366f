package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…" (make
// build, make install); it wins over the build information.
var version = "dev"

// buildInfo is what --version reports, from the build's own record.
type buildInfo struct {
	version   string // the release, the module version or dev-REVISION
	revision  string // the VCS revision, if recorded
	time      string // the revision's commit time, if recorded
	modified  bool   // built from a work tree with uncommitted changes
	goVersion string
}

// readBuildInfo is the running binary's buildInfo.
func readBuildInfo() buildInfo {
	info, _ := debug.ReadBuildInfo()
	return buildInfoOf(version, info)
}

// buildInfoOf derives the version from, in this order: the one stamped with
// -X (anything but "dev"); the module version `go install MODULE@VERSION`
// records; the VCS revision `go build` and `go install` record in a git
// clone ("dev-" and its first 12 digits, "-modified" when the tree had
// changes); else "dev" (go run, -buildvcs=false, a git worktree, which the
// go command does not stamp).
func buildInfoOf(stamped string, info *debug.BuildInfo) buildInfo {
	b := buildInfo{version: stamped}
	if info == nil {
		return b
	}
	b.goVersion = info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.time":
			b.time = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	switch {
	case stamped != "dev":
	case info.Main.Version != "" && info.Main.Version != "(devel)":
		b.version = info.Main.Version
	case b.revision != "":
		b.version = "dev-" + b.revision[:min(12, len(b.revision))]
		if b.modified {
			b.version += "-modified"
		}
	}
	return b
}

// String is --version's output: the version, then what it was built from.
func (b buildInfo) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "batchreset version %s\n", b.version)
	if b.revision != "" {
		fmt.Fprintf(&sb, "revision: %s", b.revision)
		if b.time != "" {
			fmt.Fprintf(&sb, " (%s)", b.time)
		}
		if b.modified {
			sb.WriteString(", modified")
		}
		sb.WriteString("\n")
	} else if b.version == "dev" {
		sb.WriteString("revision: not recorded (go run, -buildvcs=false or a git worktree); make build and make install stamp one\n")
	}
	if b.goVersion != "" {
		fmt.Fprintf(&sb, "built with %s for %s/%s\n", b.goVersion, runtime.GOOS, runtime.GOARCH)
	}
	return sb.String()
}

// buildVersion is the running binary's version, as --version says it.
func buildVersion() string { return readBuildInfo().version }
