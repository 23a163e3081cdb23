package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A subscriber is one SSE connection on a raw net.Conn, read by one
// goroutine with the cheapest correct parsing: the HTTP response (and its
// chunked body) by net/http's reader, then lines with bufio.ReadSlice,
// which neither copies nor allocates. Of each event it only needs the
// sequence in its "id:" line (and it notices "event: synced"). pkg/sse's
// Decoder would allocate the data and the ID of every event
// (BenchmarkReaders in main_test.go compares them); with 10,000 subscribers
// that garbage would be collected on the CPUs the broadcaster runs on.
//
// Receipts are recorded as nanoseconds since a base time, in arrays
// allocated at connection time, so that measuring allocates nothing.
type subscriber struct {
	conn  net.Conn
	lines *bufio.Reader
	base  time.Time

	headerAt int64 // the response header was read (ns since base)
	seqs     []uint64
	at       []int64
	overflow int // receipts beyond the arrays' capacity

	firstAt  atomic.Int64 // first event; 0: none yet
	syncedAt atomic.Int64 // synced event; 0: not yet
	events   atomic.Int64
	bytes    atomic.Int64 // body bytes read, for catch-up throughput
	last     atomic.Uint64

	err  error // why reading stopped; set before done is closed
	done chan struct{}

	// receipts phase: the instance it names itself with, and a one-slot
	// signal of new events for its reporter
	instance string
	poke     chan struct{}
}

type subOptions struct {
	path    string // path and query of the request
	token   string
	record  int // receipts kept (sequence and time); 0: none
	connBuf int // bufio size on the socket
	lineBuf int // bufio size on the body
	// agent, when set, names each subscriber with a Revocast-Agent header
	// (instance agent-<n>) and gives it a poke channel (receipts phase)
	agent string
}

// instances numbers the instances of named subscribers.
var instances atomic.Int64

var (
	idPrefix     = []byte("id:")
	syncedPrefix = []byte("event: synced")
)

// dialSubscriber connects, sends the request and reads the response header;
// then one goroutine reads the stream until the connection is closed.
// synced, when not nil, is incremented once when the synced event arrives.
func dialSubscriber(ctx context.Context, host string, o subOptions, base time.Time, synced *atomic.Int64) (*subscriber, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	var req bytes.Buffer
	req.WriteString("GET " + o.path + " HTTP/1.1\r\nHost: " + host + "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n")
	if o.token != "" {
		req.WriteString("Authorization: Bearer " + o.token + "\r\n")
	}
	var instance string
	if o.agent != "" {
		instance = o.agent + "-" + strconv.FormatInt(instances.Add(1), 10)
		req.WriteString("Revocast-Agent: " + o.agent + "; instance=" + instance + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := conn.Write(req.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, o.connBuf)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read response header: %w", err)
	}
	headerAt := int64(time.Since(base))
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		conn.Close()
		return nil, fmt.Errorf("GET %s: status %d: %s", o.path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	_ = conn.SetDeadline(time.Time{})
	s := &subscriber{conn: conn, base: base, headerAt: headerAt, done: make(chan struct{}), instance: instance}
	if instance != "" {
		s.poke = make(chan struct{}, 1)
	}
	s.lines = bufio.NewReaderSize(countingReader{resp.Body, &s.bytes}, o.lineBuf)
	if o.record > 0 {
		s.seqs = make([]uint64, 0, o.record)
		s.at = make([]int64, 0, o.record)
	}
	go s.read(synced)
	return s, nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (s *subscriber) read(synced *atomic.Int64) {
	defer close(s.done)
	s.err = readEvents(s.lines, func(seq uint64) {
		now := int64(time.Since(s.base))
		if s.events.Add(1) == 1 {
			s.firstAt.Store(now)
		}
		if len(s.seqs) < cap(s.seqs) {
			s.seqs = append(s.seqs, seq)
			s.at = append(s.at, now)
		} else if cap(s.seqs) > 0 {
			s.overflow++
		}
		s.last.Store(seq)
		if s.poke != nil {
			select {
			case s.poke <- struct{}{}:
			default:
			}
		}
	}, func() {
		if s.syncedAt.Load() == 0 {
			s.syncedAt.Store(max(1, int64(time.Since(s.base))))
			if synced != nil {
				synced.Add(1)
			}
		}
	})
}

// readEvents calls onID with the sequence of every "id:" line and onSynced
// for every "event: synced" line, until the reader fails. A line longer
// than the buffer is skipped (only data lines are long).
func readEvents(lines *bufio.Reader, onID func(seq uint64), onSynced func()) error {
	midLine := false
	for {
		line, err := lines.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				midLine = true
				continue
			}
			return err
		}
		if midLine { // the end of a long line
			midLine = false
			continue
		}
		switch {
		case bytes.HasPrefix(line, idPrefix):
			onID(parseSeq(line[len(idPrefix):]))
		case bytes.HasPrefix(line, syncedPrefix):
			onSynced()
		}
	}
}

// parseSeq reads the sequence of an event ID value " <epoch>-<seq>\n".
func parseSeq(v []byte) uint64 {
	i := bytes.LastIndexByte(v, '-')
	var n uint64
	for _, c := range v[i+1:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// close ends the connection; the reading goroutine then returns.
func (s *subscriber) close() { s.conn.Close() }

// connectAll opens n subscribers, at most parallel at a time and at most
// rate per second (a connection storm would measure the accept queue, not
// the broadcaster), retrying a failed connection twice. With wantSynced it
// then waits until every one has received synced. On error it closes the
// ones it opened.
func connectAll(ctx context.Context, host string, n int, o subOptions, base time.Time, rate float64, parallel int, wantSynced bool) ([]*subscriber, error) {
	subs := make([]*subscriber, n)
	var synced atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errOnce  sync.Once
		firstErr error
	)
	jobs := make(chan int)
	go func() { // the pacer
		defer close(jobs)
		start := time.Now()
		interval := time.Duration(float64(time.Second) / rate)
		for i := range n {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				select {
				case <-time.After(wait):
				case <-cctx.Done():
					return
				}
			}
			select {
			case jobs <- i:
			case <-cctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range min(parallel, n) {
		wg.Go(func() {
			for i := range jobs {
				var err error
				for attempt := range 3 {
					if attempt > 0 {
						select {
						case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
						case <-cctx.Done():
						}
					}
					if subs[i], err = dialSubscriber(cctx, host, o, base, &synced); err == nil || cctx.Err() != nil {
						break
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("subscriber %d of %d: %w", i+1, n, err) })
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	for firstErr == nil && wantSynced && synced.Load() < int64(n) {
		for _, s := range subs {
			select {
			case <-s.done:
				if s.syncedAt.Load() == 0 {
					firstErr = fmt.Errorf("a subscriber's stream ended before synced: %w", s.err)
				}
			default:
			}
		}
		select {
		case <-ctx.Done():
			firstErr = fmt.Errorf("%d of %d subscribers synced: %w", synced.Load(), n, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if firstErr != nil {
		closeAll(subs)
		return nil, firstErr
	}
	return subs, nil
}

// closeAll closes every subscriber and waits (a bounded time) for their
// goroutines. Only when it returns true may their arrays be read.
func closeAll(subs []*subscriber) bool {
	for _, s := range subs {
		if s != nil {
			s.close()
		}
	}
	deadline := time.After(10 * time.Second)
	for _, s := range subs {
		if s == nil {
			continue
		}
		select {
		case <-s.done:
		case <-deadline:
			return false
		}
	}
	return true
}
