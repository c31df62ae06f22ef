package daemon

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/pcap"
	vswitch "github.com/vxswitch/vxswitch/switch"
)

// traceSnapLen is the snap length in the pcap header: tcpdump's largest,
// above the longest frame a trace records (vswitch.DefaultTraceSnapLen).
const traceSnapLen = 262144

// traceWriteTimeout bounds each write (and flush) of a trace to its
// client: a client that stops reading ends the trace after this long,
// which frees the network for the next one. A variable for tests.
var traceWriteTimeout = 30 * time.Second

// serveTrace streams a trace of a network as a pcap file (GET
// PathTrace?count=N&duration=D) until count frames were written, the
// duration passed, the client went away, the network was removed or the
// daemon stops; then the trailer TraceDroppedTrailer says how many
// frames the datapath could not record because this reader was behind.
// A write that takes longer than traceWriteTimeout (the client stopped
// reading) or fails ends the trace too. It holds d.mu only to find the
// network.
func (d *Daemon) serveTrace(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) {
		d.handle(func(*http.Request) (any, error) { return nil, err })(w, r)
	}
	q := r.URL.Query()
	count, duration := 0, time.Duration(0)
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fail(bad("bad count %q: want a number of frames, 0 for no bound", v))
			return
		}
		count = n
	}
	if v := q.Get("duration"); v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t < 0 {
			fail(bad("bad duration %q: want a Go duration such as 10s or 1m, 0 for no bound", v))
			return
		}
		duration = t
	}
	d.mu.Lock()
	n, err := d.running(r.PathValue("name"))
	var sw *vswitch.Network
	if err == nil {
		sw = n.sw
	}
	d.mu.Unlock()
	if err != nil {
		fail(err)
		return
	}
	tr, err := sw.StartTrace(vswitch.TraceConfig{})
	if errors.Is(err, vswitch.ErrTraceBusy) {
		err = conflict("network %s is being traced already; one trace at a time", r.PathValue("name"))
	}
	if err != nil {
		fail(err)
		return
	}
	defer tr.Stop()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	rc := http.NewResponseController(w)
	go func() {
		select {
		case <-d.stopping:
			cancel()
			// Unblock a write in progress: the daemon's Shutdown
			// waits for this handler.
			rc.SetWriteDeadline(time.Now())
		case <-ctx.Done():
		}
	}()
	// Each write gets traceWriteTimeout: a client that stops reading
	// must not hold the trace (and the network's one tracer) forever.
	deadline := func() bool {
		return ctx.Err() == nil && rc.SetWriteDeadline(time.Now().Add(traceWriteTimeout)) == nil
	}
	// The server's read timeout is for requests, not for a stream that
	// may run for hours: it would end the request's context.
	rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	w.Header().Set("Trailer", api.TraceDroppedTrailer)
	w.WriteHeader(http.StatusOK)
	pw := pcap.NewWriter(w)
	if !deadline() || pw.WriteFileHeader(traceSnapLen, pcap.LinkTypeEthernet) != nil || rc.Flush() != nil {
		return
	}
	for written := 0; count == 0 || written < count; written++ {
		f, err := tr.Next(ctx)
		if err != nil || !deadline() {
			break
		}
		if pw.WritePacket(f.Time, f.Data, f.Len) != nil {
			break
		}
		if tr.Queued() == 0 && rc.Flush() != nil {
			break
		}
	}
	tr.Stop()
	// The trailer, when the stream ended in time; after a failed write
	// it fails too, at once.
	rc.SetWriteDeadline(time.Now().Add(traceWriteTimeout))
	w.Header().Set(api.TraceDroppedTrailer, strconv.FormatUint(tr.Dropped(), 10))
}
