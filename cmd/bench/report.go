package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// table is one phase's figures: what, measured, target, verdict.
type table struct {
	title string
	rows  [][4]string
	notes []string
}

func (t *table) add(what, measured, target, verdict string) {
	t.rows = append(t.rows, [4]string{what, measured, target, verdict})
}

func (t *table) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

func (t *table) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s\n", t.title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   what\tmeasured\ttarget\t")
	for _, r := range t.rows {
		fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\n", r[0], r[1], r[2], r[3])
	}
	tw.Flush()
	for _, n := range t.notes {
		fmt.Fprintf(w, "   %s\n", n)
	}
}

func (r *runner) header(lim OpenFiles) {
	m := r.res.Machine
	fmt.Fprintf(r.out, "revocast bench, %s\n", r.res.Started.Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(r.out, "machine: %s, %d CPUs, GOMAXPROCS %d, %s %s/%s, load average %s\n",
		orDash(m.CPUModel), m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch, fmtLoad(m.LoadStart))
	switch {
	case lim.Hard == 0:
	case lim.SoftBefore != lim.Soft:
		fmt.Fprintf(r.out, "open files: soft limit raised from %d to %d (the hard limit); the broadcaster inherits it\n", lim.SoftBefore, lim.Soft)
	default:
		fmt.Fprintf(r.out, "open files: soft limit %d, already the hard limit; the broadcaster inherits it\n", lim.Soft)
	}
	fmt.Fprintf(r.out, "phases: %s\n", strings.Join(r.cfg.Phases, ", "))
}

func (r *runner) printBroadcaster() {
	b := r.res.Broadcaster
	if b.Mode == "target" {
		fmt.Fprintf(r.out, "broadcaster: %s (already running; pprof %s)\n", b.URL, yesNo(b.Pprof, r.cfg.TargetPprof, "none: heap figures without a forced GC"))
		return
	}
	src := ""
	if b.Source != "" {
		src = fmt.Sprintf(" built from %s", b.Source)
		if b.Commit != "" {
			src += " at " + b.Commit
		}
	}
	fmt.Fprintf(r.out, "broadcaster: %s%s, a fresh process per phase on 127.0.0.1; pprof %s\n", b.Binary, src,
		yesNo(b.Pprof, "--pprof-addr on loopback", "none (this binary has no --pprof-addr): heap figures without a forced GC, no CPU profile"))
}

func yesNo(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
