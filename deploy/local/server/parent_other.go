//go:build !linux

package server

import "os/exec"

// KillWithParent does nothing here: only Linux ties a child's life to
// its parent's. Tests stop their servers by Stop and cleanups.
func KillWithParent(cmd *exec.Cmd) {}
