package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestBuildInfoOf: the version comes from -X, else the module version, else
// the VCS revision, else dev, and --version says what it was built from.
func TestBuildInfoOf(t *testing.T) {
	t.Parallel()
	const rev = "ad9518217390f6ea9c2627e0e028fc49e72e3147"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-07T00:19:25Z"}, {Key: "vcs.modified", Value: modified}}
	}
	devel := debug.Module{Path: "github.com/batchreset/batchreset", Version: "(devel)"}
	for _, tc := range []struct {
		name, stamped string
		info          *debug.BuildInfo
		want          string   // version
		lines         []string // in String()
	}{
		{name: "NoInfo", stamped: "dev", want: "dev", lines: []string{"batchreset version dev\n", "revision: not recorded"}},
		{name: "StampedWins", stamped: "v1.2.0", info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.1.0"}, Settings: vcs("false")},
			want: "v1.2.0", lines: []string{"batchreset version v1.2.0\n", "revision: " + rev + " (2026-12-07T00:19:25Z)\n", "built with go1.26.8"}},
		{name: "GoInstallAtVersion", stamped: "dev", info: &debug.BuildInfo{Main: debug.Module{Version: "v1.1.0"}}, want: "v1.1.0"},
		{name: "Revision", stamped: "dev", info: &debug.BuildInfo{Main: devel, Settings: vcs("false")}, want: "dev-ad9518217390"},
		{name: "RevisionModified", stamped: "dev", info: &debug.BuildInfo{Main: devel, Settings: vcs("true")},
			want: "dev-ad9518217390-modified", lines: []string{", modified\n"}},
		{name: "NothingRecorded", stamped: "dev", info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: devel},
			want: "dev", lines: []string{"revision: not recorded", "built with go1.26.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := buildInfoOf(tc.stamped, tc.info)
			if b.version != tc.want {
				t.Errorf("version = %q, want %q", b.version, tc.want)
			}
			out := b.String()
			for _, l := range tc.lines {
				if !strings.Contains(out, l) {
					t.Errorf("String() = %q, want it to contain %q", out, l)
				}
			}
		})
	}
}
