// Package circlebridge is a Go client for circle-bridge, the JSON-RPC 2.0 server that signs
// Circle token requests and calls the local CircleService for you.
//
//	import "github.com/circle-bridge/circle-bridge/clients/go/circlebridge"
//
// Spawn starts `circle-bridge serve --stdio` as a child process; Attach joins this user's shared
// daemon (its Unix socket, its TCP port with the token from daemon.json, or through
// `circle-bridge connect`, which starts one if none runs); Dial connects to a bridge that listens
// on a socket; Connect speaks the protocol over any io.ReadWriteCloser. All of them do the
// initialize handshake before they return. Options.OnProgress and Options.OnTokenNeeded receive
// what the bridge sends unasked. The Circle methods hang off Client.Circle:
//
//	c, err := circlebridge.Spawn(ctx, circlebridge.Options{})
//	circles, err := c.Circle.EnumCircles(ctx)
//	err = c.Shutdown(ctx) // or c.Close(), which allows 10 s
//
// Every call takes a context: it bounds the wait for the reply, the wait for the connection's
// write lock, and (on streams that support write deadlines: sockets and Spawn's pipe) the write
// itself.
//
// Errors the bridge answers with are *Error values (use errors.As); their codes are the Code*
// constants of the protocol's error catalogue. A Client is safe for concurrent use.
package circlebridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Version is this client's version, sent as clientInfo.version.
const Version = "0.1.0"

// closeTimeout is the time Close gives Shutdown: the shutdown round trip, the exit notification
// and the wait for the bridge to end the connection. A spawned bridge that overruns it is killed.
const closeTimeout = 10 * time.Second

// ErrClosed is returned (wrapped) by calls on a client whose connection has ended.
var ErrClosed = errors.New("circlebridge: connection closed")

// Error is a JSON-RPC error answered by the bridge.
//
// Code is one of the Code* constants for every error the protocol defines; Data is the error's
// `data` member as sent, e.g. {"retryable": false, "operation": "enumTopics",
// "upstreamMessage": "Circle not found"}.
type Error struct {
	Code    int
	Message string
	Data    json.RawMessage
}

func (e *Error) Error() string {
	name := e.Name()
	if name == "" {
		name = "error"
	}
	return fmt.Sprintf("circlebridge: %s %d: %s", name, e.Code, e.Message)
}

// Name is the code's stable name in the error catalogue ("CircleOperationFailed" for -33004),
// or "" for a code the catalogue does not list.
func (e *Error) Name() string {
	return codeNames[e.Code]
}

// Retryable reports the error's retry hint: data.retryable when the bridge sent it, else the
// catalogue's default for the code (false for unknown codes).
func (e *Error) Retryable() bool {
	var data struct {
		Retryable *bool `json:"retryable"`
	}
	if json.Unmarshal(e.Data, &data) == nil && data.Retryable != nil {
		return *data.Retryable
	}
	return codeRetryable[e.Code]
}

// Options configure Spawn, Dial, Connect and Attach. Command, Args, Env and Stderr concern the
// child process and apply to Spawn (and Attach's TransportConnect) only.
type Options struct {
	// Command is the bridge executable. Empty means $CIRCLE_BRIDGE_BIN if set, else
	// "circle-bridge" looked up in PATH.
	Command string
	// Args are the arguments. Nil means ["serve", "--stdio"].
	Args []string
	// Env holds "KEY=value" strings appended to os.Environ() for the child (the format of
	// exec.Cmd.Env), e.g. []string{"CIRCLE_SERVICE_URL=http://127.0.0.1:31415"}. A later entry
	// wins over an earlier one with the same key, so Env overrides this process's variables.
	Env []string
	// Stderr receives the bridge's log. Nil means os.Stderr.
	Stderr io.Writer
	// ClientInfo is sent as clientInfo in initialize; the bridge logs it. It is the generated
	// struct *ClientInfo{Name string; Version string} (Version may be ""), e.g.
	// &circlebridge.ClientInfo{Name: "my-tool", Version: "1.2.0"}. Nil means
	// {Name: "circle-bridge-go", Version: Version}.
	ClientInfo *ClientInfo
	// AuthToken is sent as initializationOptions.authToken in initialize: a daemon's TCP listener
	// requires its token (authToken in daemon.json; Attach with TransportTCP reads it for you)
	// and closes the connection without it. Empty sends none.
	AuthToken string
	// RuntimeDir is where Attach looks for daemon.json. Empty means RuntimeDir().
	RuntimeDir string
	// OnProgress receives the $/progress notifications of requests that carried a workDoneToken
	// (Circle.CreateCircle). OnTokenNeeded receives circle/tokenNeeded (CIRCLE_TOKEN_SOURCE=client:
	// answer with Circle.Initialize and a token). Both run on the connection's reader goroutine, in
	// the order the bridge sent them: return quickly, and call the bridge from another goroutine
	// (a call made inside the handler would wait for a reply that only this goroutine can read).
	OnProgress    func(ProgressParams)
	OnTokenNeeded func(TokenNeededParams)
}

// Client is one connection to a bridge. Create it with Spawn, Dial or Connect; end it with Close.
type Client struct {
	// Circle holds the circle/* methods.
	Circle *CircleService

	conn     io.ReadWriteCloser
	proc     *exec.Cmd     // nil unless Spawn started the bridge
	writeSem chan struct{} // capacity 1: holding it is the right to write a frame
	init     InitializeResult

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan *message // nil once the reader has stopped
	readErr error                   // why the reader stopped; read it after done is closed
	stray   func(id int64, msg *message)

	onProgress    func(ProgressParams)
	onTokenNeeded func(TokenNeededParams)

	done      chan struct{} // closed when the reader goroutine returns
	closeOnce sync.Once
	closeErr  error
}

// message is any JSON-RPC message the server sends. encoding/json leaves ID nil when "id" is
// absent and sets it to "null" when the server sent null.
type message struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`
}

// wireError is the error member's shape; Error itself has no json tags so that its Go field
// names stay free of wire concerns.
type wireError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// UnmarshalJSON reads a JSON-RPC error object.
func (e *Error) UnmarshalJSON(data []byte) error {
	var w wireError
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*e = Error(w)
	return nil
}

// MarshalJSON writes a JSON-RPC error object.
func (e *Error) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireError(*e))
}

type request struct {
	JSONRPC string `json:"jsonrpc"`
	ID      *int64 `json:"id,omitempty"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

type errorReply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   wireError       `json:"error"`
}

// Spawn starts the bridge (by default `circle-bridge serve --stdio`) with its stdin and stdout as
// the connection, and does the initialize handshake, sending this process's id as processId so
// the bridge exits if this process dies.
//
// ctx bounds the start and the handshake only; the child lives until Close. If the handshake
// fails the child is killed and the error returned.
func Spawn(ctx context.Context, opts Options) (*Client, error) {
	command := opts.Command
	if command == "" {
		command = os.Getenv("CIRCLE_BRIDGE_BIN")
	}
	if command == "" {
		command = "circle-bridge"
	}
	args := opts.Args
	if args == nil {
		args = []string{"serve", "--stdio"}
	}
	cmd := exec.Command(command, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stderr = opts.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	// os.Pipe rather than cmd.StdinPipe: its write end is an *os.File, which supports write
	// deadlines, so a context can interrupt a write to a bridge that stopped reading.
	stdinRead, stdin, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("circlebridge: spawn: %w", err)
	}
	cmd.Stdin = stdinRead
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	_ = stdinRead.Close() // the child has its own copy now (or never will)
	if err != nil {
		_ = stdin.Close()
		return nil, fmt.Errorf("circlebridge: spawn: %w", err)
	}
	pid := os.Getpid()
	return start(ctx, pipeConn{stdout, stdin}, cmd, &pid, opts)
}

// Dial connects to a bridge listening on network ("unix" or "tcp") at address and does the
// initialize handshake. It sends no processId: a shared bridge must not exit with one client.
// opts (at most one) gives the AuthToken a daemon's TCP port needs, the ClientInfo and the
// notification handlers; Attach finds the address and token in daemon.json for you.
func Dial(ctx context.Context, network, address string, opts ...Options) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("circlebridge: dial: %w", err)
	}
	return Connect(ctx, conn, opts...)
}

// Connect speaks the protocol over conn (any byte stream to a bridge) and does the initialize
// handshake. Close closes conn. On error conn is closed. opts as for Dial.
func Connect(ctx context.Context, conn io.ReadWriteCloser, opts ...Options) (*Client, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	return start(ctx, conn, nil, nil, o)
}

func start(ctx context.Context, conn io.ReadWriteCloser, proc *exec.Cmd, pid *int, opts Options) (*Client, error) {
	c := &Client{
		conn:          conn,
		proc:          proc,
		writeSem:      make(chan struct{}, 1),
		pending:       map[int64]chan *message{},
		done:          make(chan struct{}),
		onProgress:    opts.OnProgress,
		onTokenNeeded: opts.OnTokenNeeded,
	}
	c.Circle = &CircleService{c: c}
	go c.readLoop()
	info := opts.ClientInfo
	if info == nil {
		info = &ClientInfo{Name: "circle-bridge-go", Version: Version}
	}
	params := InitializeParams{ProcessID: pid, ClientInfo: info}
	if opts.AuthToken != "" {
		params.Extra = map[string]json.RawMessage{}
		token, _ := json.Marshal(map[string]string{"authToken": opts.AuthToken})
		params.Extra["initializationOptions"] = token
	}
	var result InitializeResult
	err := c.Call(ctx, MethodInitialize, params, &result)
	if err == nil {
		c.init = result
		err = c.Notify(ctx, MethodInitialized, nil)
	}
	if err != nil {
		_ = conn.Close()
		if proc != nil {
			_ = proc.Process.Kill()
			<-c.done // stdout is closed now; Wait may close it only after the reader is done
			_ = proc.Wait()
		}
		return nil, fmt.Errorf("circlebridge: initialize: %w", err)
	}
	return c, nil
}

// ServerInfo is the bridge's name and version from the initialize handshake.
func (c *Client) ServerInfo() ServerInfo {
	return c.init.ServerInfo
}

// InitializeResult is the bridge's whole initialize result: serverInfo, capabilities (methods,
// cancellation, batches) and protocolVersion.
func (c *Client) InitializeResult() InitializeResult {
	return c.init
}

// Discover returns the bridge's OpenRPC document (rpc.discover), unparsed.
func (c *Client) Discover(ctx context.Context) (json.RawMessage, error) {
	var doc json.RawMessage
	if err := c.Call(ctx, MethodRPCDiscover, nil, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// Call sends a request and decodes its result into result (a pointer; nil to discard it).
// params is encoded as the request's params; nil omits them.
//
// A JSON-RPC error reply is returned as *Error. When ctx ends first, Call sends $/cancelRequest
// for the request and returns at once with an error wrapping ctx.Err(); it does not wait for the
// bridge's -32800 reply, which is dropped when it comes. ctx also bounds sending the request; see
// Notify for what happens when it ends in the middle of a write.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("circlebridge: %s: %w", method, err)
	}
	reply := make(chan *message, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return c.closedError(method)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = reply
	c.mu.Unlock()

	if err := c.send(ctx, request{JSONRPC: "2.0", ID: &id, Method: method, Params: params}); err != nil {
		c.forget(id)
		return fmt.Errorf("circlebridge: %s: %w", method, err)
	}
	select {
	case msg := <-reply:
		return decodeReply(method, msg, result)
	case <-ctx.Done():
		if !c.forget(id) { // the reply won the race and is already in the channel
			return decodeReply(method, <-reply, result)
		}
		// ctx is over, yet the cancellation must still go out: give it a short budget of its own.
		cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelSendTimeout)
		_ = c.Notify(cancelCtx, MethodCancelRequest, CancelParams{ID: json.RawMessage(strconv.FormatInt(id, 10))})
		cancel()
		return fmt.Errorf("circlebridge: %s: %w", method, ctx.Err())
	case <-c.done:
		select {
		case msg := <-reply:
			return decodeReply(method, msg, result)
		default:
			return c.closedError(method)
		}
	}
}

// Notify sends a notification (no reply). params nil omits them.
//
// ctx bounds the wait for the write lock (another call may be writing) and the write itself when
// the stream supports write deadlines (net.Conn, and the pipe Spawn creates). A write that ctx
// interrupts may have sent part of a frame, so the connection is closed and the error wraps both
// ctx.Err() and ErrClosed. On other streams a blocked write ignores ctx.
func (c *Client) Notify(ctx context.Context, method string, params any) error {
	if err := c.send(ctx, request{JSONRPC: "2.0", Method: method, Params: params}); err != nil {
		return fmt.Errorf("circlebridge: %s: %w", method, err)
	}
	return nil
}

// Shutdown ends the connection the way the protocol asks: a shutdown request (which the bridge
// answers once every earlier request is answered), the exit notification, then closing the
// stream and waiting for the bridge to end it. For a spawned bridge it waits for the process and
// returns an error if the exit code is not 0.
//
// ctx bounds all of it. If ctx ends first, a spawned bridge is killed (a connection is just
// closed), and the error wraps ctx.Err(). Shutdown and Close share one outcome: whichever runs
// first does the work, and every later Shutdown or Close returns its result. Calls made after it
// return an error wrapping ErrClosed.
func (c *Client) Shutdown(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.shutdown(ctx) })
	return c.closeErr
}

// Close is Shutdown with a 10-second limit, for `defer c.Close()`.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return c.Shutdown(ctx)
}

func (c *Client) shutdown(ctx context.Context) error {
	var errs []error
	if err := c.Call(ctx, MethodShutdown, nil, nil); err != nil {
		errs = append(errs, err)
	} else if err := c.Notify(ctx, MethodExit, nil); err != nil {
		errs = append(errs, err)
	}
	if err := c.conn.Close(); err != nil && c.proc == nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, fmt.Errorf("circlebridge: close: %w", err))
	}
	select {
	case <-c.done:
	default:
		select {
		case <-c.done:
		case <-ctx.Done():
			if c.proc != nil {
				_ = c.proc.Process.Kill() // its stdout closes, so the reader ends
			}
			<-c.done
			if ctxErr := ctx.Err(); !errorsContain(errs, ctxErr) {
				errs = append(errs, fmt.Errorf("circlebridge: shutdown: the bridge did not end the connection in time: %w", ctxErr))
			}
		}
	}
	if c.proc != nil {
		if err := c.proc.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("circlebridge: bridge process: %w", err))
		}
	}
	return errors.Join(errs...)
}

func errorsContain(errs []error, target error) bool {
	for _, err := range errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// cancelSendTimeout bounds sending $/cancelRequest once the call's own ctx has ended.
const cancelSendTimeout = 5 * time.Second

// aLongTimeAgo is a write deadline in the past: it makes a blocked write return at once.
var aLongTimeAgo = time.Unix(1, 0)

type writeDeadliner interface {
	SetWriteDeadline(t time.Time) error
}

func (c *Client) send(ctx context.Context, req request) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	select {
	case c.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.writeSem }()
	if err := ctx.Err(); err != nil {
		return err
	}
	err = c.writeFrame(ctx, body)
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		_ = c.conn.Close() // part of a frame may be out: the stream cannot carry another one
		return fmt.Errorf("%w: %w: %w", ctxErr, ErrClosed, err)
	}
	return fmt.Errorf("%w: %w", ErrClosed, err)
}

// writeFrame writes one frame; the caller holds writeSem. When the stream supports write
// deadlines, ctx ending moves the deadline into the past, which ends a blocked write.
func (c *Client) writeFrame(ctx context.Context, body []byte) error {
	conn, ok := c.conn.(writeDeadliner)
	if !ok || ctx.Done() == nil {
		return writeFrame(c.conn, body)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetWriteDeadline(aLongTimeAgo)
		close(fired)
	})
	err := writeFrame(c.conn, body)
	if !stop() {
		<-fired
		_ = conn.SetWriteDeadline(time.Time{}) // the next writer starts without a deadline
	}
	return err
}

// forget removes a pending request and reports whether it was still pending.
func (c *Client) forget(id int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

func (c *Client) closedError(method string) error {
	select {
	case <-c.done:
		if c.readErr != nil && !errors.Is(c.readErr, io.EOF) {
			return fmt.Errorf("circlebridge: %s: %w: %w", method, ErrClosed, c.readErr)
		}
	default:
	}
	return fmt.Errorf("circlebridge: %s: %w", method, ErrClosed)
}

func (c *Client) readLoop() {
	frames := newFrameReader(c.conn)
	var err error
	for err == nil {
		var body []byte
		if body, err = frames.ReadFrame(); err == nil {
			err = c.dispatch(body)
		}
	}
	c.mu.Lock()
	c.pending = nil
	c.readErr = err
	c.mu.Unlock()
	if !errors.Is(err, io.EOF) {
		_ = c.conn.Close() // a desynchronised stream cannot be used again
	}
	close(c.done)
}

// dispatch routes one frame. Replies go to their pending call; requests from the server are
// answered MethodNotFound (the protocol defines none); notifications go to their handler, if any.
func (c *Client) dispatch(body []byte) error {
	var msg message
	if err := json.Unmarshal(body, &msg); err != nil {
		return fmt.Errorf("%w: %w", errFraming, err)
	}
	if msg.Method != "" {
		if msg.ID == nil {
			c.notified(&msg)
			return nil
		}
		reply, err := json.Marshal(errorReply{JSONRPC: "2.0", ID: msg.ID, Error: wireError{
			Code: CodeMethodNotFound, Message: "Method not found: " + msg.Method,
		}})
		if err == nil {
			// The reader must not block on a stuck writer forever; the bridge is the peer that
			// stopped reading then, so the reply is best effort.
			ctx, cancel := context.WithTimeout(context.Background(), cancelSendTimeout)
			c.writeSem <- struct{}{}
			err = c.writeFrame(ctx, reply)
			<-c.writeSem
			cancel()
		}
		return err
	}
	id, err := strconv.ParseInt(string(msg.ID), 10, 64)
	if err != nil {
		// An error about a frame the server could not read (id null). The client only sends
		// well-formed frames, so there is no call to blame; dropping it is all that can be done.
		return nil
	}
	if msg.Error == nil && msg.Result == nil {
		msg.Error = &Error{Code: CodeInternalError, Message: "reply has neither result nor error"}
	}
	c.mu.Lock()
	reply, ok := c.pending[id]
	delete(c.pending, id)
	stray := c.stray
	c.mu.Unlock()
	if ok {
		reply <- &msg
	} else if stray != nil {
		stray(id, &msg)
	}
	return nil
}

// notified hands a server notification to its handler. One the handler cannot decode is dropped:
// a notification has no reply to carry the error, and the stream itself is intact.
func (c *Client) notified(msg *message) {
	switch msg.Method {
	case MethodProgress:
		var params ProgressParams
		if c.onProgress != nil && json.Unmarshal(msg.Params, &params) == nil {
			c.onProgress(params)
		}
	case MethodCircleTokenNeeded:
		var params TokenNeededParams
		if c.onTokenNeeded != nil && json.Unmarshal(msg.Params, &params) == nil {
			c.onTokenNeeded(params)
		}
	}
}

func decodeReply(method string, msg *message, result any) error {
	if msg.Error != nil {
		return msg.Error
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(msg.Result, result); err != nil {
		return fmt.Errorf("circlebridge: %s: %w", method, err)
	}
	return nil
}

// pipeConn is a child's stdout and stdin as one stream. Close closes stdin only, which the
// bridge reads as the end of the connection; exec.Cmd.Wait closes stdout.
type pipeConn struct {
	io.ReadCloser
	stdin *os.File
}

func (p pipeConn) Write(b []byte) (int, error)        { return p.stdin.Write(b) }
func (p pipeConn) Close() error                       { return p.stdin.Close() }
func (p pipeConn) SetWriteDeadline(t time.Time) error { return p.stdin.SetWriteDeadline(t) }
