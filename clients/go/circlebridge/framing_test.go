package circlebridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func readAll(t *testing.T, r io.Reader) ([]string, error) {
	t.Helper()
	frames := newFrameReader(r)
	var bodies []string
	for {
		body, err := frames.ReadFrame()
		if err != nil {
			return bodies, err
		}
		bodies = append(bodies, string(body))
	}
}

func TestReadFrameJoinedAndSplit(t *testing.T) {
	stream := "Content-Length: 7\r\n\r\n{\"a\":1}" + "Content-Length: 2\r\n\r\n{}"
	for name, r := range map[string]io.Reader{
		"joined":      strings.NewReader(stream),
		"one byte":    iotest.OneByteReader(strings.NewReader(stream)),
		"half frames": iotest.HalfReader(strings.NewReader(stream)),
	} {
		t.Run(name, func(t *testing.T) {
			bodies, err := readAll(t, r)
			if !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("end of stream = %v, want io.EOF", err)
			}
			if strings.Join(bodies, "|") != `{"a":1}|{}` {
				t.Errorf("bodies = %q", bodies)
			}
		})
	}
}

func TestReadFrameLenientHeaders(t *testing.T) {
	for name, stream := range map[string]string{
		"lowercase name":  "content-length: 2\r\n\r\n{}",
		"upper case name": "CONTENT-LENGTH:2\r\n\r\n{}",
		"type first":      "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}",
		"utf8 spelling":   "Content-Length: 2\r\nContent-Type: application/json; charset=UTF8\r\n\r\n{}",
		"unknown header":  "X-Trace: 1\r\nContent-Length: 2\r\n\r\n{}",
		"bare LF":         "Content-Length: 2\n\n{}",
	} {
		t.Run(name, func(t *testing.T) {
			bodies, err := readAll(t, strings.NewReader(stream))
			if !errors.Is(err, io.EOF) || len(bodies) != 1 || bodies[0] != "{}" {
				t.Errorf("got %q, %v; want one {} frame, then io.EOF", bodies, err)
			}
		})
	}
}

func TestReadFrameRejectsMalformedFrames(t *testing.T) {
	for name, stream := range map[string]string{
		"no length":       "Content-Type: application/json\r\n\r\n{}",
		"bad length":      "Content-Length: two\r\n\r\n{}",
		"negative length": "Content-Length: -1\r\n\r\n{}",
		"two lengths":     "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
		"no colon":        "Content-Length 2\r\n\r\n{}",
		"latin-1":         "Content-Length: 2\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n{}",
		"huge header":     "X-Pad: " + strings.Repeat("x", maxHeaderBytes) + "\r\nContent-Length: 2\r\n\r\n{}",
		"huge body":       "Content-Length: 999999999999\r\n\r\n{}",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newFrameReader(strings.NewReader(stream)).ReadFrame()
			if !errors.Is(err, errFraming) {
				t.Errorf("err = %v, want errFraming", err)
			}
		})
	}
}

func TestReadFrameTruncated(t *testing.T) {
	for name, stream := range map[string]string{
		"in header": "Content-Len",
		"in body":   "Content-Length: 10\r\n\r\n{}",
		"no body":   "Content-Length: 2\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newFrameReader(strings.NewReader(stream)).ReadFrame()
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("err = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestWriteFrameCountsBytesNotRunes(t *testing.T) {
	var buf bytes.Buffer
	body := []byte(`{"n":"研究チーム 🔬"}`)
	if err := writeFrame(&buf, body); err != nil {
		t.Fatal(err)
	}
	want := "Content-Length: 28\r\n\r\n" + string(body)
	if len(body) != 28 || buf.String() != want {
		t.Errorf("frame = %q, want %q", buf.String(), want)
	}
	got, err := newFrameReader(&buf).ReadFrame()
	if err != nil || string(got) != string(body) {
		t.Errorf("read back %q, %v", got, err)
	}
}

// TestDispatchOutOfOrderAndServerRequests drives the client from an in-memory peer that answers
// two calls in reverse order and sends a request of its own, which the client must refuse.
func TestDispatchOutOfOrderAndServerRequests(t *testing.T) {
	clientEnd, peerEnd := net.Pipe()
	defer peerEnd.Close()
	peer := newFrameReader(peerEnd)
	send := func(v any) {
		data, err := json.Marshal(v)
		if err == nil {
			err = writeFrame(peerEnd, data)
		}
		if err != nil {
			t.Error(err)
		}
	}
	type frame struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
		Error  *wireError      `json:"error"`
	}
	recv := func() frame {
		body, err := peer.ReadFrame()
		var f frame
		if err == nil {
			err = json.Unmarshal(body, &f)
		}
		if err != nil {
			t.Error(err)
		}
		return f
	}

	peerDone := make(chan struct{})
	go func() {
		defer close(peerDone)
		if f := recv(); f.Method != MethodInitialize {
			t.Errorf("first frame %+v, want initialize", f)
		} else {
			send(map[string]any{"jsonrpc": "2.0", "id": f.ID, "result": map[string]any{
				"serverInfo":      map[string]any{"name": "peer", "version": "0"},
				"capabilities":    map[string]any{"methods": []string{}, "cancellation": true, "batches": false},
				"protocolVersion": ProtocolVersion,
			}})
		}
		if f := recv(); f.Method != MethodInitialized || f.ID != nil {
			t.Errorf("second frame %+v, want the initialized notification", f)
		}
		first, second := recv(), recv()
		send(map[string]any{"jsonrpc": "2.0", "id": "s-1", "method": "client/unknown"})
		if f := recv(); f.Error == nil || f.Error.Code != CodeMethodNotFound || string(f.ID) != `"s-1"` {
			t.Errorf("reply to the server's request = %+v, want -32601 for id s-1", f)
		}
		send(map[string]any{"jsonrpc": "2.0", "method": "window/logMessage", "params": map[string]any{}})
		send(map[string]any{"jsonrpc": "2.0", "id": second.ID, "result": map[string]any{"echo": second.Params}})
		send(map[string]any{"jsonrpc": "2.0", "id": first.ID, "result": map[string]any{"echo": first.Params}})
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, clientEnd)
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerInfo().Name != "peer" {
		t.Errorf("ServerInfo = %+v", c.ServerInfo())
	}
	results := make(chan string, 2)
	for _, n := range []int{1, 2} {
		go func(n int) {
			var got struct {
				Echo struct{ N int } `json:"echo"`
			}
			err := c.Call(ctx, "test/echo", map[string]int{"n": n}, &got)
			if err != nil || got.Echo.N != n {
				results <- "call " + string(rune('0'+n)) + " got the wrong reply"
				return
			}
			results <- ""
		}(n)
	}
	for i := 0; i < 2; i++ {
		if msg := <-results; msg != "" {
			t.Error(msg)
		}
	}
	<-peerDone
	clientEnd.Close()
}
