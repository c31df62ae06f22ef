package daemon

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	vswitch "github.com/vxswitch/vxswitch/switch"
)

// traceSnapLen is the snap length in the pcap header: tcpdump's largest,
// above the longest frame a trace records (vswitch.DefaultTraceSnapLen).
const traceSnapLen = 262144

// serveTrace streams a trace of a network as a pcap file (GET
// PathTrace?count=N&duration=D) until count frames were written, the
// duration passed, the client went away, the network was removed or the
// daemon stops; then the trailer TraceDroppedTrailer says how many
// frames the datapath could not record because this reader was behind.
// It holds d.mu only to find the network.
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
	go func() {
		select {
		case <-d.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	rc := http.NewResponseController(w)
	// The server's read timeout is for requests, not for a stream that
	// may run for hours: it would end the request's context.
	rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	w.Header().Set("Trailer", api.TraceDroppedTrailer)
	w.WriteHeader(http.StatusOK)
	pw := pcapgo.NewWriter(w)
	if pw.WriteFileHeader(traceSnapLen, layers.LinkTypeEthernet) != nil {
		return
	}
	rc.Flush()
	for written := 0; count == 0 || written < count; written++ {
		f, err := tr.Next(ctx)
		if err != nil {
			break
		}
		ci := gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(f.Data), Length: f.Len}
		if pw.WritePacket(ci, f.Data) != nil {
			break
		}
		if tr.Queued() == 0 {
			rc.Flush()
		}
	}
	tr.Stop()
	w.Header().Set(api.TraceDroppedTrailer, strconv.FormatUint(tr.Dropped(), 10))
}
