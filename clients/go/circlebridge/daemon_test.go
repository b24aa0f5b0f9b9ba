package circlebridge

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// emulatorStats reads the emulator's request counters (tokenRequests, serviceRequests, ...).
func emulatorStats(t *testing.T, controlURL string) map[string]int {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(controlURL + "/state")
	if err != nil {
		t.Fatalf("GET state: %v", err)
	}
	defer resp.Body.Close()
	var state struct {
		Stats map[string]int `json:"stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatalf("decode state: %v", err)
	}
	return state.Stats
}

// privateRuntimeDir is short and under /tmp: a socket path must fit in 103 bytes.
func privateRuntimeDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "cb-go-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// startDaemon runs `circle-bridge serve --socket --tcp 0` in dir until the test ends (SIGTERM,
// which drains), and returns once it has announced itself.
func startDaemon(t *testing.T, env []string, dir string) {
	t.Helper()
	cmd := exec.Command(bridgeBin, "serve", "--socket", "--tcp", "0")
	cmd.Env = append(append(os.Environ(), env...), "CIRCLE_BRIDGE_RUNTIME_DIR="+dir)
	_, stop, err := startAnnounced(cmd)
	if err != nil {
		t.Fatalf("daemon: %v", err)
	}
	t.Cleanup(stop)
}

func TestRuntimeDirMatchesThePythonResolver(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(name string) string { return vars[name] }
	}
	cases := []struct {
		vars map[string]string
		goos string
		want string
	}{
		{map[string]string{"CIRCLE_BRIDGE_RUNTIME_DIR": "/x/own", "XDG_RUNTIME_DIR": "/run/user/7"}, "linux", "/x/own"},
		{map[string]string{"CIRCLE_BRIDGE_RUNTIME_DIR": "", "XDG_RUNTIME_DIR": "/run/user/7"}, "linux", "/run/user/7/circle-bridge"},
		{map[string]string{"TMPDIR": "/var/folders/ab/T/"}, "darwin", "/var/folders/ab/T/circle-bridge"},
		{map[string]string{"TMPDIR": "/var/folders/ab/T/"}, "linux", "/tmp/circle-bridge-501"},
		{map[string]string{}, "darwin", "/tmp/circle-bridge-501"},
	}
	for _, c := range cases {
		if got := runtimeDirFrom(env(c.vars), c.goos, 501); got != c.want {
			t.Errorf("runtimeDirFrom(%v, %s) = %q, want %q", c.vars, c.goos, got, c.want)
		}
	}
	// and the real one against the Python CLI's, under this process's environment
	python := filepath.Join(filepath.Dir(bridgeBin), "python")
	for _, vars := range []map[string]string{{"XDG_RUNTIME_DIR": "/run/user/42"}, {"CIRCLE_BRIDGE_RUNTIME_DIR": "/tmp/x"}, {}} {
		cmd := exec.Command(python, "-c", "from circle_bridge._runtime_dir import runtime_dir; print(runtime_dir())")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for name, value := range vars {
			cmd.Env = append(cmd.Env, name+"="+value)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("python: %v", err)
		}
		if got, want := runtimeDirFrom(env(vars), "linux", os.Geteuid()), strings.TrimSpace(string(out)); got != want {
			t.Errorf("with %v: Go %q, Python %q", vars, got, want)
		}
	}
}

func TestAttachSocketAndTCPShareOneSession(t *testing.T) {
	env, _, control := ownEmulatorWithControl(t)
	dir := privateRuntimeDir(t)
	startDaemon(t, env, dir)
	ctx := testContext(t)
	state, err := ReadDaemonState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if state.Socket == "" || state.TCP == "" || len(state.AuthToken) < 32 {
		t.Fatalf("daemon.json lacks socket, tcp or token: socket %q tcp %q", state.Socket, state.TCP)
	}
	viaSocket, err := Attach(ctx, TransportSocket, Options{RuntimeDir: dir})
	if err != nil {
		t.Fatalf("Attach socket: %v", err)
	}
	viaTCP, err := Attach(ctx, TransportTCP, Options{RuntimeDir: dir})
	if err != nil {
		t.Fatalf("Attach tcp: %v", err)
	}
	for _, c := range []*Client{viaSocket, viaTCP} {
		circles, err := c.Circle.EnumCircles(ctx)
		if err != nil || len(circles.Circles) == 0 {
			t.Fatalf("EnumCircles: %v, %v", circles, err)
		}
	}
	if got := emulatorStats(t, control)["tokenRequests"]; got != 1 {
		t.Fatalf("token requests = %d, want 1 (one session)", got)
	}
	// Shutdown ends only this connection; the daemon serves the other on
	if err := viaSocket.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := viaTCP.Circle.EnumCircles(ctx); err != nil {
		t.Fatalf("EnumCircles after the other client left: %v", err)
	}
	if err := viaTCP.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestTCPWithoutTheTokenIsRefusedAndRunsNothing(t *testing.T) {
	env, _, control := ownEmulatorWithControl(t)
	dir := privateRuntimeDir(t)
	startDaemon(t, env, dir)
	state, err := ReadDaemonState(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{}, {AuthToken: "not-the-token"}} {
		_, err := Dial(testContext(t), "tcp", state.TCP, opts)
		var rpcErr *Error
		if !errors.As(err, &rpcErr) || rpcErr.Code != CodeUnauthenticated {
			t.Fatalf("Dial with token %q: %v, want code %d", opts.AuthToken, err, CodeUnauthenticated)
		}
	}
	stats := emulatorStats(t, control)
	if stats["tokenRequests"] != 0 || stats["serviceRequests"] != 0 {
		t.Fatalf("a refused client reached upstream: %v", stats)
	}
}

func TestAttachWithoutADaemon(t *testing.T) {
	dir := privateRuntimeDir(t)
	if _, err := Attach(testContext(t), TransportTCP, Options{RuntimeDir: dir}); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("Attach tcp: %v, want ErrNoDaemon", err)
	}
	if _, err := Attach(testContext(t), TransportSocket, Options{RuntimeDir: dir}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Attach socket: %v, want a dial error naming %s", err, dir)
	}
}

func TestAttachConnectStartsOneDaemonForRacingApps(t *testing.T) {
	env, _, control := ownEmulatorWithControl(t)
	dir := privateRuntimeDir(t)
	t.Cleanup(func() {
		stop := exec.Command(bridgeBin, "stop")
		stop.Env = append(os.Environ(), "CIRCLE_BRIDGE_RUNTIME_DIR="+dir)
		_ = stop.Run()
	})
	ctx := testContext(t)
	clients := make([]*Client, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			clients[i], errs[i] = Attach(ctx, TransportConnect, Options{Command: bridgeBin, Env: env, RuntimeDir: dir})
		}(i)
	}
	wg.Wait()
	for i, c := range clients {
		if errs[i] != nil {
			t.Fatalf("Attach connect: %v", errs[i])
		}
		if _, err := c.Circle.EnumCircles(ctx); err != nil {
			t.Fatalf("EnumCircles: %v", err)
		}
	}
	if got := emulatorStats(t, control)["tokenRequests"]; got != 1 {
		t.Fatalf("token requests = %d, want 1", got)
	}
	state, err := ReadDaemonState(dir)
	if err != nil {
		t.Fatalf("connect recorded no daemon: %v", err)
	}
	for _, c := range clients {
		if err := c.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	if syscall.Kill(state.PID, 0) != nil {
		t.Fatal("the daemon went away with its clients; it should wait for its idle timeout")
	}
}

func TestNotificationHandlers(t *testing.T) {
	env, _, _ := ownEmulatorWithControl(t)
	ctx := testContext(t)

	var mu sync.Mutex
	var progress []ProgressParams
	c := spawn(t, Options{Env: env, OnProgress: func(p ProgressParams) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, p)
	}})
	if _, err := c.Circle.CreateCircle(ctx, CreateCircleParams{CircleName: "go progress", WorkDoneToken: json.RawMessage(`"go-p"`)}); err != nil {
		t.Fatalf("CreateCircle: %v", err)
	}
	mu.Lock()
	got := append([]ProgressParams(nil), progress...)
	mu.Unlock()
	// every $/progress is sent before the reply, and the reader delivers in order
	if len(got) < 2 || got[0].Value.Kind != "begin" || got[len(got)-1].Value.Kind != "end" || string(got[0].Token) != `"go-p"` {
		t.Fatalf("progress = %+v, want begin ... end for go-p", got)
	}

	var secretless []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CIRCLE_SECRET=") {
			secretless = append(secretless, kv)
		}
	}
	needed := make(chan TokenNeededParams, 4)
	client := spawn(t, Options{
		Env:           append(secretless, "CIRCLE_TOKEN_SOURCE=client", "CIRCLE_SECRET="),
		OnTokenNeeded: func(p TokenNeededParams) { needed <- p },
	})
	_, err := client.Circle.EnumCircles(ctx)
	var rpcErr *Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != CodeTokenNeeded {
		t.Fatalf("EnumCircles without a token: %v, want %d", err, CodeTokenNeeded)
	}
	select {
	case p := <-needed:
		if p.Reason != "missing" {
			t.Fatalf("tokenNeeded reason %q, want missing", p.Reason)
		}
	case <-ctx.Done():
		t.Fatal("no circle/tokenNeeded")
	}
}

func TestCancelThroughWorkDoneProgress(t *testing.T) {
	env, _, control := ownEmulatorWithControl(t)
	begun := make(chan struct{}, 1)
	c := spawn(t, Options{Env: env, OnProgress: func(p ProgressParams) {
		if p.Value.Kind == "begin" {
			begun <- struct{}{}
		}
	}})
	ctx := testContext(t)
	if _, err := c.Circle.Initialize(ctx, CircleInitializeParams{}); err != nil {
		t.Fatal(err)
	}
	postTo(t, control, "/faults", map[string]any{"serviceDelay": 20}) // creation hangs until cancelled
	done := make(chan error, 1)
	go func() {
		_, err := c.Circle.CreateCircle(ctx, CreateCircleParams{CircleName: "slow", WorkDoneToken: json.RawMessage(`7`)})
		done <- err
	}()
	select {
	case <-begun:
	case <-ctx.Done():
		t.Fatal("no progress begin")
	}
	if err := c.Notify(ctx, MethodWindowWorkDoneProgressCancel, WorkDoneProgressCancelParams{Token: json.RawMessage(`7`)}); err != nil {
		t.Fatalf("Notify cancel: %v", err)
	}
	var rpcErr *Error
	if err := <-done; !errors.As(err, &rpcErr) || rpcErr.Code != CodeRequestCancelled {
		t.Fatalf("CreateCircle after window/workDoneProgress/cancel: %v, want %d", err, CodeRequestCancelled)
	}
}
