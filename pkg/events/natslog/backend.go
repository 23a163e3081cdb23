package natslog

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"

	"github.com/revocast/revocast/pkg/events/eventlog"
)

var _ eventlog.Backend = Config{}

// MaxReplicas is the most replicas JetStream keeps of a stream.
const MaxReplicas = 5

// Check refuses what cannot work whatever happens at run time: a replica
// count no server set can hold (the stream would never be created and the
// broadcaster would wait for it for ever) and half a route TLS setup. A
// standalone embedded server holds one replica; how many servers an
// embedded cluster or an external deployment has is only known once they
// answer.
func (c Config) Check() error {
	var errs []error
	if set := []bool{c.ClusterTLSCertFile != "", c.ClusterTLSKeyFile != "", c.ClusterTLSCAFile != ""}; slices.Contains(set, true) && slices.Contains(set, false) {
		errs = append(errs, errors.New("cluster-tls-cert, cluster-tls-key and cluster-tls-ca go together"))
	}
	switch n := c.Replicas; {
	case n == 0: // the default: one
	case n < 0 || n > MaxReplicas:
		errs = append(errs, fmt.Errorf("--replicas must be 1 to %d (JetStream keeps at most %d copies of a stream), not %d", MaxReplicas, MaxReplicas, n))
	case n > 1 && len(c.URLs) == 0 && c.ClusterName == "":
		errs = append(errs, fmt.Errorf("--replicas %d needs a cluster: a standalone embedded NATS server keeps one copy of the stream. "+
			"Form a cluster of at least %d broadcasters (--cluster-name, --cluster-addr, --routes) or use an external NATS cluster (--nats-url), "+
			"or keep --replicas 1", n, n))
	}
	return errors.Join(errs...)
}

// Describe says how the log runs: embedded in this process (with cluster
// routes when ClusterName is set) or on an external deployment.
func (c Config) Describe() eventlog.Description {
	c.setDefaults()
	d := eventlog.Description{Kind: "embedded", Where: c.DataDir, Node: c.ServerName, MaxAge: c.MaxAge}
	if len(c.URLs) > 0 {
		d.Kind, d.Where = "external", strings.Join(redactURLs(c.URLs), ",")
		return d
	}
	if c.ClusterName != "" {
		d.PeerAddr = c.ClusterAddr
		d.PeersAuthenticated = c.ClusterSecret != "" || c.ClusterTLSCertFile != ""
	}
	return d
}

// Connect is the package's Connect with the server's grace and logger.
func (c Config) Connect(o eventlog.ConnectOptions) (eventlog.Log, error) {
	c.ExpiryGrace = o.ExpiryGrace
	if c.Logger == nil {
		c.Logger = o.Logger
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	l, err := Connect(c)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// redactURLs hides the passwords URLs may carry, for logs.
func redactURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, s := range urls {
		if u, err := url.Parse(s); err == nil {
			out[i] = u.Redacted()
		} else {
			out[i] = "(unparsable URL)"
		}
	}
	return out
}
