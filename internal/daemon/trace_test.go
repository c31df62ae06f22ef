package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	vswitch "github.com/vxswitch/vxswitch/switch"
	"github.com/vxswitch/vxswitch/tap"
)

// nullUnderlay sends everything into the void and receives nothing.
type nullUnderlay struct{ closed chan struct{} }

func (u *nullUnderlay) Recv([]vswitch.RecvMsg) (int, error) { <-u.closed; return 0, net.ErrClosed }
func (u *nullUnderlay) Send([]vswitch.SendMsg) (int, error) { return 0, nil }
func (u *nullUnderlay) BatchSize() int                      { return 8 }
func (u *nullUnderlay) Close() error                        { close(u.closed); return nil }

// floodTAP hands the switch a broadcast frame whenever it reads: a
// network with endless traffic to trace.
type floodTAP struct{ closed chan struct{} }

func (f *floodTAP) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-f.closed:
		return 0, tap.ErrClosed
	case <-time.After(100 * time.Microsecond):
	}
	b := bufs[0][offset:]
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
	sizes[0] = 1000 // an IEEE local experimental ethertype, then zeros
	return 1, nil
}
func (f *floodTAP) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil }
func (f *floodTAP) BatchSize() int                          { return 1 }
func (f *floodTAP) Name() string                            { return "flood0" }
func (f *floodTAP) MTU() int                                { return 1500 }
func (f *floodTAP) Close() error                            { close(f.closed); return nil }

// traceServer serves the trace of one network, named net, whose TAP
// sends frames all the time.
func traceServer(t *testing.T) (*Daemon, *vswitch.Network, *httptest.Server) {
	t.Helper()
	sw, err := vswitch.New(vswitch.Config{Underlay: &nullUnderlay{closed: make(chan struct{})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	n, err := sw.AddNetwork(vswitch.NetworkConfig{VNI: 7, TAP: &floodTAP{closed: make(chan struct{})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.FIB().AddPeer(netip.MustParseAddr("198.18.0.2")); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{log: zap.NewNop(), nets: map[string]*network{"net": {sw: n}}, stopping: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /trace/{name}", d.serveTrace)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return d, n, srv
}

// waitUntraced waits until a trace of n can start again, and stops that
// one.
func waitUntraced(t *testing.T, n *vswitch.Network, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tr, err := n.StartTrace(vswitch.TraceConfig{})
		if err == nil {
			tr.Stop()
			return
		}
		if !errors.Is(err, vswitch.ErrTraceBusy) || time.Now().After(deadline) {
			t.Fatalf("%s: the network is still traced: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startTrace sends a trace request on a raw connection and reads the
// response's header.
func startTrace(t *testing.T, srv *httptest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /trace/net HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReaderSize(c, 64)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("trace: %s", resp.Status)
	}
	return c, br
}

// A client that stops reading ends its trace once a write has waited
// traceWriteTimeout, and the network can be traced again; so does a
// client that goes away mid-trace. Either way the next trace starts.
func TestTraceStuckClient(t *testing.T) {
	old := traceWriteTimeout
	traceWriteTimeout = 200 * time.Millisecond
	t.Cleanup(func() { traceWriteTimeout = old })
	_, n, srv := traceServer(t)

	t.Run("stops reading", func(t *testing.T) {
		c, br := startTrace(t, srv)
		if _, err := io.ReadFull(br, make([]byte, 4096)); err != nil {
			t.Fatalf("reading the trace: %v", err)
		}
		// Read nothing more: the socket buffers fill, a write waits.
		waitUntraced(t, n, "a client that stopped reading")
		c.Close()
	})
	t.Run("disconnects", func(t *testing.T) {
		c, br := startTrace(t, srv)
		if _, err := io.ReadFull(br, make([]byte, 4096)); err != nil {
			t.Fatalf("reading the trace: %v", err)
		}
		c.Close()
		waitUntraced(t, n, "a client that went away")
	})
	t.Run("next trace", func(t *testing.T) {
		c, br := startTrace(t, srv)
		if _, err := io.ReadFull(br, make([]byte, 4096)); err != nil {
			t.Fatalf("reading the trace: %v", err)
		}
		c.Close()
	})
}
