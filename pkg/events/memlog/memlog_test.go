package memlog_test

import (
	"testing"

	"github.com/revocast/revocast/pkg/events/eventlog"
	"github.com/revocast/revocast/pkg/events/eventlog/eventlogtest"
	"github.com/revocast/revocast/pkg/events/memlog"
)

func TestConformance(t *testing.T) {
	eventlogtest.TestLog(t, func(t *testing.T) eventlog.Log {
		l := memlog.New(memlog.Config{})
		t.Cleanup(func() { _ = l.Close() })
		return l
	})
}
