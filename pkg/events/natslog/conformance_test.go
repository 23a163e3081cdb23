package natslog

import (
	"testing"

	"github.com/revocast/revocast/pkg/events/eventlog"
	"github.com/revocast/revocast/pkg/events/eventlog/eventlogtest"
)

// TestConformance runs eventlog's conformance test against the JetStream
// log (an embedded server per subtest), as memlog's tests do in memory.
func TestConformance(t *testing.T) {
	eventlogtest.TestLog(t, func(t *testing.T) eventlog.Log { return openLog(t, t.TempDir()) })
}
