package broadcaster_test

import (
	"strings"
	"testing"

	"github.com/revocast/revocast/internal/broadcaster"

	"github.com/revocast/revocast/pkg/events/natslog"
)

// TestConfigRefusesReplicasWithoutCluster: a stream with more replicas
// than the servers that can hold them is never created, so such a
// configuration must be refused at start instead of being retried for ever.
func TestConfigRefusesReplicasWithoutCluster(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		nats natslog.Config
		want string // "" means accepted
	}{
		{"default", natslog.Config{}, ""},
		{"one replica", natslog.Config{Replicas: 1}, ""},
		{"three without a cluster", natslog.Config{Replicas: 3}, "--replicas 3 needs a cluster"},
		{"two without a cluster", natslog.Config{Replicas: 2}, "--replicas 2 needs a cluster"},
		{"three in a cluster", natslog.Config{Replicas: 3, ClusterName: "c", ClusterAddr: "127.0.0.1:0",
			Routes: []string{"nats://127.0.0.1:1", "nats://127.0.0.1:2"}}, ""},
		{"three on external NATS", natslog.Config{Replicas: 3, URLs: []string{"nats://127.0.0.1:4222"}}, ""},
		{"beyond the JetStream maximum", natslog.Config{Replicas: 7, ClusterName: "c", ClusterAddr: "127.0.0.1:0"}, "--replicas must be 1 to 5"},
		{"negative", natslog.Config{Replicas: -1}, "--replicas must be 1 to 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := broadcaster.New(broadcaster.Config{Backend: tc.nats})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}
