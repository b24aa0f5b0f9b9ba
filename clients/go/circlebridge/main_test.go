package circlebridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// emulatorInfo is the JSON line `circle-bridge emulator` prints on start.
type emulatorInfo struct {
	TokenURL   string  `json:"tokenUrl"`
	ServiceURL string  `json:"serviceUrl"`
	ControlURL string  `json:"controlUrl"`
	CAFile     *string `json:"caFile"`
	CustomerID string  `json:"customerId"`
	AppKey     string  `json:"appKey"`
	EndUserID  string  `json:"endUserId"`
	Secret     string  `json:"secret"`
}

var (
	bridgeBin string       // absolute path of the circle-bridge executable
	emulator  emulatorInfo // the emulator every test's bridge talks to

	// One bridge for the tests that only read, so each does not pay the bridge's start-up.
	sharedOnce   sync.Once
	sharedBridge *Client
	sharedErr    error
)

// TestMain starts one emulator for the whole package and points every bridge at it through the
// process environment (which Spawn passes on), so Example functions need no setup code either.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin := os.Getenv("CIRCLE_BRIDGE_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "..", ".venv", "bin", "circle-bridge")
	}
	bin, err := filepath.Abs(bin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "circle-bridge executable not found (%v).\n"+
			"Install it (from the repository root: python3 -m venv .venv && .venv/bin/pip install -e .)\n"+
			"or set CIRCLE_BRIDGE_BIN to its path.\n", err)
		return 1
	}
	bridgeBin = bin

	text, stop, err := startAnnounced(exec.Command(bin, "emulator"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "emulator: %v\n", err)
		return 1
	}
	defer stop()
	if err := json.Unmarshal(text, &emulator); err != nil || emulator.ServiceURL == "" {
		fmt.Fprintf(os.Stderr, "emulator printed %q, not its JSON line (%v)\n", text, err)
		return 1
	}

	env := map[string]string{
		"CIRCLE_BRIDGE_BIN":  bin,
		"CIRCLE_CUSTOMER_ID": emulator.CustomerID,
		"CIRCLE_APP_KEY":     emulator.AppKey,
		"CIRCLE_END_USER_ID": emulator.EndUserID,
		"CIRCLE_SECRET":      emulator.Secret,
		"CIRCLE_TOKEN_URL":   emulator.TokenURL,
		"CIRCLE_SERVICE_URL": emulator.ServiceURL,
	}
	if emulator.CAFile != nil {
		env["CIRCLE_CA_FILE"] = *emulator.CAFile
	}
	for key, value := range env {
		if err := os.Setenv(key, value); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	code := m.Run()
	if sharedBridge != nil {
		if err := sharedBridge.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "closing the shared bridge: %v\n", err)
			code = 1
		}
	}
	return code
}

// shared is the package's shared bridge, started on first use and closed (expecting a clean
// exit) after the last test.
func shared(t *testing.T) *Client {
	t.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sharedBridge, sharedErr = Spawn(ctx, Options{})
	})
	if sharedErr != nil {
		t.Fatalf("Spawn: %v", sharedErr)
	}
	return sharedBridge
}

// startAnnounced starts cmd (stderr to ours, killed with the test process) and returns the first
// line it prints on stdout, by which the emulator and the daemon announce they are ready; stop
// ends it (SIGTERM, which drains; a kill after 10 s).
func startAnnounced(cmd *exec.Cmd) (line []byte, stop func(), err error) {
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start: %w", err)
	}
	stop = func() { stopProcess(cmd) }
	lines := make(chan []byte, 1)
	go func() {
		text, _ := bufio.NewReader(stdout).ReadBytes('\n')
		lines <- text
	}()
	select {
	case text := <-lines:
		if len(text) == 0 {
			stop()
			return nil, nil, errors.New("exited before announcing itself")
		}
		return text, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return nil, nil, errors.New("announced nothing within 30 s")
	}
}

func stopProcess(cmd *exec.Cmd) {
	if cmd.Process.Signal(syscall.SIGTERM) != nil {
		_ = cmd.Process.Kill()
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// setFaults switches emulator faults on, e.g. {"serviceDelay": 2}, and resets them when t ends.
func setFaults(t *testing.T, faults map[string]any) {
	t.Helper()
	t.Cleanup(func() { postControl(t, "/reset", map[string]any{}) })
	postControl(t, "/faults", faults)
}

func postControl(t *testing.T, path string, body map[string]any) {
	t.Helper()
	postTo(t, emulator.ControlURL, path, body)
}

// postTo posts to the control API of the emulator at controlURL (see ownEmulatorWithControl).
func postTo(t *testing.T, controlURL, path string, body map[string]any) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(controlURL+path, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
}
