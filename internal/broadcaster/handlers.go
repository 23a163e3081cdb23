package broadcaster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode"

	"github.com/revocast/revocast/api"
	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/ui"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// applyWait bounds how long a write waits for this node's mirror to show it
// after the log acknowledged it. The write is durable either way.
const applyWait = 2 * time.Second

// catchUpWait bounds how long a read waits for this node to catch up with
// the stream (catchUp).
const catchUpWait = 3 * time.Second

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 200

func (s *Server) routes() http.Handler {
	eventsRole := auth.RoleReader
	if s.cfg.PublicEvents {
		eventsRole = auth.RoleNone
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/revocations", s.access(auth.RoleRevoker, true, s.handlePost))
	mux.HandleFunc("GET /v1/revocations", s.access(auth.RoleReader, true, s.handleList))
	mux.HandleFunc("GET /v1/revocations/{key}", s.access(auth.RoleReader, true, s.handleGet))
	mux.HandleFunc("DELETE /v1/revocations/{key}", s.access(auth.RoleRevoker, true, s.handleLift))
	mux.HandleFunc("POST /v1/revoke", s.handleRevokeToken)
	// the stream is not rate limited: after a restart every agent
	// reconnects at once, and EventSource gives up for good on a 429
	mux.HandleFunc("GET /v1/events", s.access(eventsRole, false, s.handleEvents))
	mux.HandleFunc("OPTIONS /v1/events", s.handleEventsPreflight)
	mux.HandleFunc("GET /v1/openapi.json", s.handleOpenAPI)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", s.metrics.handler())
	// the dashboard's files are public: they hold no data, and the page
	// reads everything from the API with the user's credential
	mux.Handle("GET /ui/", ui.Handler()) // ui.Prefix, as a literal for the OpenAPI test
	return s.recoverPanics(mux)
}

// apiError is the body of every error answer: a short message for the
// client, and the field at fault when there is one.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	writeJSON(w, status, apiError{Error: msg, Field: field})
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, status int, reason, msg, field string) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	s.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "status", status,
		"reason", reason, "field", field, "remote", r.RemoteAddr)
	writeError(w, status, msg, field)
}

func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Warn("write not acknowledged", "path", r.URL.Path, "err", err, "remote", r.RemoteAddr)
	s.metrics.rejected.WithLabelValues("unavailable").Inc()
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable,
		"the revocation log did not acknowledge the write in time; retry (with the same Idempotency-Key, if you sent one)", "")
}

func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error", "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// idempotencyKey reads the Idempotency-Key header. The stored message ID is
// scoped to the actor so that two clients cannot collide on a key.
func idempotencyKey(r *http.Request) (string, bool) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return "", true
	}
	if len(k) > maxIdempotencyKey {
		return "", false
	}
	for _, c := range k {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			return "", false
		}
	}
	return actor(r) + "/" + k, true
}

// Write answers are built from the JSON each revocation was stored with
// (events.AppendWithID splices in its id and seq) rather than encoded again:
// a batch answer holds up to --max-batch of them. Their shape, which the
// OpenAPI document describes (WriteResult, BatchAnswer), is the stored
// revocation plus "status" (created, duplicate, expired or failed) and,
// when failed, "error"; a batch answer adds the counts.

// appendResult appends one write result to dst.
func appendResult(dst, stored []byte, id string, seq uint64, status, errMsg string) []byte {
	start := len(dst)
	ok := false
	if id != "" {
		dst, ok = events.AppendWithID(dst, stored, id, seq)
	}
	if !ok {
		dst = append(dst[:start], stored...)
	}
	dst = dst[:len(dst)-1] // the closing brace of the object
	dst = append(dst, `,"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, '"')
	if errMsg != "" {
		msg, _ := json.Marshal(errMsg)
		dst = append(dst, `,"error":`...)
		dst = append(dst, msg...)
	}
	return append(dst, '}')
}

func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// bodyReadTimeout bounds reading a request body. The server has no
// ReadTimeout (it would cut SSE streams), so handlers that read set it.
const bodyReadTimeout = 30 * time.Second

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.reject(w, r, http.StatusRequestEntityTooLarge, "body_too_large",
				"body larger than "+strconv.FormatInt(s.cfg.MaxBodyBytes, 10)+" bytes; split it into batches", "")
			return nil, false
		}
		s.reject(w, r, http.StatusBadRequest, "bad_body", "cannot read body", "")
		return nil, false
	}
	return body, true
}

func (s *Server) handlePost(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	idem, ok := idempotencyKey(r)
	if !ok {
		s.reject(w, r, http.StatusBadRequest, "invalid", "Idempotency-Key must be 1 to 200 printable ASCII characters", "Idempotency-Key")
		return
	}
	revs, batch, err := events.DecodeRequest(body, s.cfg.MaxBatch)
	if err != nil {
		s.rejectInvalid(w, r, err)
		return
	}
	now := time.Now()
	who := actor(r)
	for i := range revs {
		revs[i].Actor = who
		if err := s.policy.Prepare(&revs[i], now); err != nil {
			var fe *events.FieldError
			if batch && errors.As(err, &fe) {
				err = fe.WithPrefix("revocations[" + strconv.Itoa(i) + "]")
			}
			s.rejectInvalid(w, r, err)
			return
		}
	}
	if batch {
		s.postBatch(w, r, revs, idem, start)
		return
	}
	s.postOne(w, r, &revs[0], idem, start)
}

func (s *Server) rejectInvalid(w http.ResponseWriter, r *http.Request, err error) {
	var fe *events.FieldError
	if errors.As(err, &fe) {
		s.reject(w, r, http.StatusBadRequest, "invalid", fe.Error(), fe.Field)
		return
	}
	s.reject(w, r, http.StatusBadRequest, "invalid", err.Error(), "")
}

func (s *Server) postOne(w http.ResponseWriter, r *http.Request, rev *events.Revocation, idem string, start time.Time) {
	if rev.Expired(time.Now(), 0) {
		s.log.Info("revocation already expired, not published", "key", rev.Key, "actor", rev.Actor)
		stored, _ := events.MarshalStored(rev)
		writeRawJSON(w, http.StatusOK, appendResult(nil, stored, "", 0, "expired", ""))
		return
	}
	msgID := idem
	if msgID == "" {
		msgID = natslog.NewIdempotencyKey()
	}
	p, err := s.store.Publish(r.Context(), rev, msgID)
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	s.metrics.publishLatency.Observe(time.Since(start).Seconds())
	stored, status, code := p.Stored, "created", http.StatusCreated
	if p.Duplicate {
		status, code = "duplicate", http.StatusOK
		if orig, err := s.store.GetSeq(r.Context(), p.Seq); err == nil && orig.Revocation != nil {
			if orig.Revocation.Key != rev.Key {
				s.reject(w, r, http.StatusConflict, "idempotency_conflict",
					"Idempotency-Key was already used for a different revocation", "Idempotency-Key")
				return
			}
			stored = orig.Data
		}
	} else {
		s.metrics.published.WithLabelValues(events.TypeRevoke).Inc()
		s.audit(r, "revoked", rev.Key, rev.Reason, p.Seq)
	}
	id := events.EventID{Epoch: s.store.Epoch(), Seq: p.Seq}.String()
	s.waitApplied(r.Context(), p.Seq)
	w.Header().Set("Location", "/v1/revocations/"+rev.Key)
	writeRawJSON(w, code, appendResult(nil, stored, id, p.Seq, status, ""))
}

func (s *Server) writeFailed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client left; nothing to answer
	}
	// The request was valid: whatever kept the log from acknowledging it
	// (no leader, no quorum, NATS unreachable, a timeout) is on our side and
	// passes; the client retries, with its Idempotency-Key.
	s.unavailable(w, r, err)
}

func (s *Server) postBatch(w http.ResponseWriter, r *http.Request, revs []events.Revocation, idem string, start time.Time) {
	items := make([]natslog.Item, 0, len(revs))
	index := make([]int, 0, len(revs))
	now := time.Now()
	for i := range revs {
		if revs[i].Expired(now, 0) {
			continue
		}
		// Without an Idempotency-Key the items get no message ID: a retry
		// of the whole batch stores its items again anyway, and storing a
		// revocation twice replaces it with itself (one subject per key).
		var msgID string
		if idem != "" {
			// the item's key is part of the ID: a reused Idempotency-Key
			// with other content stores the new items instead of
			// answering "duplicate" for revocations never stored
			msgID = idem + "/" + strconv.Itoa(i) + "/" + revs[i].Key
		}
		items = append(items, natslog.Item{Revocation: &revs[i], IdemKey: msgID})
		index = append(index, i)
	}
	results := s.store.PublishBatch(r.Context(), items)

	var created, duplicates, expired, failed int
	var maxSeq uint64
	epoch := s.store.Epoch()
	buf := make([]byte, 0, 64+len(revs)*320)
	buf = append(buf, `{"revocations":[`...)
	next := 0 // the next published item, in results
	for i := range revs {
		if i > 0 {
			buf = append(buf, ',')
		}
		if next == len(index) || index[next] != i {
			stored, _ := events.MarshalStored(&revs[i])
			buf = appendResult(buf, stored, "", 0, "expired", "")
			expired++
			continue
		}
		res := results[next]
		next++
		switch {
		case res.Err != nil:
			buf = appendResult(buf, res.Stored, "", 0, "failed",
				"not acknowledged by the revocation log; retry the batch (with the same Idempotency-Key, if you sent one)")
			failed++
			s.log.Warn("batch item not acknowledged", "key", revs[i].Key, "err", res.Err)
		case res.Duplicate:
			buf = appendResult(buf, res.Stored, events.EventID{Epoch: epoch, Seq: res.Seq}.String(), res.Seq, "duplicate", "")
			duplicates++
			maxSeq = max(maxSeq, res.Seq)
		default:
			buf = appendResult(buf, res.Stored, events.EventID{Epoch: epoch, Seq: res.Seq}.String(), res.Seq, "created", "")
			created++
			maxSeq = max(maxSeq, res.Seq)
			s.audit(r, "revoked", revs[i].Key, revs[i].Reason, res.Seq)
		}
	}
	buf = append(buf, `],"created":`...)
	buf = strconv.AppendInt(buf, int64(created), 10)
	buf = append(buf, `,"duplicates":`...)
	buf = strconv.AppendInt(buf, int64(duplicates), 10)
	buf = append(buf, `,"expired":`...)
	buf = strconv.AppendInt(buf, int64(expired), 10)
	buf = append(buf, `,"failed":`...)
	buf = strconv.AppendInt(buf, int64(failed), 10)
	buf = append(buf, '}')

	s.metrics.published.WithLabelValues(events.TypeRevoke).Add(float64(created))
	s.metrics.publishLatency.Observe(time.Since(start).Seconds())
	if maxSeq > 0 {
		s.waitApplied(r.Context(), maxSeq)
	}
	switch {
	case failed > 0:
		w.Header().Set("Retry-After", "1")
		writeRawJSON(w, http.StatusServiceUnavailable, buf)
	case created > 0:
		writeRawJSON(w, http.StatusCreated, buf)
	default: // nothing new: all duplicates or expired, as a single POST
		writeRawJSON(w, http.StatusOK, buf)
	}
}

func (s *Server) audit(r *http.Request, action, key, reason string, seq uint64) {
	s.log.Info(action, "audit", true, "actor", actor(r), "key", key, "reason", reason,
		"seq", seq, "remote", r.RemoteAddr)
}

// waitApplied lets a writer's answer imply that this node's subscribers and
// listings have the event.
func (s *Server) waitApplied(ctx context.Context, seq uint64) {
	ctx, cancel := context.WithTimeout(ctx, applyWait)
	defer cancel()
	if err := s.hub.WaitApplied(ctx, seq); err != nil && ctx.Err() == context.DeadlineExceeded {
		s.log.Warn("acknowledged write not yet fanned out", "seq", seq)
		s.restartFollow("an acknowledged write did not reach the consumer")
	}
}

// catchUp waits, for at most catchUpWait, until this node's mirror holds
// everything the stream stored when the request came in, so that a reader
// sees every write acknowledged before it asked, by any node of a cluster
// (the node that took a write has it already: see waitApplied). Messages
// that expired in between are skipped by asking the leader for the next
// stored one. A consumer that does not move for a second is restarted, as
// for a write that does not come back (a consumer created while a cluster
// forms can stall).
func (s *Server) catchUp(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	st, err := s.store.State(ctx)
	if err != nil || st.Epoch != s.hub.Epoch() {
		if err != nil {
			s.log.Warn("answering a read without knowing whether this node is behind the stream", "err", err)
		}
		return
	}
	target := st.LastSeq
	for first := true; ; first = false {
		head := s.hub.Head()
		next, ok, err := s.store.NextAfter(ctx, head)
		if err != nil {
			s.log.Warn("answering a read without knowing whether this node is behind the stream", "head", head, "stream_last_seq", st.LastSeq, "err", err)
			return
		}
		if first && ok {
			// the leader answered this; the position may have been read
			// from a replica that lags it
			target = max(target, next)
		}
		if !ok || next > target {
			return
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		err = s.hub.WaitApplied(wctx, next)
		wcancel()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			s.log.Warn("answering a read before this node caught up with the stream", "head", head, "stream_last_seq", st.LastSeq)
			return
		}
		s.restartFollow("a read found this node behind the stream") // at most once a second
	}
}

type liftAnswer struct {
	Key    string `json:"key"`
	ID     string `json:"id"`
	Seq    uint64 `json:"seq"`
	Status string `json:"status"` // lifted or duplicate
}

func (s *Server) handleLift(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !events.ValidKey(key) {
		s.reject(w, r, http.StatusBadRequest, "invalid", "key: must be the 32 hex digits returned when the revocation was created", "key")
		return
	}
	idem, ok := idempotencyKey(r)
	if !ok {
		s.reject(w, r, http.StatusBadRequest, "invalid", "Idempotency-Key must be 1 to 200 printable ASCII characters", "Idempotency-Key")
		return
	}
	reason := r.URL.Query().Get("reason")
	if len(reason) > events.MaxReasonLength {
		s.reject(w, r, http.StatusBadRequest, "invalid", "reason: too long", "reason")
		return
	}
	p, err := s.store.Lift(r.Context(), key, actor(r), reason, idem)
	if errors.Is(err, natslog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no live revocation with this key", "key")
		return
	}
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	status := "lifted"
	if p.Duplicate {
		status = "duplicate"
	} else {
		s.metrics.published.WithLabelValues(events.TypeLift).Inc()
		s.audit(r, "lifted", key, reason, p.Seq)
	}
	s.waitApplied(r.Context(), p.Seq)
	writeJSON(w, http.StatusOK, liftAnswer{Key: key, ID: events.EventID{Epoch: s.store.Epoch(), Seq: p.Seq}.String(), Seq: p.Seq, Status: status})
}

type listAnswer struct {
	Revocations []json.RawMessage `json:"revocations"`
	// Next is the cursor for the following page (the after parameter);
	// absent on the last page.
	Next string `json:"next,omitempty"`
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.catchUp(r.Context())
	limit := DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			s.reject(w, r, http.StatusBadRequest, "invalid", "limit: must be 1 to "+strconv.Itoa(MaxListLimit), "limit")
			return
		}
		limit = n
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.reject(w, r, http.StatusBadRequest, "invalid", "after: must be the next cursor of a previous page", "after")
			return
		}
		after = n
	}
	type filter struct {
		name, value string
		needle      []byte
	}
	var filters []filter
	for _, name := range []string{"jti", "sub", "iss", "kid"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		if len(v) > events.MaxValueLength {
			s.reject(w, r, http.StatusBadRequest, "invalid", name+": too long", name)
			return
		}
		enc, _ := json.Marshal(v)
		filters = append(filters, filter{name, v, append([]byte(`"`+name+`":`), enc...)})
	}
	answer := listAnswer{Revocations: []json.RawMessage{}}
	var lastSeq uint64
	more := false
	s.hub.Revocations(after, func(seq uint64, data []byte) bool {
		for _, f := range filters {
			// cheap test on the encoded form first; decode only candidates
			if !bytes.Contains(data, f.needle) {
				return true
			}
		}
		if len(filters) > 0 {
			var rev events.Revocation
			if json.Unmarshal(data, &rev) != nil {
				return true
			}
			for _, f := range filters {
				got := map[string]string{"jti": rev.JTI, "sub": rev.Sub, "iss": rev.Iss, "kid": rev.Kid}[f.name]
				if got != f.value {
					return true
				}
			}
		}
		if len(answer.Revocations) == limit {
			more = true
			return false
		}
		answer.Revocations = append(answer.Revocations, slices.Clone(data))
		lastSeq = seq
		return true
	})
	if more {
		answer.Next = strconv.FormatUint(lastSeq, 10)
	}
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !events.ValidKey(key) {
		s.reject(w, r, http.StatusBadRequest, "invalid", "key: must be the 32 hex digits returned when the revocation was created", "key")
		return
	}
	s.catchUp(r.Context())
	data, ok := s.hub.Get(key)
	if !ok {
		writeError(w, http.StatusNotFound, "no live revocation with this key", "key")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(data, '\n')) // copies: hub.Get clips the shared bytes' capacity
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(api.OpenAPI)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the body of /readyz.
type readiness struct {
	Status string `json:"status"`
	Head   string `json:"head,omitempty"`
	// Server is this node's NATS server name; StreamLeader the server
	// leading the stream (in a cluster), when known.
	Server       string `json:"server,omitempty"`
	StreamLeader string `json:"stream_leader,omitempty"`
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ans := readiness{Server: s.cfg.NATS.ServerName}
	select {
	case <-s.ready:
	default:
		ans.Status = "catching up with the revocation log"
		writeJSON(w, http.StatusServiceUnavailable, ans)
		return
	}
	if !s.store.Healthy() {
		ans.Status = "revocation log unreachable"
		writeJSON(w, http.StatusServiceUnavailable, ans)
		return
	}
	ans.Status, ans.Head = "ready", s.hub.HeadID()
	if r.URL.Query().Has("leader") {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		ans.StreamLeader, _ = s.store.StreamLeader(ctx)
		cancel()
	}
	writeJSON(w, http.StatusOK, ans)
}
