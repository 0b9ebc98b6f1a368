package server

import (
	"os/exec"
	"syscall"
)

// KillWithParent has the kernel kill cmd's process when this process
// dies, however it dies: a test that times out panics past every cleanup
// and Stop, and would leave its servers running. The signal is tied to
// the OS thread that starts cmd, which the Go runtime keeps alive unless
// a goroutine locked to it exits: do not start cmd from one that does.
// Call it before cmd.Start; it keeps any SysProcAttr already set.
func KillWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
