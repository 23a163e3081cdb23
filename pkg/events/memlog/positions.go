package memlog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/revocast/revocast/pkg/events/eventlog"
)

type record struct {
	value   []byte
	written time.Time
	version uint64
}

// positions are the position records of one process.
type positions struct {
	l *Log

	mu      sync.Mutex
	version uint64
	records map[string]record
	changed chan struct{}
}

var _ eventlog.Positions = (*positions)(nil)

// OpenPositions returns the position records of this log (in this
// process only). ttl is not applied: records live as long as the log
// (Watch does not announce expiries anyway; callers age records).
func (l *Log) OpenPositions(context.Context, time.Duration) (eventlog.Positions, error) {
	l.posOnce.Do(func() {
		l.pos = &positions{l: l, records: make(map[string]record), changed: make(chan struct{})}
	})
	return l.pos, nil
}

func (p *positions) PutAll(_ context.Context, records map[string][]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for k, v := range records {
		if !eventlog.ValidPositionKey(k) {
			return fmt.Errorf("position key %q: invalid", k)
		}
		p.version++
		p.records[k] = record{value: append([]byte(nil), v...), written: now, version: p.version}
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

func (p *positions) Watch(ctx context.Context, fn func(key string, value []byte)) error {
	var seen uint64
	for {
		p.mu.Lock()
		type kv struct {
			k string
			v []byte
		}
		var news []kv
		top := seen
		for k, r := range p.records {
			if r.version > seen {
				news = append(news, kv{k, r.value})
				top = max(top, r.version)
			}
		}
		seen = top
		wait := p.changed
		p.mu.Unlock()
		for _, n := range news {
			fn(n.k, n.v)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.l.done:
			return eventlog.ErrClosed
		case <-wait:
		}
	}
}
