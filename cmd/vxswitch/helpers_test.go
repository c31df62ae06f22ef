package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// vxbin builds the vxswitch binary once per test run.
func vxbin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "vxswitch-bin-")
		if binErr == nil {
			binPath, binErr = topo.BuildBinary(binDir)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// testCtx is a context that ends a little before the test's deadline, so a
// hung step fails the test (and its cleanups run) instead of the whole
// binary panicking at -timeout.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-10*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

// cluster is N hosts, each with a vxswitch daemon (binary mode) and one
// network "net" (VNI 256, 10.0.0.0/24) meshed with the others, and one
// container per host at 10.0.0.(i+2).
type cluster struct {
	tp    *topo.Topo
	hosts []*topo.Host
	ds    []*topo.Daemon
	nets  []*topo.VXNet
	ctrs  []*topo.Container
	macs  []net.HardwareAddr // the containers'
}

func newCluster(t *testing.T, n int, daemonArgs ...string) *cluster {
	t.Helper()
	return newClusterOn(t, topo.Options{}, n, daemonArgs...)
}

// newClusterOn is newCluster on an underlay made with opts.
func newClusterOn(t *testing.T, opts topo.Options, n int, daemonArgs ...string) *cluster {
	t.Helper()
	return newClusterArgs(t, opts, n, func(*topo.Host) []string { return daemonArgs })
}

// newClusterArgs is newClusterOn with each host's daemon flags from args.
func newClusterArgs(t *testing.T, opts topo.Options, n int, args func(*topo.Host) []string) *cluster {
	t.Helper()
	tp := topo.New(t, opts)
	c := &cluster{tp: tp}
	bin := vxbin(t)
	var nets []topo.Network
	for i := range n {
		h := tp.MustHost(fmt.Sprintf("h%d", i+1))
		d := h.MustVXSwitch(topo.DaemonOptions{Binary: bin, Args: args(h)})
		nt := d.MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24"})
		c.hosts, c.ds, c.nets = append(c.hosts, h), append(c.ds, d), append(c.nets, nt)
		nets = append(nets, nt)
	}
	tp.MustMesh(nets...)
	for i, nt := range c.nets {
		ct := tp.MustContainer(fmt.Sprintf("c%d", i+1))
		c.macs = append(c.macs, tp.MustAttach(nt, ct, fmt.Sprintf("10.0.0.%d/24", i+2)))
		c.ctrs = append(c.ctrs, ct)
	}
	return c
}

func ping(t *testing.T, from *topo.Container, ip string) {
	t.Helper()
	if out, err := from.Run(testCtx(t), "ping", "-c", "3", "-i", "0.2", "-W", "5", ip); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", ip, from.Name, err, out)
	}
}

// transfer sends size pseudo-random bytes over TCP from one namespace to a
// server in another and checks that the SHA-256 of what arrived equals
// that of what was sent.
func transfer(t *testing.T, from, to *topo.Container, addr string, size int64) {
	t.Helper()
	gatedTransfer(t, from, to, addr, size, nil, nil)
}

// gatedTransfer is transfer that, given halfway, sends the first half,
// closes halfway and waits for resume to close before it sends the rest,
// so that whatever the caller does meanwhile happens during the transfer.
func gatedTransfer(t *testing.T, from, to *topo.Container, addr string, size int64, halfway chan<- struct{}, resume <-chan struct{}) {
	t.Helper()
	ctx := testCtx(t)
	ln, err := to.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		h := sha256.New()
		n, err := io.Copy(h, conn)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		got <- r
	}()
	conn, err := from.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), h)
	if halfway != nil {
		if _, err := io.CopyN(conn, src, size/2); err != nil {
			t.Fatalf("send: %v", err)
		}
		close(halfway)
		select {
		case <-resume:
		case <-ctx.Done():
			t.Fatal("transfer: never resumed")
		}
	}
	if _, err := io.Copy(conn, src); err != nil {
		t.Fatalf("send: %v", err)
	}
	conn.Close()
	var want [32]byte
	copy(want[:], h.Sum(nil))
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("receive: %v", r.err)
		}
		if r.n != size || r.sum != want {
			t.Fatalf("received %d bytes with sha256 %x, sent %d with %x", r.n, r.sum, size, want)
		}
	case <-ctx.Done():
		t.Fatal("transfer timed out")
	}
}

func cli(t *testing.T, d *topo.Daemon, args ...string) string {
	t.Helper()
	out, errOut, err := d.CLI(testCtx(t), args...)
	if err != nil {
		t.Fatalf("vxswitch %s: %v: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func stats(t *testing.T, n *topo.VXNet) api.NetworkStats {
	t.Helper()
	s, err := n.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fdbJSON(t *testing.T, d *topo.Daemon, network string) []api.FDBEntry {
	t.Helper()
	var out []api.FDBEntry
	if err := json.Unmarshal([]byte(cli(t, d, "fdb", "show", network, "--json")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually polls cond every 100 ms until it holds or ctx ends. It is
// for waiting on state changes (an entry aging out), never for timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting: %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// offloadModes runs fn once with the fast path (the default) and once with
// --offload=off: every end-to-end behaviour must hold in both.
func offloadModes(t *testing.T, fn func(t *testing.T, args []string)) {
	for _, m := range []struct {
		name string
		args []string
	}{{"offload=on", nil}, {"offload=off", []string{"--offload=off"}}} {
		t.Run(m.name, func(t *testing.T) { fn(t, m.args) })
	}
}
