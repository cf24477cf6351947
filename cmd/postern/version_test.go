package main

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "2954814b40ffb2bb6e62fba637a16fe03576a574"}
	tests := []struct {
		name     string
		bi       *debug.BuildInfo
		override string
		want     string
	}{
		{"no build info", nil, "", "dev"},
		{"go install @version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "", "v1.2.0"},
		{"go build in a clone", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261206123000-2954814b40ff"}, Settings: []debug.BuildSetting{rev}},
			"", "v0.0.0-20261206123000-2954814b40ff (commit 2954814b40ffb2bb6e62fba637a16fe03576a574)"},
		{"uncommitted changes", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{rev, {Key: "vcs.modified", Value: "true"}}},
			"", "dev (commit 2954814b40ffb2bb6e62fba637a16fe03576a574, modified)"},
		{"ldflags", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{rev}}, "v1.2.1-rc1",
			"v1.2.1-rc1 (commit 2954814b40ffb2bb6e62fba637a16fe03576a574)"},
	}
	for _, tt := range tests {
		if got := formatVersion(tt.bi, tt.override); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
