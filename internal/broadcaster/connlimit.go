package broadcaster

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// addrLimiter is a listener that bounds how many connections each client
// IP address holds open. A connection over the cap is closed at once,
// without an answer, and Accept goes on with the next one: a browser's
// EventSource retries a failed connection but gives up for good on any
// non-200 answer, and under TLS nothing could be said yet anyway. A
// connection stops counting when it is released (an authorised SSE stream,
// which the subscriber cap bounds instead) or closed.
type addrLimiter struct {
	net.Listener
	max     int
	log     *slog.Logger
	refused func()

	mu     sync.Mutex
	byAddr map[string]int
	// lastWarn rate-limits the log line about refused connections.
	lastWarn atomic.Int64
}

func newAddrLimiter(ln net.Listener, max int, log *slog.Logger, refused func()) *addrLimiter {
	return &addrLimiter{Listener: ln, max: max, log: log, refused: refused, byAddr: map[string]int{}}
}

func (l *addrLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(c.RemoteAddr().String())
		l.mu.Lock()
		n := l.byAddr[host]
		if n >= l.max {
			l.mu.Unlock()
			l.refuse(c, host)
			continue
		}
		l.byAddr[host] = n + 1
		l.mu.Unlock()
		return &countedConn{Conn: c, l: l, host: host}, nil
	}
}

func (l *addrLimiter) refuse(c net.Conn, host string) {
	l.refused()
	now := time.Now().UnixNano()
	if last := l.lastWarn.Load(); now-last > int64(10*time.Second) && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn("connection refused: too many from one address", "audit", true, "remote", host,
			"max_conns_per_addr", l.max, "reason", "too_many_connections")
	}
	c.Close()
}

func (l *addrLimiter) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.byAddr[host] - 1; n > 0 {
		l.byAddr[host] = n
	} else {
		delete(l.byAddr, host)
	}
}

// countedConn gives its place back once: on Release or Close.
type countedConn struct {
	net.Conn
	l    *addrLimiter
	host string
	once sync.Once
}

// Release stops counting the connection against its address.
func (c *countedConn) Release() { c.once.Do(func() { c.l.release(c.host) }) }

func (c *countedConn) Close() error {
	c.Release()
	return c.Conn.Close()
}

func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

type connKey struct{}

// connContext remembers the request's connection, so that a handler can
// release it from the per-address count.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if cc, ok := c.(*countedConn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// releaseConn stops counting the request's connection against its
// address: it became an authorised stream.
func releaseConn(ctx context.Context) {
	if cc, ok := ctx.Value(connKey{}).(*countedConn); ok {
		cc.Release()
	}
}
