package circlebridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
)

// DaemonState is the contents of daemon.json, which a running daemon keeps in the runtime dir
// (protocol/README.md, "Transports").
type DaemonState struct {
	PID     int    `json:"pid"`
	Version string `json:"version"`
	// Socket is the path of the JSON-RPC Unix socket; empty if the daemon has none.
	Socket string `json:"socket"`
	// TCP is "127.0.0.1:PORT" when the daemon listens on TCP, else empty.
	TCP string `json:"tcp"`
	// AuthToken is what a TCP client sends in initialize. A secret: never log it.
	AuthToken string `json:"authToken"`
	// Identity is a fingerprint of the Circle identity the daemon serves (a hash, no secret).
	Identity  string  `json:"identity"`
	Control   string  `json:"control"`
	StartedAt float64 `json:"startedAt"`
	Log       string  `json:"log"`
}

// RuntimeDir is this user's circle-bridge runtime dir, resolved as the Python CLI resolves it:
// $CIRCLE_BRIDGE_RUNTIME_DIR, else $XDG_RUNTIME_DIR/circle-bridge, else $TMPDIR/circle-bridge
// on macOS, else /tmp/circle-bridge-<uid>. Empty variables count as unset.
func RuntimeDir() string {
	return runtimeDirFrom(os.Getenv, runtime.GOOS, os.Geteuid())
}

func runtimeDirFrom(getenv func(string) string, goos string, uid int) string {
	if dir := getenv("CIRCLE_BRIDGE_RUNTIME_DIR"); dir != "" {
		return dir
	}
	if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "circle-bridge")
	}
	if dir := getenv("TMPDIR"); goos == "darwin" && dir != "" {
		return filepath.Join(dir, "circle-bridge")
	}
	return "/tmp/circle-bridge-" + strconv.Itoa(uid)
}

// ErrNoDaemon is returned (wrapped) when the runtime dir records no daemon to attach to.
var ErrNoDaemon = errors.New("circlebridge: no daemon")

// ReadDaemonState reads daemon.json in dir ("" means RuntimeDir()). A missing, half-written or
// foreign file is ErrNoDaemon.
func ReadDaemonState(dir string) (*DaemonState, error) {
	if dir == "" {
		dir = RuntimeDir()
	}
	path := filepath.Join(dir, "daemon.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w recorded in %s: %w", ErrNoDaemon, dir, err)
	}
	var state DaemonState
	if err := json.Unmarshal(data, &state); err != nil || state.PID == 0 || state.AuthToken == "" {
		return nil, fmt.Errorf("%w: %s is not a daemon's state file", ErrNoDaemon, path)
	}
	return &state, nil
}

// Transport says how Attach reaches this user's daemon.
type Transport string

const (
	// TransportSocket dials the daemon's Unix socket named in daemon.json (else bridge.sock in
	// the runtime dir). Fails if no daemon runs.
	TransportSocket Transport = "socket"
	// TransportTCP dials the daemon's TCP port with its authToken, both from daemon.json. Fails if
	// no daemon runs or it does not listen on TCP (`circle-bridge serve --socket --tcp 0`).
	TransportTCP Transport = "tcp"
	// TransportConnect runs `circle-bridge connect` (with Options.Command, Env and Stderr as for
	// Spawn), which attaches to the daemon or starts one, detached and exiting when idle. It works
	// on a cold machine; the racing, locking and identity checks are connect's.
	TransportConnect Transport = "connect"
)

// Attach connects to this user's shared daemon over transport ("" means TransportSocket), so
// that every app of the user shares one token and one session. opts.RuntimeDir overrides where
// daemon.json is looked for. Shutdown and Close end only this connection; the daemon goes on
// serving the others.
//
// A TCP daemon that refuses the token answers with an *Error whose Code is CodeUnauthenticated.
func Attach(ctx context.Context, transport Transport, opts Options) (*Client, error) {
	dir := opts.RuntimeDir
	if dir == "" {
		dir = RuntimeDir()
	}
	switch transport {
	case TransportConnect:
		opts.Args = []string{"connect"}
		if opts.RuntimeDir != "" {
			opts.Env = append(append([]string(nil), opts.Env...), "CIRCLE_BRIDGE_RUNTIME_DIR="+opts.RuntimeDir)
		}
		return Spawn(ctx, opts)
	case TransportSocket, "":
		path := filepath.Join(dir, "bridge.sock")
		if state, err := ReadDaemonState(dir); err == nil && state.Socket != "" {
			path = state.Socket
		}
		return Dial(ctx, "unix", path, opts)
	case TransportTCP:
		state, err := ReadDaemonState(dir)
		if err != nil {
			return nil, err
		}
		if state.TCP == "" {
			return nil, fmt.Errorf("%w listening on TCP is recorded in %s", ErrNoDaemon, dir)
		}
		if _, _, err := net.SplitHostPort(state.TCP); err != nil {
			return nil, fmt.Errorf("circlebridge: daemon.json tcp %q: %w", state.TCP, err)
		}
		if opts.AuthToken == "" {
			opts.AuthToken = state.AuthToken
		}
		return Dial(ctx, "tcp", state.TCP, opts)
	default:
		return nil, fmt.Errorf("circlebridge: unknown transport %q", transport)
	}
}
