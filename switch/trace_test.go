package vswitch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
)

// A trace records the frames forwarded both ways, drops what the reader
// has no room for, allocates nothing per frame once its records have
// grown, and ends when stopped.
func TestTrace(t *testing.T) {
	sw, n, _ := newDiscardNet(t, NetworkConfig{VNI: 256}, true)
	if err := n.fib.Add(macA, peer2, fib.Static); err != nil {
		t.Fatal(err)
	}
	tr, err := n.StartTrace(TraceConfig{Queue: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.StartTrace(TraceConfig{}); !errors.Is(err, ErrTraceBusy) {
		t.Fatalf("a second trace: %v, want ErrTraceBusy", err)
	}
	out := kframe{b: frame(macA, macB, encap.EtherTypeIPv4, []byte("to the overlay"))}
	in := frame(macB, macA, encap.EtherTypeIPv4, []byte("from the overlay"))
	inD := vxlan(256, in)
	tx := newTxLoop(n)
	rx := newRxLoop(sw)
	tx.batch(loadTX(tx, out))
	rx.batch(loadRX(rx, peer2, inD))
	// The superframe goes in whole, before it is cut into segments.
	sf := superframe(t, make([]byte, 20000))
	tx.batch(loadTX(tx, sf))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // nothing may block
	defer cancel()
	for i, want := range []struct {
		dir  TraceDir
		data []byte
	}{{TraceOut, out.b}, {TraceIn, in}, {TraceOut, sf.b}} {
		f, err := tr.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Dir != want.dir || f.Len != len(want.data) || string(f.Data) != string(want.data) {
			t.Errorf("frame %d: %v %d bytes, want %v %d bytes", i, f.Dir, f.Len, want.dir, len(want.data))
		}
	}
	// Room for four: the fifth frame and later ones are dropped, not
	// waited for.
	tx.batch(loadTX(tx, out, out, out, out, out, out))
	if tr.Queued() != 4 || tr.Dropped() != 2 {
		t.Errorf("%d queued, %d dropped; want 4 and 2", tr.Queued(), tr.Dropped())
	}
	for range 4 {
		if _, err := tr.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		tx.batch(loadTX(tx, out, sf))
		rx.batch(loadRX(rx, peer2, inD))
		for range 3 {
			if _, err := tr.Next(ctx); err != nil {
				panic(err)
			}
		}
	}); a != 0 {
		t.Errorf("%v allocations per batch while tracing", a)
	}
	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	if _, err := tr.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next with nothing recorded: %v", err)
	}
	tx.batch(loadTX(tx, out))
	tr.Stop()
	if _, err := tr.Next(ctx); err != nil {
		t.Errorf("a frame queued before Stop is still read: %v", err)
	}
	if _, err := tr.Next(ctx); !errors.Is(err, ErrTraceStopped) {
		t.Errorf("after Stop: %v", err)
	}
	if n.tracer.Load() != nil {
		t.Error("the network still has the tracer")
	}
	tr2, err := n.StartTrace(TraceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.RemoveNetwork(256); err != nil {
		t.Fatal(err)
	}
	if _, err := tr2.Next(ctx); !errors.Is(err, ErrTraceStopped) {
		t.Errorf("after RemoveNetwork: %v", err)
	}
}
