package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// TraceDroppedTrailer is the HTTP trailer of a trace response that says
// how many frames the daemon could not record because the reader was
// too slow (its queue of copies was full).
const TraceDroppedTrailer = "Vxswitch-Trace-Dropped"

// TraceOptions bound a trace; zero values mean no bound (the trace runs
// until the client goes).
type TraceOptions struct {
	Count    int           // stop after this many frames
	Duration time.Duration // stop after this long
}

// TraceStream is a running trace: a pcap stream (Ethernet link type) of
// the frames the network forwards, both ways. Read it to the end, then
// Dropped says how many frames the daemon could not record.
type TraceStream struct {
	resp *http.Response
}

// Read reads the pcap stream.
func (s *TraceStream) Read(p []byte) (int, error) { return s.resp.Body.Read(p) }

// Close ends the trace.
func (s *TraceStream) Close() error { return s.resp.Body.Close() }

// Dropped returns the frames the daemon dropped from the trace; ok is
// false until the stream was read to its end.
func (s *TraceStream) Dropped() (n uint64, ok bool) {
	v := s.resp.Trailer.Get(TraceDroppedTrailer)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// Trace starts a trace of network (GET PathTrace?count=&duration=).
func (c *Client) Trace(ctx context.Context, network string, opts TraceOptions) (*TraceStream, error) {
	q := url.Values{}
	if opts.Count > 0 {
		q.Set("count", strconv.Itoa(opts.Count))
	}
	if opts.Duration > 0 {
		q.Set("duration", opts.Duration.String())
	}
	u := "http://vxswitch" + path(PathTrace, network)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	hc := *c.hc
	hc.Timeout = 0 // a trace runs as long as asked
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w at %s (start it with `vxswitch daemon`, or point --socket / VXSWITCH_SOCKET at its socket)", ErrDaemonDown, c.socket)
		}
		return nil, fmt.Errorf("talk to vxswitch daemon at %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return nil, &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	return &TraceStream{resp: resp}, nil
}
