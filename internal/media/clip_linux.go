package media

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill a conversion whose server died (a crash, a
// SIGKILL), so no ffmpeg goes on writing for a job another server takes over.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
