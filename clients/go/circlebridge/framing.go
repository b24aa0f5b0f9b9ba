package circlebridge

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
)

// Limits of the LSP base protocol framing, as the server applies them (x-framing in the spec).
const (
	maxHeaderBytes = 8192
	maxBodyBytes   = 64 << 20
)

// errFraming marks a malformed frame from the server; the stream cannot be resynchronised.
var errFraming = errors.New("circlebridge: malformed frame")

// frameReader splits a byte stream into LSP frames. Parsing is lenient the way the protocol asks:
// header names are case-insensitive and in any order, lines may end in "\r\n" or "\n", unknown
// headers are ignored, and a Content-Type, if sent, must have a utf-8 charset.
type frameReader struct {
	r *bufio.Reader
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, maxHeaderBytes)}
}

// ReadFrame returns the next frame's body. It returns io.EOF only at a frame boundary;
// a stream that ends inside a frame gives io.ErrUnexpectedEOF.
func (f *frameReader) ReadFrame() ([]byte, error) {
	length := -1
	headerBytes := 0
	for {
		line, err := f.r.ReadSlice('\n')
		headerBytes += len(line)
		if headerBytes > maxHeaderBytes || errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: header block over %d bytes", errFraming, maxHeaderBytes)
		}
		if err != nil {
			if errors.Is(err, io.EOF) && headerBytes == 0 {
				return nil, io.EOF
			}
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := strings.Cut(string(line), ":")
		if !ok {
			return nil, fmt.Errorf("%w: header line %q has no colon", errFraming, line)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "Content-Length"):
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: bad Content-Length %q", errFraming, value)
			}
			if length >= 0 && n != length {
				return nil, fmt.Errorf("%w: two different Content-Length headers", errFraming)
			}
			length = n
		case strings.EqualFold(name, "Content-Type"):
			if err := checkCharset(value); err != nil {
				return nil, err
			}
		}
	}
	if length < 0 {
		return nil, fmt.Errorf("%w: no Content-Length header", errFraming)
	}
	if length > maxBodyBytes {
		return nil, fmt.Errorf("%w: body of %d bytes is over the %d byte cap", errFraming, length, maxBodyBytes)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(f.r, body); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

func checkCharset(contentType string) error {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%w: bad Content-Type %q", errFraming, contentType)
	}
	charset, ok := params["charset"]
	if ok && !strings.EqualFold(charset, "utf-8") && !strings.EqualFold(charset, "utf8") {
		return fmt.Errorf("%w: charset %q is not utf-8", errFraming, charset)
	}
	return nil
}

// writeFrame writes one frame with a single Write call, so frames from concurrent callers
// (serialised by the caller's lock) never interleave even on an unbuffered pipe.
func writeFrame(w io.Writer, body []byte) error {
	frame := make([]byte, 0, len(body)+32)
	frame = append(frame, "Content-Length: "...)
	frame = strconv.AppendInt(frame, int64(len(body)), 10)
	frame = append(frame, "\r\n\r\n"...)
	frame = append(frame, body...)
	_, err := w.Write(frame)
	return err
}
