// Command bench is revocast's load tool: it measures what users of a
// broadcaster care about against a real broadcaster process over loopback
// sockets, and prints a table per phase with each figure next to its target
// (and, with --json FILE, every result with the parameters and the machine,
// for comparisons).
//
// Usage:
//
//	go run ./cmd/bench [phases] [flags]
//
// phases is a comma-separated list of latency, ingest, catchup, memory, or
// all (the default; --phases does the same), and receipts, which all does
// not include. From the module root, the tool
// builds ./cmd/broadcaster (or uses --broadcaster-bin) and runs it as a
// separate process on 127.0.0.1 with a temporary data directory, a fresh one
// per phase, so that the tool's own CPU and memory stay out of the
// broadcaster's figures; --target URL measures a broadcaster that is
// already running instead.
//
//	latency  N subscribers follow /v1/events?last_event_id=now; M revocations
//	         are posted one at a time at a rate; for every (event, subscriber)
//	         pair, the time from the POST's acknowledgement (its 201 read) to
//	         receipt (negative counts as 0), and from sending the POST.
//	ingest   single POSTs from K keep-alive clients, then batches with a few
//	         in flight: revocations/s from the first send to the last ack,
//	         and the requests' latency.
//	catchup  a live state of S revocations, then a fresh subscriber reads
//	         /v1/events from the start until synced: events/s, time to the
//	         first byte and the first event.
//	receipts N named subscribers; M revocations at a rate, first with nobody
//	         reporting, then with each subscriber reporting what it
//	         received as an agent does (at most one report per
//	         --report-interval): the broadcaster's CPU of each run, reports/s,
//	         CPU per report, and per revocation its ack until every
//	         subscriber's report covering it was answered.
//	memory   the broadcaster's heap and RSS per idle subscriber (from its
//	         /metrics, after a GC forced through its pprof listener when it
//	         has one), and the heap of a pkg/agent agent per live revocation
//	         (runtime.ReadMemStats after runtime.GC, in this process).
//
// --quick runs everything small in about a minute. Every phase is bounded in
// count and in time (--timeout). The open-file limit is raised to the hard
// limit (the broadcaster inherits it). When the broadcaster binary has a
// --pprof-addr flag, the tool gives it a loopback pprof listener: heap
// figures are then read after forced GCs, and --profile-dir saves CPU and
// heap profiles of the broadcaster. bench --help lists every flag.
//
// On its hot paths (the ingest loops, the subscribers' streams, the agents'
// reports) the tool speaks raw, allocation-tuned HTTP on purpose; it posts
// the latency and receipts phases' revocations with pkg/client, without
// retries.
//
// Examples:
//
//	go run ./cmd/bench --quick
//	go run ./cmd/bench latency --subscribers 10000 --rate 2 --json 10k.json
//	go run ./cmd/bench catchup,memory --state 1000000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	res, err := run(ctx, cfg, os.Stdout)
	if cfg.JSON != "" && res != nil {
		if werr := writeJSONFile(cfg.JSON, res); werr != nil {
			fmt.Fprintln(os.Stderr, "bench:", werr)
			err = errors.Join(err, werr)
		} else {
			fmt.Fprintf(os.Stdout, "\nresults written to %s\n", cfg.JSON)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Phase names.
const (
	phaseLatency = "latency"
	phaseIngest  = "ingest"
	phaseCatchup = "catchup"
	phaseMemory  = "memory"
	// receipts is not part of all: name it
	phaseReceipts = "receipts"
)

var allPhases = []string{phaseLatency, phaseIngest, phaseCatchup, phaseMemory}

// config is every parameter of a run; it goes into the JSON as is.
type config struct {
	Phases          []string `json:"phases"`
	Target          string   `json:"target,omitempty"`
	TargetPprof     string   `json:"target_pprof,omitempty"`
	Token           string   `json:"-"`
	BroadcasterBin  string   `json:"broadcaster_bin,omitempty"`
	BroadcasterArgs []string `json:"broadcaster_args,omitempty"`

	Subscribers     int           `json:"subscribers"`
	Revocations     int           `json:"revocations"`
	Rate            float64       `json:"rate"`
	ConnectRate     float64       `json:"connect_rate"`
	ConnectParallel int           `json:"connect_parallel"`
	Settle          time.Duration `json:"settle_ns"`

	Clients  int `json:"clients"`
	Posts    int `json:"posts"`
	Batch    int `json:"batch"`
	Batches  int `json:"batches"`
	Inflight int `json:"inflight"`

	State             int `json:"state"`
	MemorySubscribers int `json:"memory_subscribers"`

	ReportInterval time.Duration `json:"report_interval_ns"`

	Timeout           time.Duration `json:"timeout_ns"`
	Quick             bool          `json:"quick"`
	JSON              string        `json:"-"`
	ProfileDir        string        `json:"profile_dir,omitempty"`
	CPUProfileSeconds int           `json:"cpuprofile_seconds,omitempty"`
	Verbose           bool          `json:"-"`
}

// defaults, and the --quick preset for flags not given explicitly.
func defaultConfig() config {
	return config{
		Phases: []string{"all"}, Subscribers: 1000, Revocations: 200, Rate: 10,
		ConnectRate: 2000, ConnectParallel: 32, Settle: time.Second,
		Clients: 16, Posts: 20_000, Batch: 5000, Batches: 20, Inflight: 2,
		State: 100_000, Timeout: 3 * time.Minute, ReportInterval: 250 * time.Millisecond,
	}
}

var quickPreset = map[string]func(*config){
	"subscribers": func(c *config) { c.Subscribers = 100 },
	"revocations": func(c *config) { c.Revocations = 100 },
	"rate":        func(c *config) { c.Rate = 50 },
	"posts":       func(c *config) { c.Posts = 5000 },
	"batches":     func(c *config) { c.Batches = 10 },
	"state":       func(c *config) { c.State = 100_000 },
	"settle":      func(c *config) { c.Settle = 500 * time.Millisecond },
	"timeout":     func(c *config) { c.Timeout = time.Minute },
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	cfg := defaultConfig()
	var phases string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		phases, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&phases, "phases", phases, "phases to run: latency, ingest, catchup, memory (comma-separated) or all; receipts only when named")
	fs.StringVar(&cfg.Target, "target", "", "URL of a running broadcaster to measure instead of starting one (memory figures then come from its /metrics only)")
	fs.StringVar(&cfg.TargetPprof, "target-pprof", "", "with --target: base URL of its pprof listener (http://127.0.0.1:6060), to force GCs and take CPU profiles")
	fs.StringVar(&cfg.Token, "token", os.Getenv("REVOCAST_TOKEN"), "with --target: bearer credential (revoker) for the API and the stream (default $REVOCAST_TOKEN)")
	fs.StringVar(&cfg.BroadcasterBin, "broadcaster-bin", "", "broadcaster binary to run (default: go build ./cmd/broadcaster from the module root)")
	fs.Func("broadcaster-arg", "extra flag for the broadcaster this tool starts (repeatable, e.g. --broadcaster-arg=--write-timeout=5s)", func(s string) error {
		cfg.BroadcasterArgs = append(cfg.BroadcasterArgs, s)
		return nil
	})
	fs.IntVar(&cfg.Subscribers, "subscribers", cfg.Subscribers, "latency: SSE subscribers (1 to 10,000 on a usual open-file limit)")
	fs.IntVar(&cfg.Revocations, "revocations", cfg.Revocations, "latency: revocations posted, one at a time")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "latency: revocations per second (0: as fast as acknowledgements allow)")
	fs.Float64Var(&cfg.ConnectRate, "connect-rate", cfg.ConnectRate, "subscriber connections opened per second")
	fs.IntVar(&cfg.ConnectParallel, "connect-parallel", cfg.ConnectParallel, "subscriber connections being opened at once")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "pause after the subscribers synced, before measuring")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "ingest: concurrent keep-alive clients posting single revocations")
	fs.IntVar(&cfg.Posts, "posts", cfg.Posts, "ingest: single POSTs in all")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "ingest, state preload: revocations per batch")
	fs.IntVar(&cfg.Batches, "batches", cfg.Batches, "ingest: batches in all")
	fs.IntVar(&cfg.Inflight, "inflight", cfg.Inflight, "ingest, state preload: batches in flight")
	fs.IntVar(&cfg.State, "state", cfg.State, "catchup, memory: live revocations the broadcaster holds (preloaded with batches)")
	fs.IntVar(&cfg.MemorySubscribers, "memory-subscribers", 0, "memory: idle subscribers connected (default: --subscribers)")
	fs.DurationVar(&cfg.ReportInterval, "report-interval", cfg.ReportInterval, "receipts: least time between two reports of one subscriber (the agent's default)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "longest each phase may take")
	fs.BoolVar(&cfg.Quick, "quick", false, "small sizes, about a minute: 100 subscribers, 100 revocations at 50/s, 5,000 posts, 10 batches, state 100,000 (explicit flags win)")
	fs.StringVar(&cfg.JSON, "json", "", "also write every result, the parameters and the machine to this file")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "save profiles of the broadcaster there (needs its pprof listener): CPU while posting in latency and in each ingest mode, heap with the idle subscribers of memory")
	fs.IntVar(&cfg.CPUProfileSeconds, "cpuprofile-seconds", 0, "length of each CPU profile (default: latency's posting time, 2 s for ingest; at least 1 s)")
	fs.BoolVar(&cfg.Verbose, "v", false, "print progress")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bench [latency|ingest|catchup|memory|receipts|all[,…]] [flags]\n\n"+
			"Measures a real revocast broadcaster over loopback and prints each figure next to its target.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch rest := fs.Args(); {
	case len(rest) == 1 && phases == "":
		phases = rest[0] // bench --quick latency
	case len(rest) > 0:
		return cfg, fmt.Errorf("unexpected argument %q", rest[0])
	}
	if cfg.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, apply := range quickPreset {
			if !set[name] {
				apply(&cfg)
			}
		}
	}
	if phases == "" {
		phases = "all"
	}
	cfg.Phases = nil
	for p := range strings.SplitSeq(phases, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "all":
			cfg.Phases = append(cfg.Phases, allPhases...)
		case slices.Contains(allPhases, p) || p == phaseReceipts:
			cfg.Phases = append(cfg.Phases, p)
		default:
			return cfg, fmt.Errorf("unknown phase %q: want latency, ingest, catchup, memory, receipts or all", p)
		}
	}
	if cfg.MemorySubscribers <= 0 {
		cfg.MemorySubscribers = cfg.Subscribers
	}
	return cfg, cfg.validate()
}

func (c *config) validate() error {
	var errs []error
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.Subscribers >= 1, "--subscribers must be at least 1")
	check(c.MemorySubscribers >= 1, "--memory-subscribers must be at least 1")
	check(c.Revocations >= 1, "--revocations must be at least 1")
	check(c.Rate >= 0, "--rate must not be negative")
	check(c.ConnectRate > 0, "--connect-rate must be positive")
	check(c.ConnectParallel >= 1, "--connect-parallel must be at least 1")
	check(c.Clients >= 1, "--clients must be at least 1")
	check(c.Posts >= 1, "--posts must be at least 1")
	check(c.Batch >= 1, "--batch must be at least 1")
	check(c.Batches >= 1, "--batches must be at least 1")
	check(c.Inflight >= 1, "--inflight must be at least 1")
	check(c.State >= 1, "--state must be at least 1")
	check(c.Timeout > 0, "--timeout must be positive")
	check(c.ReportInterval > 0, "--report-interval must be positive")
	check(!c.has(phaseReceipts) || c.Rate > 0, "receipts needs a --rate")
	check(c.Settle >= 0, "--settle must not be negative")
	check(c.CPUProfileSeconds >= 0, "--cpuprofile-seconds must not be negative")
	check(c.Target == "" || c.BroadcasterBin == "", "--target and --broadcaster-bin exclude each other")
	check(c.Target == "" || len(c.BroadcasterArgs) == 0, "--broadcaster-arg needs a broadcaster this tool starts (not --target)")
	check(c.TargetPprof == "" || c.Target != "", "--target-pprof goes with --target")
	if c.Target != "" {
		check(isLoopbackURL(c.Target), "--target must be a loopback URL (http://127.0.0.1:PORT): this tool measures over loopback only")
	}
	if c.TargetPprof != "" {
		check(isLoopbackURL(c.TargetPprof), "--target-pprof must be a loopback URL")
	}
	return errors.Join(errs...)
}

func (c *config) has(phase string) bool { return slices.Contains(c.Phases, phase) }
