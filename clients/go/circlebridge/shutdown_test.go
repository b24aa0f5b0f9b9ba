//go:build unix

package circlebridge

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// frozen spawns a bridge and stops it with SIGSTOP after the handshake: it reads nothing and
// answers nothing until killed, the way a hung bridge would, without any timing in the test.
func frozen(t *testing.T) *Client {
	t.Helper()
	c, err := Spawn(testContext(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.proc.Process.Kill() }) // a no-op once Shutdown has reaped it
	if err := c.proc.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestShutdownEndsTheBridgeCleanly(t *testing.T) {
	ctx := testContext(t)
	c, err := Spawn(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	if code := c.proc.ProcessState.ExitCode(); code != 0 {
		t.Errorf("bridge exit code %d, want 0", code)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after Shutdown = %v, want Shutdown's result (nil)", err)
	}
	if err := c.Notify(ctx, MethodExit, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Notify after Shutdown = %v, want ErrClosed", err)
	}
}

func TestShutdownKillsABridgeThatOverrunsItsContext(t *testing.T) {
	c := frozen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.Shutdown(ctx)
	var exitErr *exec.ExitError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &exitErr) {
		t.Fatalf("Shutdown = %v, want context.DeadlineExceeded and the killed bridge's *exec.ExitError", err)
	}
	if status, ok := exitErr.Sys().(syscall.WaitStatus); !ok || status.Signal() != syscall.SIGKILL {
		t.Errorf("bridge ended with %v, want SIGKILL", exitErr)
	}
	if again := c.Shutdown(testContext(t)); again != err {
		t.Errorf("second Shutdown = %v, want the first result", again)
	}
}

func TestNotifyHonoursAnEndedContextAndLeavesTheConnectionUsable(t *testing.T) {
	c := shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Notify(ctx, "test/neverSent", nil); !errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
		t.Errorf("Notify with a cancelled ctx = %v, want context.Canceled and an open connection", err)
	}
	if _, err := c.Circle.IsServiceRunning(testContext(t)); err != nil {
		t.Errorf("call after the refused Notify = %v, want a working connection", err)
	}
}

func TestContextInterruptsAWriteToABridgeThatStoppedReading(t *testing.T) {
	c := frozen(t)
	// Far more than a pipe buffer holds, so the write blocks until ctx ends.
	big := strings.Repeat("x", 4<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.Notify(ctx, "test/big", map[string]string{"blob": big})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Notify = %v, want context.DeadlineExceeded and ErrClosed (a partial frame ends the stream)", err)
	}
	if err := c.Notify(testContext(t), "test/after", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Notify after the interrupted write = %v, want ErrClosed", err)
	}
	if err := c.proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("Close = %v, want ErrClosed", err)
	}
}
