package memlog

import "github.com/revocast/revocast/pkg/events/eventlog"

var _ eventlog.Backend = Config{}

// Check accepts every Config.
func (Config) Check() error { return nil }

// Describe says the log is in memory: no peers, no data directory.
func (Config) Describe() eventlog.Description { return eventlog.Description{Kind: "memory"} }

// Connect returns a new Log with the server's grace.
func (c Config) Connect(o eventlog.ConnectOptions) (eventlog.Log, error) {
	c.ExpiryGrace = o.ExpiryGrace
	return New(c), nil
}
