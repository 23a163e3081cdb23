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
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 200

func (s *Server) routes() http.Handler {
	eventsRole := auth.RoleReader
	if s.cfg.PublicEvents {
		eventsRole = auth.RoleNone
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/revocations", s.access(auth.RoleRevoker, true, s.jsonBody(s.handlePost)))
	mux.HandleFunc("GET /v1/revocations", s.access(auth.RoleReader, true, s.handleList))
	mux.HandleFunc("GET /v1/revocations/{key}", s.access(auth.RoleReader, true, s.handleGet))
	mux.HandleFunc("DELETE /v1/revocations/{key}", s.access(auth.RoleRevoker, true, s.handleLift))
	mux.HandleFunc("POST /v1/revoke", s.handleRevokeToken)
	// the stream is not rate limited: after a restart every agent
	// reconnects at once, and EventSource gives up for good on a 429
	mux.HandleFunc("GET /v1/events", s.access(eventsRole, false, s.handleEvents))
	mux.HandleFunc("OPTIONS /v1/events", s.handleEventsPreflight)
	// reports come from the agents, with the stream's credentials; like
	// the stream they are not rate limited (a thousand agents report at
	// once after every event)
	mux.HandleFunc("POST /v1/agents/applied", s.access(eventsRole, false, s.handleApplied))
	mux.HandleFunc("GET /v1/agents", s.access(auth.RoleReader, true, s.handleAgents))
	mux.HandleFunc("GET /v1/openapi.json", s.handleOpenAPI)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", s.metrics.handler())
	// the dashboard's files are public: they hold no data, and the page
	// reads everything from the API with the user's credential
	mux.Handle("GET /ui/", ui.Handler()) // ui.Prefix, as a literal for the OpenAPI test
	return s.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			// 404 or 405: do not wait for a body nobody will read
			closeAfter(w)
		}
		mux.ServeHTTP(w, r)
	}))
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

// closeAfter ends the connection after a refusal: net/http would otherwise
// read (up to 256 KiB of) a body nobody wants, before answering and again
// when the request ends, and keep the connection of a client that is not
// welcome. The read deadline passes at once, so that whatever of the body
// is still unread is given up on (the answer is written all the same).
func closeAfter(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	writeJSON(w, status, apiError{Error: msg, Field: field})
}

// reject answers a refusal of the request's content (400, 409, 413) and
// writes its audit line, like refuse.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, status int, reason, msg, field string) {
	s.refuse(w, r, status, reason, msg, field, nil)
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
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error", "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Idempotency. A client makes a write safe to retry with an
// Idempotency-Key header. The key is scoped to the caller, the kind of its
// credential and its name (the API key "ops" and the operator JWT "ops"
// have different keys), and stands for one request: its operation (a
// revocation, a batch, a lift, an RFC 7009 revocation) and its content.
// The same request again gets the first answer ("duplicate", with what the
// first one stored); anything else with the same key gets 409 and stores
// nothing, as does a retry whose first answer cannot be given again because
// what it stored has since been replaced, lifted or has expired. A write is
// never answered 2xx unless it is stored.
//
// The record is the log itself, so that a retry may reach any node: the
// key becomes the message ID of the request's first message
// (eventlog.RequestID), which the log stores at most once per duplicate
// window, and every message of the request carries the request's
// fingerprint (eventlog.RequestFingerprint), which a duplicate is checked
// against (eventlog.Request). After the duplicate window (2 minutes) the key
// is forgotten and a request with it is new.

// Operations: the namespaces of a request's fingerprint.
const (
	opRevoke      = "revoke"
	opRevokeBatch = "revoke-batch"
	opLift        = "lift"
	opRevokeToken = "revoke-token"
)

// idempotencyKey reads the Idempotency-Key header: "" when there is none,
// ok false when it is malformed.
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
	return k, true
}

// logRequest is the log's view of a client request with the Idempotency-Key
// key ("": none) of caller p.
func logRequest(p auth.Principal, key, op string, content ...[]byte) eventlog.Request {
	if key == "" {
		return eventlog.Request{}
	}
	return eventlog.Request{
		ID:          eventlog.RequestID(p.Kind, p.Name, key),
		Fingerprint: eventlog.RequestFingerprint(op, content...),
	}
}

// conflict answers a reused Idempotency-Key (eventlog.ErrConflict).
func (s *Server) conflict(w http.ResponseWriter, r *http.Request, err error) {
	msg := "Idempotency-Key was already used for a different request"
	var ce *eventlog.ConflictError
	if errors.As(err, &ce) {
		msg = ce.Reason
	}
	s.reject(w, r, http.StatusConflict, "idempotency_conflict", msg, "Idempotency-Key")
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
	_, _ = w.Write(append(body, '\n'))
}

// readBody reads a request body, within the server's read timeout (which
// runs from the request's first byte).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
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
	wait, ok := s.waitParam(w, r)
	if !ok {
		return
	}
	ctx := context.WithValue(r.Context(), waitKey{}, wait)
	r = r.WithContext(ctx)
	revs, batch, err := events.DecodeRequest(body, s.cfg.MaxBatch)
	if err != nil {
		s.rejectInvalid(w, r, err)
		return
	}
	// the request as decoded, before the server's defaults: the same
	// request posted again has the same fingerprint, however its JSON is
	// spelled
	var req eventlog.Request
	if idem != "" {
		op, content := opRevoke, any(&revs[0])
		if batch {
			op, content = opRevokeBatch, revs
		}
		canonical, err := json.Marshal(content)
		if err != nil {
			s.rejectInvalid(w, r, err)
			return
		}
		req = logRequest(principal(r), idem, op, canonical)
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
		s.postBatch(w, r, revs, req, start)
		return
	}
	s.postOne(w, r, &revs[0], req, start)
}

func (s *Server) rejectInvalid(w http.ResponseWriter, r *http.Request, err error) {
	var fe *events.FieldError
	if errors.As(err, &fe) {
		s.reject(w, r, http.StatusBadRequest, "invalid", fe.Error(), fe.Field)
		return
	}
	s.reject(w, r, http.StatusBadRequest, "invalid", err.Error(), "")
}

func (s *Server) postOne(w http.ResponseWriter, r *http.Request, rev *events.Revocation, req eventlog.Request, start time.Time) {
	// Stored until expires_at + G: agents accept a token up to their
	// leeway (below G) past its exp, and enforce revocations as long.
	if rev.Expired(time.Now(), s.cfg.ExpiryGrace) {
		s.log.Info("revocation expired more than the expiry grace ago, not published", "key", rev.Key, "actor", rev.Actor)
		stored, _ := events.MarshalStored(rev)
		writeRawJSON(w, http.StatusOK, appendResult(nil, stored, "", 0, "expired", ""))
		return
	}
	p, err := s.store.PublishRequest(r.Context(), rev, req)
	if errors.Is(err, eventlog.ErrConflict) {
		s.conflict(w, r, err)
		return
	}
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	s.metrics.publishLatency.Observe(time.Since(start).Seconds())
	status, code := "created", http.StatusCreated
	if p.Duplicate {
		// p.Stored is what the first request stored
		status, code = "duplicate", http.StatusOK
	} else {
		s.fleet.acknowledged(p.Seq, time.Now())
		s.metrics.published.WithLabelValues(events.TypeRevoke).Inc()
		s.audit(r, "revoked", rev.Key, rev.Reason, p.Seq)
	}
	id := events.EventID{Epoch: s.store.Epoch(), Seq: p.Seq}.String()
	s.follower.waitApplied(r.Context(), p.Seq)
	w.Header().Set("Location", "/v1/revocations/"+rev.Key)
	writeRawJSON(w, code, s.withEnforcement(r, appendResult(nil, p.Stored, id, p.Seq, status, ""), p.Seq))
}

// maxWait bounds POST /v1/revocations?wait=.
const maxWait = 5 * time.Minute

// waitKey carries the wait parameter of a write in its context.
type waitKey struct{}

// waitParam reads ?wait=<duration> (Go syntax: 500ms, 10s, 2m).
func (s *Server) waitParam(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxWait {
		s.reject(w, r, http.StatusBadRequest, "invalid", "wait: a duration from 0s to 5m, such as 10s", "wait")
		return 0, false
	}
	return d, true
}

// withEnforcement waits, when the request asked to (?wait=), until every
// connected agent applied seq or the wait is over, and adds
// "enforcement" to the answer object.
func (s *Server) withEnforcement(r *http.Request, obj []byte, seq uint64) []byte {
	wait, ok := r.Context().Value(waitKey{}).(time.Duration)
	if !ok || !r.URL.Query().Has("wait") {
		return obj
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	return appendEnforcement(obj, s.waitEnforced(ctx, seq))
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

// postBatch stores a batch. With an Idempotency-Key, the request's own
// message ID goes to its first item that has not expired, published alone
// first: the request that stores it owns the key, and a request with other
// content is refused (409) before anything of it is stored. The other items
// follow, pipelined, under IDs derived from the request's ID, the sequence
// of that first message (the same for every retry of the request within
// the duplicate window, and for no other request) and their index.
func (s *Server) postBatch(w http.ResponseWriter, r *http.Request, revs []events.Revocation, req eventlog.Request, start time.Time) {
	results := make([]*eventlog.ItemResult, len(revs)) // nil: expired
	now := time.Now()
	var pending []int // the items still to publish
	for i := range revs {
		if !revs[i].Expired(now, s.cfg.ExpiryGrace) {
			pending = append(pending, i)
		}
	}
	idPrefix := ""
	if req.ID != "" && len(pending) > 0 {
		first := req
		first.Item = pending[0]
		p, err := s.store.PublishRequest(r.Context(), &revs[pending[0]], first)
		switch {
		case errors.Is(err, eventlog.ErrConflict):
			s.conflict(w, r, err)
			return
		case err != nil:
			// nothing of this request is known to be stored
			for _, i := range pending {
				stored, _ := events.MarshalStored(&revs[i])
				results[i] = &eventlog.ItemResult{Published: eventlog.Published{Stored: stored}, Err: err}
			}
			pending = nil
		default:
			owner := pending[0]
			if p.Duplicate && p.Item >= 0 && p.Item < len(revs) {
				owner = p.Item // the first attempt's first item
			}
			results[owner] = &eventlog.ItemResult{Published: p}
			pending = slices.DeleteFunc(pending, func(i int) bool { return i == owner })
			idPrefix = req.ID + "/" + strconv.FormatUint(p.Seq, 10) + "/"
		}
	}
	items := make([]eventlog.Item, len(pending))
	for k, i := range pending {
		// Without an Idempotency-Key the items get no message ID: a retry
		// of the whole batch stores its items again anyway, and storing a
		// revocation twice replaces it with itself (one subject per key).
		items[k] = eventlog.Item{Revocation: &revs[i]}
		if idPrefix != "" {
			items[k].Request = eventlog.Request{ID: idPrefix + strconv.Itoa(i), Fingerprint: req.Fingerprint, Item: i}
		}
	}
	for k, res := range s.store.PublishBatch(r.Context(), items) {
		results[pending[k]] = &res
	}

	var created, duplicates, expired, failed int
	var maxSeq uint64
	epoch := s.store.Epoch()
	buf := make([]byte, 0, 64+len(revs)*320)
	buf = append(buf, `{"revocations":[`...)
	for i := range revs {
		if i > 0 {
			buf = append(buf, ',')
		}
		res := results[i]
		switch {
		case res == nil:
			stored, _ := events.MarshalStored(&revs[i])
			buf = appendResult(buf, stored, "", 0, "expired", "")
			expired++
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
		if created > 0 {
			s.fleet.acknowledged(maxSeq, time.Now())
		}
		s.follower.waitApplied(r.Context(), maxSeq)
		buf = s.withEnforcement(r, buf, maxSeq)
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
	req := logRequest(principal(r), idem, opLift, []byte(key), []byte(reason))
	p, err := s.store.LiftRequest(r.Context(), key, actor(r), reason, req)
	if errors.Is(err, eventlog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no live revocation with this key", "key")
		return
	}
	if errors.Is(err, eventlog.ErrConflict) {
		s.conflict(w, r, err)
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
		s.fleet.acknowledged(p.Seq, time.Now())
		s.metrics.published.WithLabelValues(events.TypeLift).Inc()
		s.audit(r, "lifted", key, reason, p.Seq)
	}
	s.follower.waitApplied(r.Context(), p.Seq)
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
	s.follower.catchUpForRead(r.Context())
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
	s.follower.catchUpForRead(r.Context())
	data, ok := s.hub.Get(key)
	if !ok {
		writeError(w, http.StatusNotFound, "no live revocation with this key", "key")
		return
	}
	e, _ := s.fleet.enforcementOf(revocationSeq(data))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(appendEnforcement(data, e), '\n')) // appendEnforcement copies the shared bytes
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(api.OpenAPI)
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
	ans := readiness{Server: s.desc.Node}
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
