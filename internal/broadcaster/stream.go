package broadcaster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

const (
	// replayBatch is how many frames one Next call hands out.
	replayBatch = 256
	// replayFlushBytes is how much replayed history is written at once:
	// large enough for few system calls, small enough that thousands of
	// subscribers catching up together do not hold much memory.
	replayFlushBytes = 32 << 10
)

var resetData = []byte("{}")

// resumeMode is where a subscriber starts.
type resumeMode int

const (
	fromStart resumeMode = iota // no Last-Event-ID: the whole live state
	fromID                      // after a given event
	liveOnly                    // last_event_id=now
)

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	// (serveHTTP set the CORS headers; hijackStream copies them)
	raw, field := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if raw == "" {
		raw, field = r.URL.Query().Get("last_event_id"), "last_event_id"
	}
	mode := fromStart
	var id events.EventID
	switch raw {
	case "":
	case "now":
		mode = liveOnly
	default:
		var err error
		if id, err = events.ParseEventID(raw); err != nil {
			s.reject(w, r, http.StatusBadRequest, "invalid", field+": malformed event ID: want <epoch>-<seq> (as sent in id:) or now", field)
			return
		}
		mode = fromID
	}

	var agentName, agentInstance string
	if v := r.Header.Get(AgentHeader); v != "" {
		var err error
		if agentName, agentInstance, err = parseAgentHeader(v); err != nil {
			s.reject(w, r, http.StatusBadRequest, "invalid", AgentHeader+": want <name>; instance=<id>: "+err.Error(), AgentHeader)
			return
		}
	}

	// reserve a place atomically, so that a burst of connections cannot
	// overshoot the cap; the stream gives it back when it ends
	if s.streamsOpen.Add(1) > int64(s.cfg.MaxSubscribers) {
		s.streamsOpen.Add(-1)
		w.Header().Set("Retry-After", "5")
		s.refuse(w, r, http.StatusServiceUnavailable, "too_many_subscribers",
			"this broadcaster serves its maximum number of subscribers; retry later or use another one", "", nil)
		return
	}
	share, ok := s.shares.take(streamOwner(r), s.cfg.MaxSubscribersPerPrincipal)
	if !ok {
		s.streamsOpen.Add(-1)
		w.Header().Set("Retry-After", "5")
		s.refuse(w, r, http.StatusServiceUnavailable, "subscriber_share",
			"this credential (or address) holds its share of this broadcaster's subscribers; close some or use another credential", "", nil)
		return
	}
	// authorised: the stream outlives the read timeout, and the
	// subscriber cap bounds it rather than the per-address one
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	releaseConn(r.Context())
	handedOver := false
	defer func() {
		if !handedOver {
			s.streamsOpen.Add(-1)
			share.release()
		}
	}()

	// EventSource gives up for good on a 5xx, so while the log is still
	// being read the request waits instead of failing.
	select {
	case <-s.hub.Ready():
	case <-r.Context().Done():
		return
	case <-s.streams.Done():
		return
	}

	var after uint64
	reset := false
	if mode == fromID {
		var err error
		if after, err = s.resumePoint(r.Context(), id); err != nil {
			reset = true
		}
	}
	switch {
	case reset:
		s.metrics.resets.Inc()
		s.log.Debug("subscriber reset", "last_event_id", raw, "remote", r.RemoteAddr)
	case mode == fromID:
		s.metrics.replays.Inc()
	}
	// subscribe registers the subscription, and the agent when it named
	// itself; the function returned records that it left
	subscribe := func() (*hub.Subscription, func()) {
		var sub *hub.Subscription
		if mode == liveOnly {
			sub = s.hub.SubscribeAtHead()
		} else {
			sub = s.hub.Subscribe(after)
		}
		if agentInstance != "" {
			return sub, s.fleet.connect(agentName, agentInstance, sub)
		}
		return sub, func() {}
	}

	// HTTP/1.1: take the connection over from net/http and stream on it
	// directly. Every event is one write of bytes encoded once for all
	// subscribers (no per-subscriber copy or chunk framing), and an idle
	// subscriber costs one small goroutine and its socket rather than
	// net/http's buffers and two goroutines. HTTP/2 streams go through
	// net/http (sse.Stream).
	if r.ProtoMajor == 1 {
		if conn, err := s.hijackStream(w, reset); err == nil {
			handedOver = true
			sub, left := subscribe()
			s.pumps.Add(1)
			go func() {
				defer s.pumps.Done()
				defer left()
				defer s.streamsOpen.Add(-1)
				defer share.release()
				defer conn.Close()
				defer sub.Close()
				ctx, release := s.guard.guard(s.streams, principal(r))
				defer release()
				st := &rawStream{conn: conn, timeout: s.cfg.WriteTimeout}
				s.endStream(s.pump(ctx, st, sub), ctx, r.RemoteAddr)
			}()
			return
		} else if !errors.Is(err, http.ErrNotSupported) {
			s.log.Debug("cannot start stream", "err", err)
			return
		}
	}

	// Streams end when the client leaves or the server shuts down.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()
	ctx, release := s.guard.guard(ctx, principal(r))
	defer release()
	st, err := sse.Start(w, r, sse.WithRetry(s.cfg.Retry), sse.WithWriteTimeout(s.cfg.WriteTimeout))
	if err != nil {
		s.log.Debug("cannot start stream", "err", err)
		return
	}
	if reset {
		if err := st.Send(sse.Event{Type: events.TypeReset, Data: resetData}); err != nil {
			return
		}
	}
	sub, left := subscribe()
	defer left()
	defer sub.Close()
	s.endStream(s.pump(ctx, st, sub), ctx, r.RemoteAddr)
}

// endStream logs why a stream ended. net/http cancels the request context
// when a write fails, so the error is looked at before the context.
func (s *Server) endStream(err error, ctx context.Context, remote string) {
	switch {
	case errors.Is(err, errSlow):
		s.log.Info("subscriber disconnected: it fell too far behind (it resumes with its Last-Event-ID)", "remote", remote)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.hub.NoteSlow()
		s.log.Info("subscriber disconnected: a write timed out (it resumes with its Last-Event-ID)", "remote", remote)
	case errors.Is(context.Cause(ctx), errOperatorRevoked), errors.Is(context.Cause(ctx), errOperatorExpired):
		s.log.Info("stream ended: its operator JWT lost its rights", "reason", context.Cause(ctx), "remote", remote, "audit", true)
	case ctx.Err() != nil:
	case err != nil:
		s.log.Debug("stream ended", "err", err, "remote", remote)
	}
}

var errSlow = errors.New("subscriber dropped by the hub")

var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, replayFlushBytes+4096); return &b }}

// pump sends the subscriber everything after its cursor, then synced, then
// each new event as it is applied, with a heartbeat when idle and this
// node is current (checkCurrent). History and
// live events come through the same cursor, so none is lost or sent twice.
func (s *Server) pump(ctx context.Context, st frameWriter, sub *hub.Subscription) error {
	// The goroutine blocks on the subscription's wake channel alone; the
	// heartbeat and the end of ctx kick it. With thousands of subscribers a
	// one-channel receive per event instead of a four-way select is a
	// tenth of the fan-out's CPU. The heartbeat is not reset on every write
	// either: when it fires, it pings only if nothing was written for a
	// whole heartbeat, else waits out the rest.
	stop := context.AfterFunc(ctx, sub.Kick)
	defer stop()
	var heartbeatDue atomic.Bool
	heartbeat := time.AfterFunc(s.cfg.Heartbeat, func() {
		heartbeatDue.Store(true)
		sub.Kick()
	})
	defer heartbeat.Stop()
	lastWrite := time.Now()
	var batch [][]byte
	synced := false
	for {
		for {
			var caughtUp bool
			batch, caughtUp = sub.Next(batch[:0], replayBatch)
			if len(batch) > 0 {
				if err := writeFrames(st, batch); err != nil {
					return err
				}
				lastWrite = time.Now()
			}
			if caughtUp {
				break
			}
		}
		if !synced {
			synced = true
			data, _ := json.Marshal(events.Synced{
				Head: events.EventID{Epoch: s.hub.Epoch(), Seq: sub.Cursor()}.String(),
				// whole seconds, rounded down: an agent that reads them
				// is never laxer than this broadcaster assumes
				MaxTokenLifetime: int64(s.cfg.MaxTokenLifetime / time.Second),
				ExpiryGrace:      int64(s.cfg.ExpiryGrace / time.Second),
			})
			if err := st.Send(sse.Event{Type: events.TypeSynced, Data: data}); err != nil {
				return err
			}
			lastWrite = time.Now()
			// a live subscriber gets an event or two at a time: keep a
			// small batch, not the one the replay grew
			batch = make([][]byte, 0, 4)
		}
		<-sub.Wake()
		select {
		case <-sub.Done():
			return errSlow
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if heartbeatDue.Swap(false) {
			if idle := time.Since(lastWrite); idle < s.cfg.Heartbeat {
				heartbeat.Reset(s.cfg.Heartbeat - idle)
				continue
			}
			if !s.follower.current() {
				// a ping promises that this node is current: stay
				// silent, so that the subscriber turns stale and moves
				// to another node, until it is again
				heartbeat.Reset(s.cfg.Heartbeat)
				continue
			}
			if err := st.Comment("ping"); err != nil {
				return err
			}
			lastWrite = time.Now()
			heartbeat.Reset(s.cfg.Heartbeat)
		}
	}
}

// writeFrames writes frames in as few writes as a pooled buffer allows.
func writeFrames(st frameWriter, frames [][]byte) error {
	if len(frames) == 1 {
		return st.SendRaw(frames[0])
	}
	bp := writeBuffers.Get().(*[]byte)
	defer writeBuffers.Put(bp)
	buf := (*bp)[:0]
	for _, f := range frames {
		buf = append(buf, f...)
		if len(buf) >= replayFlushBytes {
			if err := st.SendRaw(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	*bp = buf
	if len(buf) == 0 {
		return nil
	}
	return st.SendRaw(buf)
}

// resumePoint maps a client's Last-Event-ID to the sequence to replay after.
// An ID a little ahead of this node (the client came from a node that was
// further along) is waited for; anything else unknown is an error: the
// client gets a reset.
func (s *Server) resumePoint(ctx context.Context, id events.EventID) (uint64, error) {
	after, err := s.hub.Resume(id)
	if err == nil || id.Epoch != s.hub.Epoch() {
		return after, err
	}
	st, serr := s.store.State(ctx)
	if serr != nil || id.Seq > st.LastSeq {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, DefaultResumeWait)
	defer cancel()
	if s.hub.WaitApplied(wctx, id.Seq) != nil {
		return 0, err
	}
	return s.hub.Resume(id)
}

func (s *Server) allowedOrigin(r *http.Request) string {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.cfg.CORSOrigins) == 0 {
		return ""
	}
	if slices.Contains(s.cfg.CORSOrigins, "*") {
		return "*"
	}
	if slices.Contains(s.cfg.CORSOrigins, origin) {
		return origin
	}
	return ""
}

func (s *Server) handleEventsPreflight(w http.ResponseWriter, r *http.Request) {
	origin := s.allowedOrigin(r)
	if origin == "" {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET")
	h.Set("Access-Control-Allow-Headers", "Last-Event-ID, Authorization, Cache-Control")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
