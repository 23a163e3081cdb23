package broadcaster

// Receipts: agents name themselves when they subscribe (the Revocast-Agent
// header) and report the last event they applied to their denylist (POST
// /v1/agents/applied). Each node keeps its own subscribers in memory and
// writes their records to a NATS key-value bucket, coalesced, so that every
// node of a cluster sees every agent; it reads the others' records by
// watching the bucket. GET /v1/agents, the enforcement of a revocation and
// POST ?wait= are answered from that merged view, in memory.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// Defaults of the receipts.
const (
	// AgentHeader is the request header an agent names itself with:
	// "<name>; instance=<id>".
	AgentHeader = "Revocast-Agent"
	// DefaultAgentStaleness: an agent that reported nothing for this long
	// is not fresh (the agent's own default maximum staleness).
	DefaultAgentStaleness = 60 * time.Second
	// DefaultAgentRetention is how long a disconnected agent stays listed
	// (and the bucket's TTL).
	DefaultAgentRetention = 5 * time.Minute
	// DefaultAgentFlush is how often a node writes the records that
	// changed to the bucket: other nodes see a report at most this late.
	DefaultAgentFlush = 500 * time.Millisecond
	// agentRefresh is how often a node rewrites the record of an agent that
	// is still connected; a record not rewritten for agentLost belongs to
	// a node that is gone, and its agent counts as disconnected.
	agentRefresh = 30 * time.Second
	agentLost    = 3 * agentRefresh
	// maxAgentName bounds the name an agent gives itself.
	maxAgentName = 128
	// historyLen is how many advances of an agent's position are kept, to
	// tell when it applied a given event.
	historyLen = 16
	// maxPendingEnforcement bounds the acknowledged events waiting to be
	// enforced everywhere (for the metric).
	maxPendingEnforcement = 4096
)

// advance is one step of an agent's applied position.
type advance struct {
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
}

// agentRecord is what the bucket holds for one agent instance, and what GET
// /v1/agents lists (Lag and Fresh computed when listed).
type agentRecord struct {
	Name           string     `json:"name"`
	Instance       string     `json:"instance"`
	Node           string     `json:"node"`
	ConnectedAt    time.Time  `json:"connected_at"`
	Connected      bool       `json:"connected"`
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
	Delivered      string     `json:"delivered,omitempty"`
	Applied        string     `json:"applied,omitempty"`
	ReportedAt     *time.Time `json:"reported_at,omitempty"`
	// SeenAt is when the node last wrote the record.
	SeenAt  time.Time `json:"seen_at"`
	History []advance `json:"history,omitempty"`
}

// localAgent is a subscriber of this node.
type localAgent struct {
	rec     agentRecord
	sub     *hub.Subscription // nil once disconnected
	conn    uint64            // which connection, when an instance reconnects
	applied events.EventID
	dirty   bool
	written time.Time // last write to the bucket
}

// fleet is the merged view.
type fleet struct {
	node      string
	staleness time.Duration
	retention time.Duration
	now       func() time.Time

	mu      sync.Mutex
	conns   uint64
	local   map[string]*localAgent    // by instance
	remote  map[string]agentRecord    // other nodes' records, by instance
	foreign map[string]*foreignReport // reports taken here for other nodes' agents
	changed chan struct{}             // closed and replaced on every change
	pending []pendingEnforcement      // acknowledged events, ascending seq
	// coveredAt is the time of the last report that reached the oldest
	// pending event; settle observes with it
	coveredAt time.Time
	settleDue chan struct{}           // signalled when pending gains an event
	epoch     func() uint64           // the stream's epoch
	head      func() uint64           // this node's head
	onLag     func(lag float64)       // observes applied lag per report
	onDone    func(seconds float64)   // observes ack → enforced everywhere
	gauge     func(connected float64) // sets agents connected
}

type pendingEnforcement struct {
	seq uint64
	at  time.Time
}

func newFleet(node string, staleness, retention time.Duration) *fleet {
	return &fleet{
		node: node, staleness: staleness, retention: retention, now: time.Now,
		local:     make(map[string]*localAgent),
		remote:    make(map[string]agentRecord),
		foreign:   make(map[string]*foreignReport),
		changed:   make(chan struct{}),
		settleDue: make(chan struct{}, 1),
		epoch:     func() uint64 { return 0 },
		head:      func() uint64 { return 0 },
		onLag:     func(float64) {}, onDone: func(float64) {}, gauge: func(float64) {},
	}
}

// validInstance: 1 to 64 letters, digits, '-' or '_'.
func validInstance(id string) bool { return len(id) <= 64 && eventlog.ValidPositionKey(id) }

// reportKeyPrefix prefixes the bucket key of a report that reached a node
// other than the one the agent streams from (behind a load balancer the
// report's connection may land anywhere); the streaming node takes it in.
const reportKeyPrefix = "r_"

// foreignReport is what a node holds of reports for an instance that
// streams from another node, and what it writes under reportKeyPrefix.
type foreignReport struct {
	Instance   string    `json:"instance"`
	Applied    string    `json:"applied"`
	ReportedAt time.Time `json:"reported_at"`
	Node       string    `json:"node"` // the node that took the report
	SeenAt     time.Time `json:"seen_at"`

	dirty bool
}

// parseAgentHeader reads "<name>; instance=<id>".
func parseAgentHeader(v string) (name, instance string, err error) {
	name, params, _ := strings.Cut(v, ";")
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxAgentName || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "", "", errors.New("name: 1 to 128 printable characters before the ';'")
	}
	for p := range strings.SplitSeq(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "instance") {
			instance = strings.Trim(strings.TrimSpace(val), `"`)
		}
	}
	if !validInstance(instance) {
		return "", "", errors.New("instance: 1 to 64 letters, digits, '-' or '_'")
	}
	return name, instance, nil
}

func (f *fleet) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// connect records a subscriber; the returned function records its end.
func (f *fleet) connect(name, instance string, sub *hub.Subscription) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns++
	conn, now := f.conns, f.now().UTC()
	la := &localAgent{
		rec:  agentRecord{Name: name, Instance: instance, Node: f.node, ConnectedAt: now, Connected: true},
		sub:  sub,
		conn: conn,
	}
	if old, ok := f.local[instance]; ok {
		// the same process reconnected: keep what it reported
		la.rec.Applied, la.rec.ReportedAt, la.rec.History, la.applied = old.rec.Applied, old.rec.ReportedAt, old.rec.History, old.applied
	} else if r, ok := f.remote[instance]; ok {
		la.rec.Applied, la.rec.ReportedAt, la.rec.History = r.Applied, r.ReportedAt, r.History
		la.applied, _ = events.ParseEventID(r.Applied)
	}
	la.dirty = true
	f.local[instance] = la
	f.countLocked()
	f.notifyLocked()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		cur, ok := f.local[instance]
		if !ok || cur.conn != conn {
			return
		}
		at := f.now().UTC()
		cur.sub, cur.rec.Connected, cur.rec.DisconnectedAt, cur.dirty = nil, false, &at, true
		cur.rec.Delivered = events.EventID{Epoch: f.epoch(), Seq: sub.Cursor()}.String()
		f.countLocked()
		f.notifyLocked()
	}
}

// errUnknownInstance: a report for an instance not subscribed here.
var errUnknownInstance = errors.New("no subscriber with this instance on this node")

// report records an agent's applied position.
func (f *fleet) report(instance string, applied events.EventID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now().UTC()
	la, ok := f.local[instance]
	if !ok || la.sub == nil {
		// an agent of another node, whose report came here: pass it on
		if r, ok := f.remote[instance]; ok && r.Connected {
			f.foreign[instance] = &foreignReport{Instance: instance, Applied: applied.String(), ReportedAt: now, Node: f.node, dirty: true}
			return nil
		}
		return errUnknownInstance
	}
	f.reportLocked(la, applied, now)
	return nil
}

// reportLocked records a position of a subscriber of this node.
func (f *fleet) reportLocked(la *localAgent, applied events.EventID, now time.Time) {
	la.rec.ReportedAt = &now
	epoch := f.epoch()
	if len(f.pending) > 0 && applied.Epoch == epoch && applied.Seq >= f.pending[0].seq {
		f.coveredAt = now
	}
	if applied != la.applied || la.rec.Applied == "" {
		if applied.Epoch != la.applied.Epoch || applied.Seq > la.applied.Seq {
			h := la.rec.History
			if applied.Epoch != la.applied.Epoch {
				h = h[:0]
			}
			if len(h) == historyLen {
				h = append(h[:0], h[1:]...)
			}
			la.rec.History = append(h, advance{Seq: applied.Seq, At: now})
		}
		la.applied = applied
		la.rec.Applied = applied.String()
	}
	la.dirty = true
	if applied.Epoch == epoch {
		head := f.head()
		if head >= applied.Seq {
			f.onLag(float64(head - applied.Seq))
		}
	}
	f.notifyLocked()
}

// remoteUpdate takes a record another node wrote.
func (f *fleet) remoteUpdate(key string, value []byte) {
	if strings.HasPrefix(key, reportKeyPrefix) {
		f.foreignUpdate(value)
		return
	}
	var r agentRecord
	if json.Unmarshal(value, &r) != nil || r.Node == f.node {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.remote[r.Instance]; ok && old.SeenAt.After(r.SeenAt) {
		return
	}
	f.remote[r.Instance] = r
	if len(f.pending) > 0 {
		if seq, ok := appliedSeq(&r, f.epoch()); ok && seq >= f.pending[0].seq {
			f.coveredAt = f.now()
		}
	}
	f.notifyLocked()
}

// foreignUpdate takes a report another node took for one of this node's
// subscribers.
func (f *fleet) foreignUpdate(value []byte) {
	var fr foreignReport
	if json.Unmarshal(value, &fr) != nil || fr.Node == f.node {
		return
	}
	applied, err := events.ParseEventID(fr.Applied)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	la, ok := f.local[fr.Instance]
	if !ok || la.sub == nil || (la.rec.ReportedAt != nil && !fr.ReportedAt.After(*la.rec.ReportedAt)) {
		return
	}
	if applied.Epoch == la.applied.Epoch && applied.Seq < la.applied.Seq {
		return // older than what it reported here
	}
	f.reportLocked(la, applied, fr.ReportedAt.UTC())
}

func (f *fleet) countLocked() {
	n := 0
	for _, la := range f.local {
		if la.sub != nil {
			n++
		}
	}
	f.gauge(float64(n))
}

// snapshotLocked is the merged view: one record per instance, the freshest
// (a connected record before a disconnected one, this node's before
// another's), with Delivered filled in for this node's subscribers.
func (f *fleet) snapshotLocked() []agentRecord {
	now := f.now()
	epoch := f.epoch()
	out := make(map[string]agentRecord, len(f.local)+len(f.remote))
	for inst, r := range f.remote {
		if now.Sub(r.SeenAt) > f.retention {
			delete(f.remote, inst)
			continue
		}
		if r.Connected && now.Sub(r.SeenAt) > agentLost {
			// its node stopped writing: gone with it
			at := r.SeenAt
			r.Connected, r.DisconnectedAt = false, &at
		}
		out[inst] = r
	}
	for inst, la := range f.local {
		if la.sub == nil && la.rec.DisconnectedAt != nil && now.Sub(*la.rec.DisconnectedAt) > f.retention {
			delete(f.local, inst)
			continue
		}
		r := la.rec
		if la.sub != nil {
			r.Delivered = events.EventID{Epoch: epoch, Seq: la.sub.Cursor()}.String()
		}
		if o, ok := out[inst]; ok && o.Connected && !r.Connected {
			continue
		}
		out[inst] = r
	}
	recs := make([]agentRecord, 0, len(out))
	for _, r := range out {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b agentRecord) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Instance, b.Instance)
	})
	return recs
}

// appliedSeq is the sequence a record has applied in this epoch, and
// whether it has one.
func appliedSeq(r *agentRecord, epoch uint64) (uint64, bool) {
	id, err := events.ParseEventID(r.Applied)
	if err != nil || id.Epoch != epoch {
		return 0, false
	}
	return id.Seq, true
}

// acknowledged notes an event the log acknowledged, for the metric of the
// time until every connected agent applied it.
func (f *fleet) acknowledged(seq uint64, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) >= maxPendingEnforcement {
		f.pending = f.pending[1:]
	}
	i, _ := slices.BinarySearchFunc(f.pending, seq, func(p pendingEnforcement, s uint64) int { return cmpU(p.seq, s) })
	f.pending = slices.Insert(f.pending, i, pendingEnforcement{seq: seq, at: at})
	select {
	case f.settleDue <- struct{}{}:
	default:
	}
}

// settleEvery is how often the events waiting to be enforced everywhere
// are looked at, while there are some: a minimum over every agent is paid
// per tick, not per report.
const settleEvery = 10 * time.Millisecond

// settleLoop observes the enforcement metric until ctx ends.
func (f *fleet) settleLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.settleDue:
		}
		t := time.NewTicker(settleEvery)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			f.mu.Lock()
			f.settleLocked()
			waiting = len(f.pending) > 0
			f.mu.Unlock()
		}
		t.Stop()
	}
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// settleLocked observes the acknowledged events every connected agent has
// now applied. It looks at this node's subscribers and the other nodes'
// connected ones: a minimum over at most a few thousand records.
func (f *fleet) settleLocked() {
	if len(f.pending) == 0 {
		return
	}
	epoch, now := f.epoch(), f.now()
	lowest, found := uint64(0), false
	consider := func(r *agentRecord) {
		seq, _ := appliedSeq(r, epoch)
		if !found || seq < lowest {
			lowest, found = seq, true
		}
	}
	for _, la := range f.local {
		if la.sub != nil {
			consider(&la.rec)
		}
	}
	for inst, r := range f.remote {
		if la, ok := f.local[inst]; ok && la.sub != nil {
			continue
		}
		if r.Connected && now.Sub(r.SeenAt) <= agentLost {
			consider(&r)
		}
	}
	if !found {
		return // nobody to enforce it: no figure
	}
	at := f.coveredAt
	if at.IsZero() {
		at = now
	}
	n := 0
	for _, p := range f.pending {
		if p.seq > lowest {
			break
		}
		f.onDone(max(0, at.Sub(p.at).Seconds()))
		n++
	}
	f.pending = f.pending[n:]
}

// agentName identifies an agent in answers.
type agentName struct {
	Name     string `json:"name"`
	Instance string `json:"instance"`
	Node     string `json:"node"`
}

// enforcement says how many connected agents applied the event at seq.
type enforcement struct {
	Agents        int         `json:"agents"`
	Applied       int         `json:"applied"`
	LastAppliedAt *time.Time  `json:"last_applied_at,omitempty"`
	Pending       []agentName `json:"pending"`
}

// enforcementOf computes the enforcement of the event at seq, and the
// channel closed at the next change.
func (f *fleet) enforcementOf(seq uint64) (enforcement, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	epoch := f.epoch()
	e := enforcement{Pending: []agentName{}}
	for _, r := range f.snapshotLocked() {
		if !r.Connected {
			continue
		}
		e.Agents++
		got, ok := appliedSeq(&r, epoch)
		if !ok || got < seq {
			e.Pending = append(e.Pending, agentName{Name: r.Name, Instance: r.Instance, Node: r.Node})
			continue
		}
		e.Applied++
		// when it applied seq: the first advance at or past it, provided
		// the one before was short of it
		for i, a := range r.History {
			if a.Seq < seq {
				continue
			}
			if i > 0 {
				at := a.At
				if e.LastAppliedAt == nil || at.After(*e.LastAppliedAt) {
					e.LastAppliedAt = &at
				}
			}
			break
		}
	}
	return e, f.changed
}

// agentView is one entry of GET /v1/agents.
type agentView struct {
	agentRecord
	Lag   *uint64 `json:"lag"`
	Fresh bool    `json:"fresh"`
}

func (f *fleet) list() []agentView {
	f.mu.Lock()
	defer f.mu.Unlock()
	epoch, head, now := f.epoch(), f.head(), f.now()
	recs := f.snapshotLocked()
	out := make([]agentView, len(recs))
	for i, r := range recs {
		v := agentView{agentRecord: r}
		v.History = nil
		if seq, ok := appliedSeq(&r, epoch); ok {
			lag := uint64(0)
			if head > seq {
				lag = head - seq
			}
			v.Lag = &lag
		}
		v.Fresh = r.Connected && r.ReportedAt != nil && now.Sub(*r.ReportedAt) <= f.staleness
		out[i] = v
	}
	return out
}

// flushRecords returns the records of this node to write to the bucket:
// the changed ones, and the connected ones not written for agentRefresh.
func (f *fleet) flushRecords() map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	epoch := f.epoch()
	var out map[string][]byte
	for inst, la := range f.local {
		if !la.dirty && (la.sub == nil || now.Sub(la.written) < agentRefresh) {
			continue
		}
		r := la.rec
		r.SeenAt = now.UTC()
		if la.sub != nil {
			r.Delivered = events.EventID{Epoch: epoch, Seq: la.sub.Cursor()}.String()
		}
		b, err := json.Marshal(&r)
		if err != nil {
			continue
		}
		if out == nil {
			out = make(map[string][]byte)
		}
		out[inst] = b
		la.dirty, la.written = false, now
	}
	for inst, fr := range f.foreign {
		if !fr.dirty {
			if now.Sub(fr.ReportedAt) > agentLost {
				delete(f.foreign, inst)
			}
			continue
		}
		fr.SeenAt = now.UTC()
		b, err := json.Marshal(fr)
		if err != nil {
			continue
		}
		if out == nil {
			out = make(map[string][]byte)
		}
		out[reportKeyPrefix+inst] = b
		fr.dirty = false
	}
	return out
}

// runFleet opens the bucket, then writes this node's records and reads the
// others' until ctx ends. Without the bucket the view is this node's own.
func (s *Server) runFleet(ctx context.Context) {
	pos, err := s.store.OpenPositions(ctx, s.cfg.AgentRetention)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("agent positions bucket unavailable: GET /v1/agents shows this node's agents only", "err", err)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := pos.Watch(ctx, s.fleet.remoteUpdate)
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("watching agent positions failed; again", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	})
	t := time.NewTicker(s.cfg.AgentFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
		recs := s.fleet.flushRecords()
		if len(recs) == 0 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := pos.PutAll(wctx, recs); err != nil && ctx.Err() == nil {
			s.log.Warn("cannot write agent positions", "count", len(recs), "err", err)
			s.fleet.markDirty(recs)
		}
		cancel()
	}
}

func (f *fleet) markDirty(recs map[string][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for inst := range recs {
		if la, ok := f.local[inst]; ok {
			la.dirty = true
		}
		if fr, ok := f.foreign[strings.TrimPrefix(inst, reportKeyPrefix)]; ok && strings.HasPrefix(inst, reportKeyPrefix) {
			fr.dirty = true
		}
	}
}

// appliedReport is the body of POST /v1/agents/applied.
type appliedReport struct {
	Instance string `json:"instance"`
	Applied  string `json:"applied"`
}

// maxReportBytes bounds the body of a report.
const maxReportBytes = 1 << 10

func (s *Server) handleApplied(w http.ResponseWriter, r *http.Request) {
	body := make([]byte, 0, 128)
	var buf [256]byte
	rd := http.MaxBytesReader(w, r.Body, maxReportBytes)
	for {
		n, err := rd.Read(buf[:])
		body = append(body, buf[:n]...)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.reject(w, r, http.StatusRequestEntityTooLarge, "body_too_large", "a report is one small object", "")
				return
			}
			break
		}
	}
	var rep appliedReport
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		s.reject(w, r, http.StatusBadRequest, "invalid", "want {\"instance\":\"…\",\"applied\":\"<epoch>-<seq>\"}", "")
		return
	}
	if !validInstance(rep.Instance) {
		s.reject(w, r, http.StatusBadRequest, "invalid", "instance: 1 to 64 letters, digits, '-' or '_'", "instance")
		return
	}
	id, err := events.ParseEventID(rep.Applied)
	if err != nil {
		s.reject(w, r, http.StatusBadRequest, "invalid", "applied: want <epoch>-<seq>, an event ID", "applied")
		return
	}
	s.metrics.reports.Inc()
	if err := s.fleet.report(rep.Instance, id); err != nil {
		writeError(w, http.StatusNotFound, "no subscriber with this instance on any node of the cluster: name the agent with the Revocast-Agent header on its stream", "instance")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// agentsAnswer is the body of GET /v1/agents.
type agentsAnswer struct {
	Agents []agentView `json:"agents"`
}

func (s *Server) handleAgents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, agentsAnswer{Agents: s.fleet.list()})
}

// revocationSeq reads the seq of a stored revocation's JSON.
func revocationSeq(data []byte) uint64 {
	var v struct {
		Seq uint64 `json:"seq"`
	}
	_ = json.Unmarshal(data, &v)
	return v.Seq
}

// appendEnforcement adds "enforcement" to a JSON object.
func appendEnforcement(obj []byte, e enforcement) []byte {
	b, _ := json.Marshal(e)
	out := make([]byte, 0, len(obj)+len(b)+20)
	out = append(out, obj[:len(obj)-1]...)
	out = append(out, `,"enforcement":`...)
	out = append(out, b...)
	return append(out, '}')
}

// waitEnforced waits until every connected agent applied seq, or ctx ends,
// and returns the enforcement then.
func (s *Server) waitEnforced(ctx context.Context, seq uint64) enforcement {
	for {
		e, changed := s.fleet.enforcementOf(seq)
		if len(e.Pending) == 0 {
			return e
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return e
		}
		// a thousand agents report within milliseconds of each other:
		// look again once they have, not after each
		select {
		case <-time.After(waitRecheck):
		case <-ctx.Done():
			e, _ = s.fleet.enforcementOf(seq)
			return e
		}
	}
}

// waitRecheck is the least time between two looks of a waiting write.
const waitRecheck = 20 * time.Millisecond
