package natslog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/revocast/revocast/pkg/events/eventlog"
)

// DefaultPositionsBucket is the key-value bucket that holds what each agent
// reported, so that every node of a cluster sees every agent.
const DefaultPositionsBucket = "REVOCAST_AGENTS"

// Positions (an eventlog.Positions) is a key-value bucket of small records (one per agent
// instance) that forgets a record ttl after its last write. Every node of
// a cluster reads and writes the same bucket.
type Positions struct {
	l      *Log
	kv     jetstream.KeyValue
	prefix string // subject prefix of the bucket's keys
}

// OpenPositions creates the bucket, or updates it to ttl, with the log's
// replicas, retrying until ctx ends (in a cluster the meta leader may not
// be elected yet).
func (l *Log) OpenPositions(ctx context.Context, ttl time.Duration) (eventlog.Positions, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:      DefaultPositionsBucket,
		Description: "revocast: what each agent applied, by instance",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.MemoryStorage,
		Replicas:    l.cfg.Replicas,
	}
	backoff := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := l.js.CreateOrUpdateKeyValue(actx, cfg)
		cancel()
		if err == nil {
			return &Positions{l: l, kv: kv, prefix: "$KV." + cfg.Bucket + "."}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open bucket %s: %w (last error: %w)", cfg.Bucket, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// MaxPositionKey and ValidPositionKey are eventlog's.
const MaxPositionKey = eventlog.MaxPositionKey

// ValidPositionKey is eventlog.ValidPositionKey.
func ValidPositionKey(k string) bool { return eventlog.ValidPositionKey(k) }

// PutAll writes the records in one asynchronous burst and waits for every
// acknowledgement (or ctx). Keys must satisfy ValidPositionKey.
func (p *Positions) PutAll(ctx context.Context, records map[string][]byte) error {
	var errs []error
	futures := make([]jetstream.PubAckFuture, 0, len(records))
	for k, v := range records {
		if !ValidPositionKey(k) {
			errs = append(errs, fmt.Errorf("position key %q: invalid", k))
			continue
		}
		f, err := p.l.js.PublishAsync(p.prefix+k, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("put position %s: %w", k, err))
			continue
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("put position: %w", err))
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	return errors.Join(errs...)
}

// Watch calls fn with every record in the bucket, then with every record
// written afterwards, by any node, until ctx ends or the watch fails.
// Records that expire are not announced: callers age records themselves.
func (p *Positions) Watch(ctx context.Context, fn func(key string, value []byte)) error {
	w, err := p.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("watch positions: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("watch positions: the watcher stopped")
			}
			if e == nil { // end of the initial values
				continue
			}
			fn(e.Key(), e.Value())
		}
	}
}
