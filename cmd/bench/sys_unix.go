//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseOpenFiles raises this process's soft RLIMIT_NOFILE to the hard limit;
// the broadcaster started afterwards inherits it. It fails when need open
// files are more than the hard limit allows.
func raiseOpenFiles(need int) (OpenFiles, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return OpenFiles{}, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	of := OpenFiles{SoftBefore: lim.Cur, Soft: lim.Cur, Hard: lim.Max}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return of, fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %w", lim.Max, err)
		}
	} else {
		// set it all the same: a Go program's children get the soft limit
		// it started with unless it called Setrlimit itself
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		of.Soft, of.Hard = lim.Cur, lim.Max
	}
	if uint64(need) > of.Soft {
		return of, fmt.Errorf("this run needs about %d open files in this process and as many in the broadcaster "+
			"(one socket per subscriber on each side, plus clients), but the hard limit is %d: raise it "+
			"(ulimit -Hn as root, LimitNOFILE= in a systemd unit, nofile in /etc/security/limits.conf) or use fewer subscribers",
			need, of.Hard)
	}
	return of, nil
}

// selfCPU is the CPU time (user + system) this process has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
