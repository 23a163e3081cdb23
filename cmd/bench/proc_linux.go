package main

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills the broadcaster if this tool dies without
// stopping it (SIGKILL, a crash).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
