package main_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/store"
)

// The crash points of the daemon that each operation passes with a
// cluster store, in order: a create and an rm are one transaction in the
// store; an attach makes the network's namespace (with its first
// endpoint here), allocates in the store, plumbs, saves and publishes; a
// detach releases in the store, then saves and unplumbs.
var crashPointsStore = map[string][]string{
	"create": {"create:stored"},
	"rm":     {"rm:stored"},
	"attach": {"attach:network", "attach:allocated", "attach:plumbed", "save:written", "save:linked", "attach:committed", "attach:published"},
	"detach": {"detach:released", "save:written", "save:linked", "detach:committed"},
}

// TestCrashLoopStore is TestCrashLoop with a cluster store: two hosts
// with daemons on one etcd; host 1's daemon runs random creates,
// attaches, detaches and rms of cluster networks and is SIGKILLed in
// them (at the store's crash points, and at random), then restarted. Once
// it has registered again (`vxswitch info` shows its lease, `host ls` on
// host 2 shows it alive), the store and the hosts agree: every endpoint
// the store lists for host 1 is on host 1 (the audit of TestCrashLoop:
// interface, veth, pings to the gateway and over the overlay to host 2's
// container) and published, every endpoint host 1 has is in the store
// once, and host 2 sees them up; host 1 resolves host 2's container by
// name at its gateway, and host 2 host 1's; the store's allocations are
// exactly its endpoints' addresses and MACs (nothing allocated twice,
// nothing leaked, nothing of a removed network left); an interrupted
// create or rm is whole or absent on both hosts; and host 1 has nothing
// half-made (namespaces, veths, resolv.conf files, temporary files).
func TestCrashLoopStore(t *testing.T) {
	topo.RequireEtcd(t)
	tp := topo.New(t)
	bin := vxbin(t)
	h1, h2 := tp.MustHost("h1"), tp.MustHost("h2")
	e := tp.MustEtcd(topo.EtcdOptions{})

	// Host 2 never crashes: each network has its container rK there at
	// .250 while the network exists (it leaves before an rm).
	d2 := h2.MustVXSwitch(topo.DaemonOptions{Binary: bin, Store: e})
	rs := make([]*topo.Container, crashNets+1)
	for k := 1; k <= crashNets; k++ {
		rs[k] = tp.MustContainer(fmt.Sprintf("r%d", k))
	}

	arm := armCrashpoints(t) // for host 1's daemon, started next
	d1 := h1.MustVXSwitch(topo.DaemonOptions{Binary: bin, Store: e})
	cc := &crashCheck{t: t, d: d1, ctrs: crashContainers(tp), peer: h2.Addr.String(), self: h1.Addr.String()}
	st, err := store.Open(store.Config{URL: e.StoreURL(), Netns: h1.Path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sc := &storeCrashCheck{cc: cc, d2: d2, rs: rs, st: st, h1: h1.Addr, h2: h2.Addr}
	l := &crashLoop{t: t, cc: cc, points: crashPointsStore, arm: arm, run: crashRun(d1, cc.ctrs),
		before: sc.before, restarted: sc.restarted}
	l.loop(*crashIterations)
}

// storeCrashCheck is the store's side of TestCrashLoopStore's audit.
type storeCrashCheck struct {
	cc     *crashCheck
	d2     *topo.Daemon
	rs     []*topo.Container // host 2's containers r1..r3
	st     *store.Store
	h1, h2 netip.Addr
}

// before takes host 2's container off a network that is about to be
// removed: rm is refused while any host has an endpoint on it.
func (s *storeCrashCheck) before(o crashOp) {
	if o.kind != "rm" {
		return
	}
	t := s.cc.t
	ctx := testCtx(t)
	name := fmt.Sprintf("n%d", o.net)
	n, err := s.d2.Client.Network(ctx, name)
	if err != nil {
		t.Fatalf("before %s: inspect %s on host 2: %v", o, name, err)
	}
	if slices.ContainsFunc(n.Endpoints, func(ep api.Endpoint) bool { return ep.VTEP == s.h2.String() }) {
		if err := s.d2.Client.Detach(ctx, name, api.Detach{Netns: s.rs[o.net].Path}); err != nil {
			t.Fatalf("before %s: detach r%d on host 2: %v", o, o.net, err)
		}
	}
}

// restarted waits for host 1's daemon to register again, puts host 2's
// containers on the networks the store has, and audits both hosts and
// the store (see TestCrashLoopStore).
func (s *storeCrashCheck) restarted(when string) crashModel {
	t, cc := s.cc.t, s.cc
	ctx := testCtx(t)
	eventually(t, when+": host 1 registered again", func() bool {
		info, err := cc.d.Client.Info(ctx)
		return err == nil && info.Store != nil && info.Store.State == "connected" && info.Store.Lease != ""
	})
	hosts, err := s.d2.Client.Hosts(ctx)
	if err != nil {
		t.Fatalf("%s: host ls on host 2: %v", when, err)
	}
	if !slices.ContainsFunc(hosts, func(h api.Host) bool { return h.VTEP == s.h1.String() && h.State == "alive" }) {
		t.Errorf("%s: host 2 lists hosts %+v, without host 1 alive", when, hosts)
	}
	v, err := s.st.View(ctx)
	if err != nil {
		t.Fatalf("%s: the store's view: %v", when, err)
	}
	for k := 1; k <= crashNets; k++ {
		name := fmt.Sprintf("n%d", k)
		if _, ok := v.Networks[name]; !ok {
			continue
		}
		if _, ok := v.Endpoints[name]["r"+fmt.Sprint(k)]; ok {
			continue
		}
		if _, err := s.d2.Client.Attach(ctx, name, api.Attach{ID: fmt.Sprintf("r%d", k), Name: fmt.Sprintf("r%d", k),
			Netns: s.rs[k].Path, IP: fmt.Sprintf("10.1.%d.250", k)}); err != nil {
			t.Fatalf("%s: attach r%d to %s on host 2: %v", when, k, name, err)
		}
	}
	if v, err = s.st.View(ctx); err != nil {
		t.Fatalf("%s: the store's view: %v", when, err)
	}
	got := cc.check(when)

	// The networks: the same on both hosts and in the store.
	var storeNets, h1Nets, h2Nets []string
	for name, sn := range v.Networks {
		storeNets = append(storeNets, name)
		var k int
		if _, err := fmt.Sscanf(name, "n%d", &k); err != nil || sn.VNI != uint32(300+k) || sn.Subnet.String() != fmt.Sprintf("10.1.%d.0/24", k) {
			t.Errorf("%s: the store has network %+v", when, sn)
		}
	}
	for k := range got {
		h1Nets = append(h1Nets, fmt.Sprintf("n%d", k))
	}
	nets2, err := s.d2.Client.Networks(ctx)
	if err != nil {
		t.Fatalf("%s: network ls on host 2: %v", when, err)
	}
	for _, n := range nets2 {
		h2Nets = append(h2Nets, n.Name)
	}
	slices.Sort(storeNets)
	slices.Sort(h1Nets)
	slices.Sort(h2Nets)
	if !slices.Equal(storeNets, h1Nets) || !slices.Equal(storeNets, h2Nets) {
		t.Errorf("%s: networks: the store has %v, host 1 %v, host 2 %v", when, storeNets, h1Nets, h2Nets)
	}

	// The endpoints: host 1's in the store are host 1's, once, and
	// published; host 2 sees them up and resolves their names.
	allocs := s.allocations(ctx, when)
	for netName, recs := range v.Endpoints {
		if _, ok := v.Networks[netName]; !ok {
			t.Errorf("%s: the store has endpoints %v of network %s, which it does not have", when, recs, netName)
		}
	}
	for netName := range allocs {
		if _, ok := v.Networks[netName]; !ok {
			t.Errorf("%s: the store has allocations %v of network %s, which it does not have", when, allocs[netName], netName)
		}
	}
	for _, netName := range storeNets {
		var k int
		fmt.Sscanf(netName, "n%d", &k)
		n1, err := cc.d.Client.Network(ctx, netName)
		if err != nil {
			t.Fatalf("%s: inspect %s on host 1: %v", when, netName, err)
		}
		n2, err := s.d2.Client.Network(ctx, netName)
		if err != nil {
			t.Fatalf("%s: inspect %s on host 2: %v", when, netName, err)
		}
		local := map[string]api.Endpoint{}
		for _, ep := range n1.Endpoints {
			if ep.VTEP == s.h1.String() {
				if _, dup := local[ep.ID]; dup {
					t.Errorf("%s: host 1 lists endpoint %s of %s twice", when, ep.ID, netName)
				}
				local[ep.ID] = ep
			}
		}
		wantAlloc := map[string]string{}
		var onH1, onH2 int
		for id, rec := range v.Endpoints[netName] {
			wantAlloc["ip/"+rec.IP.Addr().String()] = id
			wantAlloc["mac/"+strings.ToLower(rec.MAC)] = id
			if rec.IP6.IsValid() {
				wantAlloc["ip/"+rec.IP6.Addr().String()] = id
			}
			pub, published := v.Published[netName][id]
			switch rec.Host {
			case s.h1:
				onH1++
				ep, ok := local[id]
				if !ok {
					t.Errorf("%s: the store lists endpoint %s (%s) of %s on host 1, which host 1 does not have", when, id, rec.IP, netName)
					continue
				}
				if ep.IP != rec.IP.String() || ep.MAC != rec.MAC || ep.State != "up" {
					t.Errorf("%s: endpoint %s of %s: host 1 has %s %s (%s), the store %s %s", when, id, netName, ep.IP, ep.MAC, ep.State, rec.IP, rec.MAC)
				}
				if !published || pub.Host != s.h1 || pub.IP != rec.IP || pub.MAC != rec.MAC {
					t.Errorf("%s: endpoint %s of %s on host 1 is published as %+v (%v), want its record %+v", when, id, netName, pub, published, rec)
				}
				i := slices.IndexFunc(n2.Endpoints, func(e api.Endpoint) bool { return e.ID == id })
				if i < 0 || n2.Endpoints[i].State != "up" || n2.Endpoints[i].VTEP != s.h1.String() {
					t.Errorf("%s: host 2 does not see host 1's endpoint %s of %s up: %+v", when, id, netName, n2.Endpoints)
				} else if ep.Name != "" {
					if got, err := resolveAt(testCtx(t), s.rs[k], fmt.Sprintf("10.1.%d.1", k), ep.Name); err != nil || !slices.Equal(got, []string{rec.IP.Addr().String()}) {
						t.Errorf("%s: r%d on host 2 asked its gateway for %s: %v %v, want %s", when, k, ep.Name, got, err, rec.IP.Addr())
					}
				}
			case s.h2:
				onH2++
				if id != fmt.Sprintf("r%d", k) || rec.IP.String() != fmt.Sprintf("10.1.%d.250/24", k) || !published {
					t.Errorf("%s: host 2's endpoint in %s: %+v (published %v), want r%d at 10.1.%d.250/24, published", when, netName, rec, published, k, k)
				}
			default:
				t.Errorf("%s: an endpoint of an unknown host in %s: %+v", when, netName, rec)
			}
		}
		if onH1 != len(local) {
			t.Errorf("%s: host 1 has %d endpoints on %s, the store lists %d of host 1's", when, len(local), netName, onH1)
		}
		if onH2 != 1 {
			t.Errorf("%s: the store lists %d endpoints of host 2 on %s, want 1", when, onH2, netName)
		}
		for id, pub := range v.Published[netName] {
			if _, ok := v.Endpoints[netName][id]; !ok {
				t.Errorf("%s: %s publishes endpoint %s (%s on %s), which has no record", when, netName, id, pub.IP, pub.Host)
			}
		}
		if !mapsEqual(allocs[netName], wantAlloc) {
			t.Errorf("%s: the store's allocations for %s are %v; its endpoints hold %v", when, netName, allocs[netName], wantAlloc)
		}
	}
	return got
}

// allocations reads the store's allocation keys: network → "ip/ADDR" or
// "mac/MAC" → the endpoint ID holding it.
func (s *storeCrashCheck) allocations(ctx context.Context, when string) map[string]map[string]string {
	prefix := store.Prefix + "alloc/"
	resp, err := s.st.Client().Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		s.cc.t.Fatalf("%s: read the store's allocations: %v", when, err)
	}
	out := map[string]map[string]string{}
	for _, kv := range resp.Kvs {
		netName, what, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
		if !ok {
			s.cc.t.Errorf("%s: an allocation key %s", when, kv.Key)
			continue
		}
		if out[netName] == nil {
			out[netName] = map[string]string{}
		}
		out[netName][what] = string(kv.Value)
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
