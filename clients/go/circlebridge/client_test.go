package circlebridge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// spawn starts a bridge for one test and closes it (expecting a clean exit) when the test ends.
func spawn(t *testing.T, opts Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Spawn(ctx, opts)
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHandshake(t *testing.T) {
	c := shared(t)
	if got := c.ServerInfo(); got.Name != "circle-bridge" || got.Version == "" {
		t.Errorf("ServerInfo = %+v, want name circle-bridge and a version", got)
	}
	init := c.InitializeResult()
	if init.ProtocolVersion != ProtocolVersion {
		t.Errorf("protocolVersion = %q, want %q", init.ProtocolVersion, ProtocolVersion)
	}
	for _, method := range []string{MethodCircleEnumCircles, MethodCircleEnumTopics, MethodCircleIsServiceRunning} {
		if !slices.Contains(init.Capabilities.Methods, method) {
			t.Errorf("capabilities.methods %v lacks %s", init.Capabilities.Methods, method)
		}
	}
	if !init.Capabilities.Cancellation {
		t.Error("capabilities.cancellation is false")
	}
}

func TestDiscoverReturnsTheOpenRPCDocument(t *testing.T) {
	c := shared(t)
	raw, err := c.Discover(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenRPC string `json:"openrpc"`
		Methods []struct {
			Name string `json:"name"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenRPC == "" || len(doc.Methods) == 0 {
		t.Errorf("rpc.discover gave %.200s", raw)
	}
}

func TestIsServiceRunning(t *testing.T) {
	c := shared(t)
	got, err := c.Circle.IsServiceRunning(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Running || strings.TrimRight(got.ServiceURL, "/") != strings.TrimRight(emulator.ServiceURL, "/") {
		t.Errorf("IsServiceRunning = %+v, want running at %s", got, emulator.ServiceURL)
	}
}

func TestCircleInitialize(t *testing.T) {
	c := shared(t)
	got, err := c.Circle.Initialize(testContext(t), CircleInitializeParams{})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Authorized || got.EndUserID != emulator.EndUserID || got.ExpiresIn <= 0 {
		t.Errorf("Initialize = %+v, want authorized for %s with a positive expiresIn", got, emulator.EndUserID)
	}
}

func TestEnumCirclesKeepsExtraFields(t *testing.T) {
	c := shared(t)
	got, err := c.Circle.EnumCircles(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Circles) == 0 {
		t.Fatal("no circles")
	}
	for _, circle := range got.Circles {
		if circle.CircleID == "" || circle.CircleName == "" {
			t.Errorf("circle without id or name: %+v", circle)
		}
		var members int
		if err := json.Unmarshal(circle.Extra["memberCount"], &members); err != nil || members < 1 {
			t.Errorf("circle %s: Extra[memberCount] = %s (%v), want a positive number", circle.CircleID, circle.Extra["memberCount"], err)
		}
	}
	// The extra fields survive a round trip through MarshalJSON.
	data, err := json.Marshal(got.Circles[0])
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back["circleId"] != got.Circles[0].CircleID || back["memberCount"] == nil {
		t.Errorf("marshalled circle %s lacks circleId or memberCount", data)
	}
}

func TestEnumTopicsOfFirstCircle(t *testing.T) {
	c := shared(t)
	ctx := testContext(t)
	circles, err := c.Circle.EnumCircles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Circle.EnumTopics(ctx, EnumTopicsParams{CircleID: circles.Circles[0].CircleID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Topics) == 0 {
		t.Fatal("no topics")
	}
	for _, topic := range got.Topics {
		if topic.TopicID == "" || topic.TopicName == "" || topic.Extra["messageCount"] == nil {
			t.Errorf("topic lacks topicId, topicName or the extra messageCount: %+v", topic)
		}
	}
}

func TestEnumTopicsOfUnknownCircleIsCircleOperationFailed(t *testing.T) {
	c := shared(t)
	_, err := c.Circle.EnumTopics(testContext(t), EnumTopicsParams{CircleID: "no-such-circle"})
	var rpcErr *Error
	if !errors.As(err, &rpcErr) {
		t.Fatalf("err = %v (%T), want *Error", err, err)
	}
	if rpcErr.Code != CodeCircleOperationFailed || rpcErr.Name() != "CircleOperationFailed" || rpcErr.Retryable() {
		t.Errorf("got %v (name %q, retryable %v), want -33004 CircleOperationFailed, not retryable", rpcErr, rpcErr.Name(), rpcErr.Retryable())
	}
	var data struct {
		UpstreamMessage string `json:"upstreamMessage"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || data.UpstreamMessage != "Circle not found" {
		t.Errorf("data = %s, want upstreamMessage \"Circle not found\"", rpcErr.Data)
	}
}

func TestEmptyCircleIDIsInvalidParams(t *testing.T) {
	c := shared(t)
	_, err := c.Circle.EnumTopics(testContext(t), EnumTopicsParams{})
	var rpcErr *Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != CodeInvalidParams || rpcErr.Name() != "InvalidParams" {
		t.Errorf("err = %v, want *Error -32602 InvalidParams", err)
	}
}

func TestServiceDownIsServiceNotRunning(t *testing.T) {
	// A port nothing listens on: bind one, note it, free it.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + listener.Addr().String()
	listener.Close()

	c := spawn(t, Options{Env: []string{"CIRCLE_SERVICE_URL=" + deadURL}})
	ctx := testContext(t)
	running, err := c.Circle.IsServiceRunning(ctx)
	if err != nil || running.Running {
		t.Errorf("IsServiceRunning = %+v, %v; want running false and no error", running, err)
	}
	_, err = c.Circle.EnumCircles(ctx)
	var rpcErr *Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != CodeServiceNotRunning || !rpcErr.Retryable() {
		t.Errorf("err = %v, want a retryable *Error -33001 ServiceNotRunning", err)
	}
}

func TestCancelSlowCall(t *testing.T) {
	c := spawn(t, Options{})
	// Catch the bridge's reply to the cancelled request, which Call no longer waits for.
	late := make(chan *message, 1)
	c.mu.Lock()
	c.stray = func(id int64, msg *message) { late <- msg }
	c.mu.Unlock()
	// Authorize first, so that the slow call below is enumCircles alone (the bridge would let a
	// shared token fetch started for it run on after the cancel).
	if _, err := c.Circle.Initialize(testContext(t), CircleInitializeParams{}); err != nil {
		t.Fatal(err)
	}
	setFaults(t, map[string]any{"serviceDelay": 2})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := c.Circle.EnumCircles(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The reply reaches stray only for an id no call waits on, so getting it there proves Call
	// returned without waiting for it. -32800 proves the bridge got $/cancelRequest: had the call
	// run out its 2 s delay, the reply would be the circles.
	select {
	case msg := <-late:
		if msg.Error == nil || msg.Error.Code != CodeRequestCancelled {
			t.Errorf("late reply = %+v, want error -32800", msg)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no reply to the cancelled request within 15 s")
	}

	// The connection stays usable once the service is fast again. (Not with enumCircles: the
	// bridge coalesces identical reads and lets the cancelled call's upstream request run on, so
	// an enumCircles now would join it and wait out the rest of the delay.)
	postControl(t, "/reset", map[string]any{})
	_, err = c.Circle.EnumTopics(testContext(t), EnumTopicsParams{CircleID: "no-such-circle"})
	var rpcErr *Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != CodeCircleOperationFailed {
		t.Errorf("EnumTopics after the cancel = %v, want -33004 from a working connection", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	c := shared(t)
	ctx := testContext(t)
	circles, err := c.Circle.EnumCircles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{} // circle id -> number of topics
	for _, circle := range circles.Circles {
		topics, err := c.Circle.EnumTopics(ctx, EnumTopicsParams{CircleID: circle.CircleID})
		if err != nil {
			t.Fatal(err)
		}
		want[circle.CircleID] = len(topics.Topics)
	}

	const goroutines, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				circle := circles.Circles[(g+r)%len(circles.Circles)]
				switch r % 3 {
				case 0:
					got, err := c.Circle.EnumTopics(ctx, EnumTopicsParams{CircleID: circle.CircleID})
					if err == nil && len(got.Topics) != want[circle.CircleID] {
						err = errors.New("topics of " + circle.CircleID + " went to the wrong caller")
					}
					errs <- err
				case 1:
					got, err := c.Circle.EnumCircles(ctx)
					if err == nil && len(got.Circles) != len(circles.Circles) {
						err = errors.New("EnumCircles reply went to the wrong caller")
					}
					errs <- err
				default:
					_, err := c.Circle.EnumTopics(ctx, EnumTopicsParams{CircleID: "no-such-circle"})
					var rpcErr *Error
					if !errors.As(err, &rpcErr) || rpcErr.Code != CodeCircleOperationFailed {
						errs <- errors.New("unknown circle did not give -33004: " + errString(err))
					} else {
						errs <- nil
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestCloseEndsTheBridgeCleanly(t *testing.T) {
	ctx := testContext(t)
	c, err := Spawn(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	if code := c.proc.ProcessState.ExitCode(); code != 0 {
		t.Errorf("bridge exit code %d, want 0", code)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v, want the first result (nil)", err)
	}
	if _, err := c.Circle.EnumCircles(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close = %v, want ErrClosed", err)
	}
}

func TestCloseReportsABridgeThatDied(t *testing.T) {
	c, err := Spawn(testContext(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err = c.Close()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || !errors.Is(err, ErrClosed) {
		t.Errorf("Close = %v, want ErrClosed and an *exec.ExitError", err)
	}
}

func TestSpawnMissingCommand(t *testing.T) {
	_, err := Spawn(testContext(t), Options{Command: filepath.Join(t.TempDir(), "no-such-bridge")})
	if err == nil || !strings.Contains(err.Error(), "spawn") {
		t.Errorf("Spawn = %v, want a spawn error", err)
	}
}

func TestSpawnHandshakeFailure(t *testing.T) {
	// `spec` prints the OpenRPC document and exits: not a frame, so the handshake fails.
	_, err := Spawn(testContext(t), Options{Args: []string{"spec"}, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "initialize") {
		t.Errorf("Spawn = %v, want an initialize error", err)
	}
}

// serveOverListener accepts one connection and runs a real bridge on it (its stdio piped to the
// socket), standing in for the daemon mode the bridge does not have yet. It returns the bridge's
// exit error once the connection has ended.
func serveOverListener(t *testing.T, listener net.Listener) <-chan error {
	t.Helper()
	result := make(chan error, 1)
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			result <- err
			return
		}
		defer conn.Close()
		cmd := exec.Command(bridgeBin, "serve", "--stdio")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = conn, conn, os.Stderr
		result <- cmd.Run()
	}()
	return result
}

func TestDial(t *testing.T) {
	dir, err := os.MkdirTemp("", "cb") // short: Unix socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			address := "127.0.0.1:0"
			if network == "unix" {
				address = filepath.Join(dir, "bridge.sock")
			}
			listener, err := net.Listen(network, address)
			if err != nil {
				t.Fatal(err)
			}
			defer listener.Close()
			bridgeExit := serveOverListener(t, listener)

			ctx := testContext(t)
			c, err := Dial(ctx, network, listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			circles, err := c.Circle.EnumCircles(ctx)
			if err != nil || len(circles.Circles) == 0 {
				t.Errorf("EnumCircles = %v, %v; want circles", circles, err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
			select {
			case err := <-bridgeExit:
				if err != nil {
					t.Errorf("bridge behind the socket: %v, want exit 0 after shutdown and exit", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("the bridge behind the socket did not exit within 10 s of Close")
			}
		})
	}
}

func TestListProgram(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command in PATH to build examples/list: %v", err)
	}
	exe := filepath.Join(t.TempDir(), "list")
	build := exec.Command(goBin, "build", "-o", exe, "../examples/list")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/list: %v\n%s", err, out)
	}
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Fatalf("examples/list: %v", err)
	}
	for _, want := range []string{"Family Vault", "  - Passwords", "研究チーム 🔬", "  - Reading list 📚"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("examples/list output lacks line %q:\n%s", want, out)
		}
	}
}
