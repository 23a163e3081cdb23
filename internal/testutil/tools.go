package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// Curl returns the path of curl, for tests that run documented commands as
// a user would. Without curl the test is skipped, or fails when
// REVOCAST_REQUIRE_CURL is set (as .ci/run sets it, so that CI cannot pass
// by skipping).
func Curl(t testing.TB) string {
	t.Helper()
	return requireTool(t, "REVOCAST_REQUIRE_CURL", "curl")
}

// Chromium returns the path of a Chromium or Chrome binary, for browser
// tests. Without one the test is skipped, or fails when
// REVOCAST_REQUIRE_CHROMIUM is set (as .ci/run sets it).
func Chromium(t testing.TB) string {
	t.Helper()
	return requireTool(t, "REVOCAST_REQUIRE_CHROMIUM", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
}

func requireTool(t testing.TB, required string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(required) != "" {
		t.Fatalf("%s is required (%s is set) but not installed", names[0], required)
	}
	t.Skipf("%s not installed (apt-get install %s; .ci/run installs it, and %s=1 makes this a failure)", names[0], names[0], required)
	return ""
}
