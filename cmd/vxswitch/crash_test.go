package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

var crashIterations = flag.Int("crash-iterations", envInt("VXSWITCH_CRASH_ITERATIONS", 50),
	"iterations of TestCrashLoop and TestCrashLoopStore (env VXSWITCH_CRASH_ITERATIONS)")

var crashSeed = flag.Uint64("crash-seed", uint64(envInt("VXSWITCH_CRASH_SEED", 0)),
	"seed of the crash loops' choices, to repeat a run (env VXSWITCH_CRASH_SEED; 0: from the clock)")

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// The crash points of the daemon (internal/daemon/crash.go) that each
// operation passes, in order.
var crashPoints = map[string][]string{
	"create": {"create:namespace", "create:started", "save:written", "save:linked", "create:committed"},
	"rm":     {"save:written", "save:linked", "rm:committed", "rm:stopped"},
	"attach": {"attach:allocated", "attach:plumbed", "save:written", "save:linked", "attach:committed"},
	"detach": {"save:written", "save:linked", "detach:committed"},
}

const (
	crashNets = 3 // n1..n3: VNI 301.., 10.1.K.0/24, gateway 10.1.K.1 on host 1
	crashCtrs = 4 // c1..c4 on host 1; container cJ is eK in network nK
)

// crashOp is one operation of the loop.
type crashOp struct {
	kind string // create, rm, attach, detach
	net  int    // 1..crashNets
	ctr  int    // 1..crashCtrs (attach, detach)
}

func (o crashOp) String() string {
	if o.ctr == 0 {
		return fmt.Sprintf("%s n%d", o.kind, o.net)
	}
	return fmt.Sprintf("%s c%d n%d", o.kind, o.ctr, o.net)
}

// crashModel is what is configured: network K → its containers J.
type crashModel map[int]map[int]bool

func (m crashModel) String() string {
	var parts []string
	for k := 1; k <= crashNets; k++ {
		if ctrs, ok := m[k]; ok {
			var cs []string
			for j := 1; j <= crashCtrs; j++ {
				if ctrs[j] {
					cs = append(cs, "c"+strconv.Itoa(j))
				}
			}
			parts = append(parts, fmt.Sprintf("n%d[%s]", k, strings.Join(cs, " ")))
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func (m crashModel) clone() crashModel {
	out := crashModel{}
	for k, ctrs := range m {
		out[k] = map[int]bool{}
		for j, v := range ctrs {
			out[k][j] = v
		}
	}
	return out
}

// apply is the model after o succeeds.
func (m crashModel) apply(o crashOp) crashModel {
	out := m.clone()
	switch o.kind {
	case "create":
		out[o.net] = map[int]bool{}
	case "rm":
		delete(out, o.net)
	case "attach":
		out[o.net][o.ctr] = true
	case "detach":
		delete(out[o.net], o.ctr)
	}
	return out
}

// ops are the operations valid in m.
func (m crashModel) ops() []crashOp {
	var out []crashOp
	for k := 1; k <= crashNets; k++ {
		ctrs, ok := m[k]
		if !ok {
			out = append(out, crashOp{kind: "create", net: k})
			continue
		}
		if len(ctrs) == 0 {
			out = append(out, crashOp{kind: "rm", net: k})
		}
		for j := 1; j <= crashCtrs; j++ {
			if ctrs[j] {
				out = append(out, crashOp{kind: "detach", net: k, ctr: j})
			} else {
				out = append(out, crashOp{kind: "attach", net: k, ctr: j})
			}
		}
	}
	return out
}

// SIGKILL at random points of network create, attach, detach and rm, in a
// loop, each followed by a restart: the daemon always comes back
// consistent. Every other iteration kills it at a named point between two
// steps of the operation (VXSWITCH_CRASHPOINT, cycling through them all);
// the others after a random delay within the operations' measured
// duration. After each restart: an acknowledged operation is kept and an
// interrupted one happened wholly or not at all; every listed network is
// up with its namespace, bridge and TAP, and every listed endpoint has
// its interface with its address and MAC in its container, its veth on
// br0, and pings its gateway and, over VXLAN, a container on a second
// host; nothing is listed twice and no address is used twice; and
// nothing of the daemon's is left that the state does not list
// (namespaces, veths, TAPs, interfaces in the containers, temporary state
// files).
func TestCrashLoop(t *testing.T) {
	tp := topo.New(t)
	bin := vxbin(t)
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")

	// Host 2 never crashes: each network has a container there at .250,
	// and host 1 as its peer.
	d2 := h2.MustVXSwitch(topo.DaemonOptions{Binary: bin})
	for k := 1; k <= crashNets; k++ {
		n := d2.MustNetwork(topo.NetConfig{Name: fmt.Sprintf("n%d", k), VNI: uint32(300 + k), Subnet: fmt.Sprintf("10.1.%d.0/24", k)})
		if err := n.AddPeer(h1.Addr); err != nil {
			t.Fatal(err)
		}
		tp.MustAttach(n, tp.MustContainer(fmt.Sprintf("r%d", k)), fmt.Sprintf("10.1.%d.250/24", k))
	}

	arm := armCrashpoints(t) // for host 1's daemon, started next
	d1 := h1.MustVXSwitch(topo.DaemonOptions{Binary: bin})
	cc := &crashCheck{t: t, d: d1, ctrs: crashContainers(tp), peer: h2.Addr.String()}
	l := &crashLoop{t: t, cc: cc, points: crashPoints, arm: arm, run: crashRun(d1, cc.ctrs), restarted: cc.check}
	l.loop(*crashIterations)
}

// armCrashpoints points VXSWITCH_CRASHPOINT, for the daemons started
// after it, at a file, and returns the function that names the point
// they die at ("": none).
func armCrashpoints(t *testing.T) func(point string) {
	crashFile := filepath.Join(t.TempDir(), "crashpoint")
	arm := func(point string) {
		if err := os.WriteFile(crashFile, []byte(point), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	arm("")
	t.Setenv("VXSWITCH_CRASHPOINT", crashFile)
	return arm
}

// crashContainers makes host 1's containers c1..crashCtrs (index 0 is
// nil).
func crashContainers(tp *topo.Topo) []*topo.Container {
	ctrs := make([]*topo.Container, crashCtrs+1)
	for j := 1; j <= crashCtrs; j++ {
		ctrs[j] = tp.MustContainer(fmt.Sprintf("c%d", j))
	}
	return ctrs
}

// crashRun returns what runs an operation of the loop on d: network K
// is VNI 300+K, 10.1.K.0/24 with gateway 10.1.K.1; container cJ joins it
// as eK.
func crashRun(d *topo.Daemon, ctrs []*topo.Container) func(context.Context, crashOp) error {
	return func(ctx context.Context, o crashOp) error {
		c := d.Client
		name := fmt.Sprintf("n%d", o.net)
		switch o.kind {
		case "create":
			_, err := c.CreateNetwork(ctx, api.NetworkCreate{Name: name, VNI: uint32(300 + o.net),
				Subnet: fmt.Sprintf("10.1.%d.0/24", o.net), Gateway: fmt.Sprintf("10.1.%d.1", o.net)})
			return err
		case "rm":
			return c.RemoveNetwork(ctx, name)
		case "attach":
			_, err := c.Attach(ctx, name, api.Attach{Netns: ctrs[o.ctr].Path, IfName: fmt.Sprintf("e%d", o.net)})
			return err
		default:
			return c.Detach(ctx, name, api.Detach{Netns: ctrs[o.ctr].Path})
		}
	}
}

// crashLoop is the loop both crash tests run on the daemon cc.d: a
// random operation valid in the model, killed at a crash point or after
// a random delay, a restart, the audit, and the model checked against
// what the operation may have left.
type crashLoop struct {
	t      *testing.T
	cc     *crashCheck
	points map[string][]string // the crash points each kind of operation passes
	arm    func(point string)
	run    func(context.Context, crashOp) error
	// before, if set, runs before each operation (not killed).
	before func(o crashOp)
	// restarted audits the restarted daemon and returns the model of
	// what it has.
	restarted func(when string) crashModel
}

func (l *crashLoop) loop(iterations int) {
	t, cc, d1 := l.t, l.cc, l.cc.d
	// Calibrate the random delays on this machine: each kind of
	// operation, done once without a crash; a random kill comes within
	// that long of the request.
	model := crashModel{}
	took := map[string]time.Duration{}
	for _, o := range []crashOp{{kind: "create", net: 1}, {kind: "attach", net: 1, ctr: 1}, {kind: "detach", net: 1, ctr: 1}, {kind: "rm", net: 1}} {
		if l.before != nil {
			l.before(o)
		}
		start := time.Now()
		if err := l.run(testCtx(t), o); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		took[o.kind] = time.Since(start)
	}
	t.Logf("operations took %v: random kills land within as long of a request", took)

	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (-crash-seed to repeat the operations and crash points)", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	var (
		pointKills, pointMissed int // crash points reached, and not (a bug: each is on the success path)
		randomKills, inFlight   int // random kills, and those with the request in flight
		halfMade                int // kills that left something half-made for the restart to clean
		acked                   int
		pointIdx                = map[string]int{}
	)
	for i := range iterations {
		ops := model.ops()
		o := ops[rng.IntN(len(ops))]
		want := model.apply(o)
		if l.before != nil {
			l.before(o)
		}
		ctx := testCtx(t)
		var err error
		how := ""
		if i%2 == 0 {
			pts := l.points[o.kind]
			pt := pts[pointIdx[o.kind]%len(pts)]
			pointIdx[o.kind]++
			how = "at " + pt
			l.arm(pt)
			err = l.run(ctx, o)
			l.arm("")
			if cc.alive() {
				pointMissed++
				t.Errorf("iteration %d: %s: the daemon passed crash point %s alive (err %v)", i, o, pt, err)
			} else {
				pointKills++
			}
		} else {
			delay := time.Duration(rng.Int64N(int64(took[o.kind]) + 1))
			how = fmt.Sprintf("after %v", delay.Round(time.Microsecond))
			errc := make(chan error, 1)
			go func() { errc <- l.run(ctx, o) }()
			time.Sleep(delay)
			select {
			case err = <-errc:
				d1.KillForTest(syscall.SIGKILL)
			default:
				d1.KillForTest(syscall.SIGKILL)
				err = <-errc
				if err != nil && !errors.Is(err, api.ErrDaemonDown) {
					inFlight++ // sent, and not answered
				}
			}
			randomKills++
		}
		if err != nil && !transportError(err) {
			t.Errorf("iteration %d: %s (killed %s) was refused: %v", i, o, how, err)
		}
		if err == nil {
			acked++
		}
		out := d1.Output()
		d1.Stop()
		if left := cc.leftovers(); len(left) > 0 {
			halfMade++
			t.Logf("iteration %d: %s killed %s left %s", i, o, how, strings.Join(left, ", "))
		}
		if err := d1.Start(); err != nil {
			t.Fatalf("iteration %d: %s killed %s: restart: %v\nlog before the kill:\n%s", i, o, how, err, out)
		}
		got := l.restarted(fmt.Sprintf("iteration %d: %s killed %s", i, o, how))
		switch {
		case err == nil && got.String() != want.String():
			t.Errorf("iteration %d: %s killed %s was acknowledged, yet the daemon has %s, want %s", i, o, how, got, want)
		case err != nil && got.String() != want.String() && got.String() != model.String():
			t.Errorf("iteration %d: %s killed %s left %s: neither %s (before) nor %s (after)", i, o, how, got, model, want)
		}
		if t.Failed() {
			t.Fatalf("stopping at iteration %d; daemon log before the kill:\n%s\nafter the restart:\n%s", i, out, d1.Output())
		}
		model = got
	}
	t.Logf("%d iterations: %d kills at crash points, %d random kills (%d with the request in flight, %d acknowledged before the kill); %d kills left something half-made, which the restart removed",
		iterations, pointKills, randomKills, inFlight, acked, halfMade)
	if pointMissed > 0 {
		t.Errorf("%d crash points were not reached", pointMissed)
	}
}

// transportError reports whether err is the client's connection to the
// daemon failing (the daemon died), not the daemon's refusal.
func transportError(err error) bool {
	var se *api.StatusError
	return !errors.As(err, &se)
}

// crashCheck audits host 1's daemon against what it lists.
type crashCheck struct {
	t    *testing.T
	d    *topo.Daemon
	ctrs []*topo.Container
	peer string // host 2's VTEP
	// self is host 1's VTEP with a cluster store, "" without: then the
	// networks come from the store (one with no endpoint on host 1 has
	// no copy there), other hosts' endpoints are listed too, the flood
	// list is the store's, and names resolve at the gateway.
	self string
}

func (c *crashCheck) alive() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.d.Client.Info(ctx)
	return err == nil
}

// leftovers lists, with the daemon stopped, what its state file does
// not account for: namespaces under its run dir, veths in the networks'
// namespaces, temporary state files. The restart must remove them.
func (c *crashCheck) leftovers() []string {
	var st struct {
		Networks []struct {
			VNI       uint32 `json:"vni"`
			Endpoints []struct {
				Veth string `json:"veth"`
			} `json:"endpoints"`
		} `json:"networks"`
	}
	b, err := os.ReadFile(filepath.Join(c.d.StateDir, "state.json"))
	if err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			c.t.Fatalf("state file after a kill: %v\n%s", err, b)
		}
	}
	var out []string
	veths := map[string]bool{}
	nets := map[string]bool{}
	for _, n := range st.Networks {
		nets["vx-"+strconv.Itoa(int(n.VNI))] = true
		for _, e := range n.Endpoints {
			veths[e.Veth] = true
		}
	}
	ents, _ := os.ReadDir(filepath.Join(c.d.RunDir, "netns"))
	for _, e := range ents {
		if !nets[e.Name()] {
			out = append(out, "namespace "+e.Name())
			continue
		}
		for _, l := range c.links(filepath.Join(c.d.RunDir, "netns", e.Name())) {
			if l.Type() == "veth" && !veths[l.Attrs().Name] {
				out = append(out, "veth "+l.Attrs().Name+" in "+e.Name())
			}
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(c.d.StateDir, ".state.json.*")); len(tmps) > 0 {
		out = append(out, fmt.Sprintf("temporary state files %v", tmps))
	}
	return out
}

func (c *crashCheck) links(netns string) []netlink.Link {
	h, err := nsutil.Handle(netns)
	if err != nil {
		c.t.Errorf("open %s: %v", netns, err)
		return nil
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		c.t.Errorf("links of %s: %v", netns, err)
	}
	return links
}

// check audits the restarted daemon (see TestCrashLoop) and returns
// the model of what it lists.
func (c *crashCheck) check(when string) crashModel {
	t := c.t
	t.Helper()
	ctx := testCtx(t)
	nets, err := c.d.Client.Networks(ctx)
	if err != nil {
		t.Fatalf("%s: network ls: %v", when, err)
	}
	got := crashModel{}
	ctrIfs := map[int][]string{}  // container → the interfaces its endpoints name
	ctrNets := map[int][]string{} // container → the networks of its endpoints
	wantNS := []string{}
	for _, sum := range nets {
		n, err := c.d.Client.Network(ctx, sum.Name)
		if err != nil {
			t.Fatalf("%s: inspect %s: %v", when, sum.Name, err)
		}
		k, err := strconv.Atoi(strings.TrimPrefix(n.Name, "n"))
		if err != nil || k < 1 || k > crashNets || n.VNI != uint32(300+k) {
			t.Errorf("%s: unexpected network %s (VNI %d)", when, n.Name, n.VNI)
			continue
		}
		if _, dup := got[k]; dup {
			t.Errorf("%s: network %s listed twice", when, n.Name)
		}
		got[k] = map[int]bool{}
		local := slices.DeleteFunc(slices.Clone(n.Endpoints), func(ep api.Endpoint) bool { return c.self != "" && ep.VTEP != c.self })
		if c.self != "" && n.Netns == "" && len(local) == 0 && n.Problem == "" {
			continue // the cluster's, with no copy on this host
		}
		if n.Problem != "" {
			t.Errorf("%s: network %s is down: %s", when, n.Name, n.Problem)
			continue
		}
		if want := filepath.Join(c.d.RunDir, "netns", "vx-"+strconv.Itoa(300+k)); n.Netns != want || !nsutil.IsNetns(want) {
			t.Errorf("%s: network %s: namespace %q, want %s mounted", when, n.Name, n.Netns, want)
			continue
		}
		wantNS = append(wantNS, filepath.Base(n.Netns))
		byName := map[string]netlink.Link{}
		var veths, taps []string
		for _, l := range c.links(n.Netns) {
			byName[l.Attrs().Name] = l
			switch l.Type() {
			case "veth":
				veths = append(veths, l.Attrs().Name)
			case "tuntap":
				taps = append(taps, l.Attrs().Name)
			}
		}
		br, ok := byName["br0"]
		if !ok || br.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: network %s: no br0 up", when, n.Name)
			continue
		}
		if tp, ok := byName[n.TAP]; !ok || tp.Attrs().MasterIndex != br.Attrs().Index || !slices.Equal(taps, []string{n.TAP}) {
			t.Errorf("%s: network %s: TAPs %v, want %s on br0", when, n.Name, taps, n.TAP)
		}
		ips, ids := map[string]bool{}, map[string]bool{}
		var epVeths []string
		for _, ep := range local {
			j := slices.IndexFunc(c.ctrs, func(ct *topo.Container) bool { return ct != nil && ct.Path == ep.Netns })
			if j < 0 || ep.Problem != "" {
				t.Errorf("%s: network %s: endpoint %+v", when, n.Name, ep)
				continue
			}
			if got[k][j] || ips[ep.IP] || ids[ep.ID] {
				t.Errorf("%s: network %s lists c%d, %s or %s twice", when, n.Name, j, ep.IP, ep.ID)
			}
			got[k][j], ips[ep.IP], ids[ep.ID] = true, true, true
			epVeths = append(epVeths, ep.Veth)
			ctrIfs[j] = append(ctrIfs[j], ep.IfName)
			ctrNets[j] = append(ctrNets[j], n.Name)
			if v, ok := byName[ep.Veth]; !ok || v.Attrs().MasterIndex != br.Attrs().Index || v.Attrs().Flags&net.FlagUp == 0 {
				t.Errorf("%s: network %s: c%d's veth %s is not up on br0", when, n.Name, j, ep.Veth)
			}
			c.checkIf(when, j, ep)
			if c.self != "" {
				if !slices.Contains(n.Peers, c.peer) {
					t.Errorf("%s: network %s: flood list %v, without host 2 (%s), which has an endpoint on it", when, n.Name, n.Peers, c.peer)
				}
				c.resolve(when, j, fmt.Sprintf("10.1.%d.1", k), fmt.Sprintf("r%d", k), fmt.Sprintf("10.1.%d.250", k))
			} else if !slices.Contains(n.Peers, c.peer) {
				if err := c.d.Client.AddPeer(ctx, n.Name, c.peer); err != nil {
					t.Fatal(err)
				}
				n.Peers = append(n.Peers, c.peer)
			}
			c.ping(when, j, fmt.Sprintf("10.1.%d.1", k))   // the gateway, on br0
			c.ping(when, j, fmt.Sprintf("10.1.%d.250", k)) // host 2's container, over VXLAN
		}
		slices.Sort(veths)
		slices.Sort(epVeths)
		if !slices.Equal(veths, epVeths) {
			t.Errorf("%s: network %s: veths %v in its namespace, its endpoints name %v", when, n.Name, veths, epVeths)
		}
	}
	var haveNS []string
	ents, _ := os.ReadDir(filepath.Join(c.d.RunDir, "netns"))
	for _, e := range ents {
		haveNS = append(haveNS, e.Name())
	}
	slices.Sort(wantNS)
	if !slices.Equal(haveNS, wantNS) {
		t.Errorf("%s: namespaces %v under the run dir, the networks have %v", when, haveNS, wantNS)
	}
	for j := 1; j < len(c.ctrs); j++ {
		var have []string
		for _, l := range c.links(c.ctrs[j].Path) {
			if l.Attrs().Name != "lo" {
				have = append(have, l.Attrs().Name)
			}
		}
		slices.Sort(have)
		slices.Sort(ctrIfs[j])
		if !slices.Equal(have, ctrIfs[j]) {
			t.Errorf("%s: container c%d has interfaces %v, its endpoints %v", when, j, have, ctrIfs[j])
		}
		// The resolv.conf an attach to a cluster network writes for a
		// named namespace goes with its endpoint.
		rc := filepath.Join(topo.EtcNetns, filepath.Base(c.ctrs[j].Path), "resolv.conf")
		if b, err := os.ReadFile(rc); err == nil {
			if rest, ok := strings.CutPrefix(string(b), "# written by vxswitch for network "); ok {
				if nw, _, _ := strings.Cut(rest, ";"); !slices.Contains(ctrNets[j], nw) {
					t.Errorf("%s: container c%d has %s written for network %s, and no endpoint on it", when, j, rc, nw)
				}
			}
		}
	}
	ents, _ = os.ReadDir(c.d.StateDir)
	for _, e := range ents {
		if !slices.Contains([]string{"state.json", "state.json.prev", "vxswitch.lock", "store-view.json"}, e.Name()) {
			t.Errorf("%s: unexpected file %s in the state dir", when, e.Name())
		}
	}
	return got
}

// checkIf checks that container j has the endpoint's interface with its
// address and MAC, up.
func (c *crashCheck) checkIf(when string, j int, ep api.Endpoint) {
	h, err := nsutil.Handle(c.ctrs[j].Path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(ep.IfName)
	if err != nil {
		c.t.Errorf("%s: c%d has no %s: %v", when, j, ep.IfName, err)
		return
	}
	if l.Attrs().HardwareAddr.String() != ep.MAC || l.Attrs().Flags&net.FlagUp == 0 {
		c.t.Errorf("%s: c%d's %s has MAC %s (up %v), want %s up", when, j, ep.IfName, l.Attrs().HardwareAddr, l.Attrs().Flags&net.FlagUp != 0, ep.MAC)
	}
	addrs, _ := h.AddrList(l, netlink.FAMILY_V4)
	if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IPNet.String() == ep.IP }) {
		c.t.Errorf("%s: c%d's %s has addresses %v, want %s", when, j, ep.IfName, addrs, ep.IP)
	}
}

func (c *crashCheck) ping(when string, j int, ip string) {
	if out, err := c.ctrs[j].Run(testCtx(c.t), "ping", "-c", "2", "-i", "0.2", "-W", "3", ip); err != nil {
		c.t.Errorf("%s: ping %s from c%d: %v\n%s", when, ip, j, err, out)
	}
}

// resolve checks that the DNS server at gw answers name with want to
// container j.
func (c *crashCheck) resolve(when string, j int, gw, name, want string) {
	if got, err := resolveAt(testCtx(c.t), c.ctrs[j], gw, name); err != nil || !slices.Equal(got, []string{want}) {
		c.t.Errorf("%s: c%d asked %s for %s: %v %v, want %s", when, j, gw, name, got, err, want)
	}
}

// resolveAt asks the DNS server at gw, from container c, for name's
// IPv4 addresses, retrying a query or an answer lost (to ARP at start)
// for a few seconds.
func resolveAt(ctx context.Context, c *topo.Container, gw, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		var conn net.Conn
		if conn, err = c.Dial(ctx, "udp", net.JoinHostPort(gw, "53")); err != nil {
			return nil, err
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		dc := &dns.Conn{Conn: conn}
		dc.SetDeadline(time.Now().Add(time.Second))
		var r *dns.Msg
		if err = dc.WriteMsg(m); err == nil {
			r, err = dc.ReadMsg()
		}
		conn.Close()
		if err == nil {
			var got []string
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok {
					got = append(got, a.A.String())
				}
			}
			return got, nil
		}
	}
	return nil, err
}
