package vswitch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Tracing: a copy of every frame a network forwards, both ways, for
// `vxswitch trace`.
//
// A Network holds an atomic pointer to its Tracer, nil when nobody
// traces: the loops load it once per frame they forward and do nothing
// else while it is nil. A Tracer has a fixed number of records, each a
// buffer reused from frame to frame; a loop takes a free record without
// waiting, copies the frame into it and queues it for the reader. When
// no record is free (the reader is slower than the traffic), the frame
// is not recorded and counted as dropped: tracing never makes the
// datapath wait.

// TraceDir is the way a traced frame crossed the switch.
type TraceDir uint8

// Directions of traced frames.
const (
	// TraceOut: read from the network's TAP and sent into the overlay.
	TraceOut TraceDir = iota
	// TraceIn: received from the overlay, on its way to the TAP.
	TraceIn
)

func (d TraceDir) String() string {
	if d == TraceIn {
		return "in"
	}
	return "out"
}

// ErrTraceBusy is returned by StartTrace while another trace of the
// network runs.
var ErrTraceBusy = errors.New("the network is being traced already")

// ErrTraceStopped is returned by Tracer.Next once the trace was stopped
// and every frame it recorded was read.
var ErrTraceStopped = errors.New("trace stopped")

// TraceConfig configures a trace.
type TraceConfig struct {
	// Queue is how many frames may wait for the reader; 0 means 256. A
	// record keeps the largest frame it held (up to SnapLen), so a trace
	// of TSO traffic holds up to Queue×SnapLen bytes.
	Queue int
	// SnapLen is the most bytes kept of a frame; 0 means 65535 + 1024,
	// enough for a whole TSO or USO superframe.
	SnapLen int
}

// Defaults of TraceConfig.
const (
	DefaultTraceQueue   = 256
	DefaultTraceSnapLen = 1<<16 + 1024
	// traceRecCap is the size a record starts with: an MTU-sized frame.
	traceRecCap = 2048
)

// TracedFrame is one frame of a trace.
type TracedFrame struct {
	Time time.Time
	Dir  TraceDir
	// Len is the frame's length; Data holds at most SnapLen bytes of it.
	Len  int
	Data []byte
}

type traceRec struct {
	f TracedFrame
}

// Tracer records the frames a network forwards. StartTrace makes one;
// one goroutine reads it with Next.
type Tracer struct {
	n                 *Network
	snap              int
	free, full        chan *traceRec
	cur               *traceRec // the record Next returned last
	recorded, dropped atomic.Uint64
	done              chan struct{}
	stopOnce          sync.Once
}

// StartTrace starts recording the frames network n forwards: frames read
// from its TAP and sent into the overlay (after the filters; a TSO or USO
// superframe as the TAP handed it over, before it is cut into segments),
// and frames received from the overlay for it that passed the checks in
// front of its TAP (a superframe from a kernel peer as it came, before it
// is split; segments one by one, before they are coalesced). One trace
// runs at a time per network (ErrTraceBusy). Stop it with Stop; removing
// the network stops it too.
func (n *Network) StartTrace(cfg TraceConfig) (*Tracer, error) {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultTraceQueue
	}
	if cfg.SnapLen <= 0 {
		cfg.SnapLen = DefaultTraceSnapLen
	}
	// One record more than Queue: the one the reader holds.
	t := &Tracer{n: n, snap: cfg.SnapLen, free: make(chan *traceRec, cfg.Queue+1), full: make(chan *traceRec, cfg.Queue+1),
		done: make(chan struct{})}
	for range cfg.Queue + 1 {
		t.free <- &traceRec{f: TracedFrame{Data: make([]byte, 0, min(traceRecCap, cfg.SnapLen))}}
	}
	n.ctlMu.Lock()
	defer n.ctlMu.Unlock()
	if n.removed {
		return nil, ErrNoNetwork
	}
	if !n.tracer.CompareAndSwap(nil, t) {
		return nil, ErrTraceBusy
	}
	return t, nil
}

// record copies frame into a free record and queues it, or counts it as
// dropped if none is free. Called by the loops; never blocks.
func (t *Tracer) record(dir TraceDir, frame []byte) {
	select {
	case r := <-t.free:
		r.f.Time, r.f.Dir, r.f.Len = time.Now(), dir, len(frame)
		r.f.Data = append(r.f.Data[:0], frame[:min(len(frame), t.snap)]...)
		t.recorded.Add(1)
		t.full <- r // never blocks: full has room for every record
	default:
		t.dropped.Add(1)
	}
}

// Next waits for the next recorded frame and returns it; its Data is
// valid until the next call. After Stop (or the network's removal) it
// returns the frames still queued, then ErrTraceStopped; when ctx is done
// first, ctx's error.
func (t *Tracer) Next(ctx context.Context) (TracedFrame, error) {
	if t.cur != nil {
		t.free <- t.cur
		t.cur = nil
	}
	select {
	case r := <-t.full:
		t.cur = r
		return r.f, nil
	default:
	}
	select {
	case r := <-t.full:
		t.cur = r
		return r.f, nil
	case <-ctx.Done():
		return TracedFrame{}, ctx.Err()
	case <-t.done:
		select {
		case r := <-t.full:
			t.cur = r
			return r.f, nil
		default:
			return TracedFrame{}, ErrTraceStopped
		}
	}
}

// Queued returns how many recorded frames wait for Next.
func (t *Tracer) Queued() int { return len(t.full) }

// Dropped returns how many frames were not recorded because every
// record was waiting for the reader.
func (t *Tracer) Dropped() uint64 { return t.dropped.Load() }

// Recorded returns how many frames were recorded (read or queued).
func (t *Tracer) Recorded() uint64 { return t.recorded.Load() }

// Done is closed when the trace stops.
func (t *Tracer) Done() <-chan struct{} { return t.done }

// Stop stops recording; frames already queued can still be read.
func (t *Tracer) Stop() {
	t.n.tracer.CompareAndSwap(t, nil)
	t.stop()
}

func (t *Tracer) stop() { t.stopOnce.Do(func() { close(t.done) }) }
