package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Results is everything a run measured; --json writes it.
type Results struct {
	Tool        string          `json:"tool"`
	Started     time.Time       `json:"started"`
	Finished    time.Time       `json:"finished"`
	Command     []string        `json:"command"`
	Params      config          `json:"params"`
	Machine     Machine         `json:"machine"`
	Broadcaster BroadcasterInfo `json:"broadcaster"`
	Latency     *LatencyResult  `json:"latency,omitempty"`
	Ingest      *IngestResult   `json:"ingest,omitempty"`
	Catchup     *CatchupResult  `json:"catchup,omitempty"`
	Memory      *MemoryResult   `json:"memory,omitempty"`
	Receipts    *ReceiptsResult `json:"receipts,omitempty"`
	// Profiles of the broadcaster by name (--profile-dir): look at them
	// with go tool pprof -top BINARY FILE.
	Profiles map[string]string `json:"profiles,omitempty"`
	// PhaseLoad is the load average after each phase: the machine may be
	// shared.
	PhaseLoad map[string][3]float64 `json:"load_after_phase,omitempty"`
	Errors    []string              `json:"errors,omitempty"`
}

// BroadcasterInfo says what was measured.
type BroadcasterInfo struct {
	Mode    string   `json:"mode"` // "own process" or "target"
	URL     string   `json:"url,omitempty"`
	Binary  string   `json:"binary,omitempty"`
	Source  string   `json:"source,omitempty"` // module root it was built from
	Commit  string   `json:"commit,omitempty"`
	Args    []string `json:"args,omitempty"` // of the last process started
	Pprof   bool     `json:"pprof"`
	Started int      `json:"processes_started,omitempty"`
}

// runner holds what the phases share.
type runner struct {
	cfg       config
	out       io.Writer
	res       *Results
	runID     string
	tmp       string
	bin       string
	pprofFlag bool // the binary knows --pprof-addr
	connsFlag bool // the binary knows --max-conns-per-addr
	cur       *target
	spawned   int
	http      *http.Client
	profMu    sync.Mutex // Results.Profiles and the output of profile errors
	profiles  sync.WaitGroup
}

// step is one measurement; fresh asks for a broadcaster of its own.
type step struct {
	name  string
	fresh bool
	fn    func(ctx context.Context) error
}

// run measures the selected phases and prints their tables to out. It
// returns the results gathered so far even when a phase failed.
func run(ctx context.Context, cfg config, out io.Writer) (*Results, error) {
	r := &runner{cfg: cfg, out: out, runID: randomID()}
	r.res = &Results{Tool: "revocast bench", Started: time.Now().UTC(), Command: os.Args, Params: cfg, Machine: machineInfo()}
	r.http = newHTTPClient(cfg.Clients + cfg.Inflight + 8)
	defer r.http.CloseIdleConnections()

	need := 0
	if cfg.has(phaseLatency) {
		need = cfg.Subscribers
	}
	if cfg.has(phaseMemory) {
		need = max(need, cfg.MemorySubscribers)
	}
	if cfg.has(phaseReceipts) {
		need = max(need, 2*cfg.Subscribers) // a stream and a report connection each
	}
	lim, err := raiseOpenFiles(need + cfg.Clients + cfg.Inflight + 256)
	r.res.Machine.OpenFiles = lim
	r.header(lim)
	if err != nil {
		return r.finish(err)
	}

	tmp, err := os.MkdirTemp("", "revocast-bench-")
	if err != nil {
		return r.finish(err)
	}
	r.tmp = tmp
	defer os.RemoveAll(tmp)
	defer r.release()

	if cfg.Target == "" {
		if err := r.prepareBinary(ctx); err != nil {
			return r.finish(err)
		}
	} else {
		r.res.Broadcaster = BroadcasterInfo{Mode: "target", URL: cfg.Target, Pprof: cfg.TargetPprof != ""}
	}
	r.printBroadcaster()

	var steps []step
	if cfg.has(phaseLatency) {
		steps = append(steps, step{phaseLatency, true, r.runLatency})
	}
	if cfg.has(phaseIngest) {
		steps = append(steps, step{phaseIngest, true, r.runIngest})
	}
	if cfg.has(phaseReceipts) {
		steps = append(steps, step{phaseReceipts, true, r.runReceipts})
	}
	// The idle-subscriber memory is measured on a broadcaster that has not
	// just ingested anything (JetStream's duplicate window keeps every
	// message ID for two minutes, and its expiry would blur the heap
	// figures); the catch-up state is then loaded on the same process, and
	// the agent follows that state.
	if cfg.has(phaseMemory) {
		steps = append(steps, step{"memory (subscribers)", true, r.runMemorySubscribers})
	}
	if cfg.has(phaseCatchup) {
		steps = append(steps, step{phaseCatchup, !cfg.has(phaseMemory), r.runCatchup})
	}
	if cfg.has(phaseMemory) {
		steps = append(steps, step{"memory (agent)", false, r.runMemoryAgent})
	}

	var errs []error
	for _, s := range steps {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		err := r.acquire(pctx, s.fresh)
		if err == nil {
			err = s.fn(pctx)
		}
		load := loadAverage()
		if r.res.PhaseLoad == nil {
			r.res.PhaseLoad = map[string][3]float64{}
		}
		r.res.PhaseLoad[s.name] = load
		fmt.Fprintf(r.out, "   (load average after %s: %s)\n", s.name, fmtLoad(load))
		if err != nil && pctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("%w (the phase exceeded --timeout %v)", err, cfg.Timeout)
		}
		cancel()
		if err != nil {
			err = fmt.Errorf("%s: %w", s.name, err)
			errs = append(errs, err)
			fmt.Fprintf(r.out, "\n!! %v\n", err)
			if r.cur != nil && r.cur.owned {
				fmt.Fprint(r.out, r.cur.logTail(15))
			}
			// a broken broadcaster is not reused
			r.release()
		}
	}
	return r.finish(errors.Join(errs...))
}

func (r *runner) finish(err error) (*Results, error) {
	r.profiles.Wait() // each ends with its phase's context at the latest
	r.res.Finished = time.Now().UTC()
	r.res.Machine.LoadEnd = loadAverage()
	if err != nil {
		r.res.Errors = append(r.res.Errors, strings.Split(err.Error(), "\n")...)
	}
	if len(r.res.Profiles) > 0 {
		fmt.Fprintf(r.out, "\nbroadcaster profiles (go tool pprof -top %s FILE):\n", orDash(r.res.Broadcaster.Binary))
		for _, name := range slices.Sorted(maps.Keys(r.res.Profiles)) {
			fmt.Fprintf(r.out, "   %-16s %s\n", name, r.res.Profiles[name])
		}
	}
	fmt.Fprintf(r.out, "\nload average at the end: %s\n", fmtLoad(r.res.Machine.LoadEnd))
	return r.res, err
}

// acquire makes r.cur the broadcaster the next step measures.
func (r *runner) acquire(ctx context.Context, fresh bool) error {
	if r.cfg.Target != "" {
		if r.cur == nil {
			r.cur = &target{URL: strings.TrimSuffix(r.cfg.Target, "/"), Pprof: strings.TrimSuffix(r.cfg.TargetPprof, "/")}
		}
		return r.cur.waitReady(ctx, r.http, r.cfg.Token)
	}
	if r.cur != nil && !fresh {
		return nil
	}
	r.release()
	t, err := r.startBroadcaster(ctx)
	if err != nil {
		return err
	}
	r.cur = t
	return nil
}

// release stops the broadcaster this tool started, if any.
func (r *runner) release() {
	if r.cur != nil && r.cur.owned {
		r.cur.stop()
		os.RemoveAll(r.cur.dir)
	}
	if r.cfg.Target == "" {
		r.cur = nil
	}
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Verbose {
		fmt.Fprintf(r.out, "   · "+format+"\n", args...)
	}
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSONFile(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPUModel   string     `json:"cpu_model"`
	NumCPU     int        `json:"num_cpu"`
	GOMAXPROCS int        `json:"gomaxprocs"`
	GoVersion  string     `json:"go_version"`
	OS         string     `json:"os"`
	Arch       string     `json:"arch"`
	Kernel     string     `json:"kernel,omitempty"`
	MemTotalMB int        `json:"mem_total_mb,omitempty"`
	LoadStart  [3]float64 `json:"load_start"`
	LoadEnd    [3]float64 `json:"load_end"`
	OpenFiles  OpenFiles  `json:"open_files"`
}

// OpenFiles is RLIMIT_NOFILE before and after raising it.
type OpenFiles struct {
	SoftBefore uint64 `json:"soft_before"`
	Soft       uint64 `json:"soft"`
	Hard       uint64 `json:"hard"`
}

func machineInfo() Machine {
	m := Machine{
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, LoadStart: loadAverage(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		for line := range strings.SplitSeq(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemTotalMB = kb / 1024
				break
			}
		}
	}
	return m
}

func loadAverage() [3]float64 {
	var l [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		_, _ = fmt.Sscanf(string(b), "%f %f %f", &l[0], &l[1], &l[2])
	}
	return l
}

// machineCPU is the CPU time (seconds) every process on the machine has
// used since boot, from /proc/stat (0 where there is none): its growth
// minus the broadcaster's and this tool's is what others used meanwhile.
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks float64
	// user nice system idle iowait irq softirq steal (guest time is
	// already in user)
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		ticks += n
	}
	return ticks / 100 // USER_HZ
}

func fmtLoad(l [3]float64) string { return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2]) }
