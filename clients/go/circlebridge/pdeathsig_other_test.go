//go:build !linux

package circlebridge

import "os/exec"

// dieWithParent is a no-op where there is no Pdeathsig: a test binary that dies without its
// cleanup leaves the emulator running there.
func dieWithParent(*exec.Cmd) {}
