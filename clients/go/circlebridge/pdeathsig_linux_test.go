package circlebridge

import (
	"os/exec"
	"runtime"
	"syscall"
)

// dieWithParent has the kernel SIGTERM the emulator if the test binary dies without running its
// cleanup (a panic, a -timeout, log.Fatal in an example). Pdeathsig fires when the forking OS
// thread exits, so the thread is pinned to the main goroutine, which lives as long as the process.
func dieWithParent(cmd *exec.Cmd) {
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
