package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	h1 = netip.MustParseAddr("198.18.0.1")
	h2 = netip.MustParseAddr("198.18.0.2")
)

func testNet(name string) Network {
	return Network{Name: name, Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1"), MTU: 1450}
}

// lowest is the daemon's policy in small: the lowest free address after
// the gateway, and a MAC made from it.
func lowest(t Taken, ep *Endpoint) error {
	if ep.IP.IsValid() {
		if id, ok := t.IPs[ep.IP.Addr()]; ok {
			return fmt.Errorf("%w: %s is held by %s", ErrTaken, ep.IP.Addr(), id)
		}
	} else {
		for a := netip.MustParseAddr("10.0.0.2"); ; a = a.Next() {
			if a == netip.MustParseAddr("10.0.0.255") {
				return ErrFull
			}
			if _, ok := t.IPs[a]; !ok {
				ep.IP = netip.PrefixFrom(a, 24)
				break
			}
		}
	}
	b := ep.IP.Addr().As4()
	ep.MAC = fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
	return nil
}

func TestNetworks(t *testing.T) {
	_, s := startEtcd(t)
	ctx := context.Background()
	a, err := s.CreateNetwork(ctx, testNet("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateNetwork(ctx, testNet("b"))
	if err != nil {
		t.Fatal(err)
	}
	if a.VNI != FirstVNI || b.VNI != FirstVNI+1 {
		t.Errorf("VNIs %d and %d, want %d and %d", a.VNI, b.VNI, FirstVNI, FirstVNI+1)
	}
	if _, err := s.CreateNetwork(ctx, testNet("a")); !errors.Is(err, ErrExists) {
		t.Errorf("same name again: %v, want ErrExists", err)
	}
	c := testNet("c")
	c.VNI = FirstVNI + 1
	if _, err := s.CreateNetwork(ctx, c); !errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), "network b") {
		t.Errorf("a taken VNI: %v, want ErrTaken naming network b", err)
	}
	c.VNI = 4096
	if c, err = s.CreateNetwork(ctx, c); err != nil || c.VNI != 4096 {
		t.Fatalf("a free VNI: %v %d", err, c.VNI)
	}
	got, err := s.Network(ctx, "a")
	if err != nil || got.Revision != a.Revision || got.Subnet != a.Subnet || got.VNI != a.VNI {
		t.Errorf("Network(a) = %+v, %v; want %+v", got, err, a)
	}
	if err := s.DeleteNetwork(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	// The VNI is free again, and the lowest.
	d, err := s.CreateNetwork(ctx, testNet("d"))
	if err != nil || d.VNI != FirstVNI {
		t.Errorf("after rm: %v VNI %d, want %d", err, d.VNI, FirstVNI)
	}
	if err := s.DeleteNetwork(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rm twice: %v, want ErrNotFound", err)
	}
}

// TestCreateNetworkRace: hosts creating the same network at once: exactly
// one wins, the others get ErrExists; different networks at once all get
// distinct VNIs.
func TestCreateNetworkRace(t *testing.T) {
	_, s := startEtcd(t)
	const n = 8
	errs := make([]error, n)
	nets := make([]Network, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.CreateNetwork(context.Background(), testNet("same")) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrExists):
			t.Errorf("loser: %v, want ErrExists", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creators of one network won, want 1", won)
	}
	for i := range n {
		wg.Go(func() { nets[i], errs[i] = s.CreateNetwork(context.Background(), testNet(fmt.Sprint("n", i))) })
	}
	wg.Wait()
	vnis := map[uint32]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		vnis[nets[i].VNI] = true
	}
	if len(vnis) != n {
		t.Errorf("%d networks made at once got %d distinct VNIs", n, len(vnis))
	}
}

func TestEndpoints(t *testing.T) {
	_, s := startEtcd(t)
	ctx := context.Background()
	n, err := s.CreateNetwork(ctx, testNet("net"))
	if err != nil {
		t.Fatal(err)
	}
	// 20 endpoints at once get 20 distinct addresses.
	const k = 20
	eps := make([]Endpoint, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() {
			eps[i], errs[i] = s.CreateEndpoint(ctx, n, Endpoint{ID: fmt.Sprint("ep", i), Name: "c", Host: h1}, lowest)
		})
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for i := range k {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		seen[eps[i].IP.Addr()] = true
	}
	if len(seen) != k {
		t.Fatalf("%d endpoints got %d distinct addresses", k, len(seen))
	}
	// An address asked for that is taken is refused; an ID too.
	if _, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "x", Host: h2, IP: eps[0].IP}, lowest); !errors.Is(err, ErrTaken) {
		t.Errorf("a taken address: %v, want ErrTaken", err)
	}
	if _, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "ep0", Host: h2}, lowest); !errors.Is(err, ErrExists) {
		t.Errorf("a taken ID: %v, want ErrExists", err)
	}
	// The network is in use until every endpoint is gone.
	if err := s.DeleteNetwork(ctx, "net"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "20 endpoint(s), on host 198.18.0.1") {
		t.Errorf("rm with endpoints: %v, want ErrInUse naming the host", err)
	}
	if err := s.DeleteEndpoint(ctx, "net", "ep3"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEndpoint(ctx, "net", "ep3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("release twice: %v, want ErrNotFound", err)
	}
	// The released address is the lowest free one again.
	again, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "again", Host: h2}, lowest)
	if err != nil || again.IP != eps[3].IP {
		t.Errorf("after a release: %v %v, want %v", err, again.IP, eps[3].IP)
	}
	list, err := s.Endpoints(ctx, "net")
	if err != nil || len(list) != k {
		t.Fatalf("Endpoints: %d, %v; want %d", len(list), err, k)
	}
	for _, e := range list {
		if err := s.DeleteEndpoint(ctx, "net", e.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteNetwork(ctx, "net"); err != nil {
		t.Fatal(err)
	}
	// Nothing of the network is left.
	resp, err := s.cli.Get(ctx, Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		var keys []string
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
		t.Errorf("left after every endpoint and the network went: %v", keys)
	}
	// An endpoint for a network removed meanwhile is refused.
	if _, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "late", Host: h1}, lowest); !errors.Is(err, ErrNotFound) {
		t.Errorf("attach to a removed network: %v, want ErrNotFound", err)
	}
	m, err := s.CreateNetwork(ctx, testNet("net"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "late", Host: h1}, lowest); !errors.Is(err, ErrNotFound) {
		t.Errorf("attach with the identity of a network made again: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateEndpoint(ctx, m, Endpoint{ID: "late", Host: h1}, lowest); err != nil {
		t.Errorf("attach to the new network: %v", err)
	}
}

// TestReplaceEndpoint: a reservation made under one ID becomes the
// endpoint it was for in one transaction: its address stays held, a new
// MAC is claimed and the old one released, and nothing of the old ID is
// left.
func TestReplaceEndpoint(t *testing.T) {
	_, s := startEtcd(t)
	ctx := context.Background()
	n, err := s.CreateNetwork(ctx, testNet("net"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "reserved-1", Host: h1}, lowest)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "other", Host: h2}, lowest)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, 0, res); err != nil {
		t.Fatal(err)
	}
	// Same address, another ID and another MAC.
	keep := func(mac string) Picker {
		return func(t Taken, e *Endpoint) error {
			if id, ok := t.IPs[res.IP.Addr()]; ok {
				return fmt.Errorf("%w: %s is held by %s", ErrTaken, res.IP.Addr(), id)
			}
			if id, ok := t.MACs[mac]; ok {
				return fmt.Errorf("%w: %s is held by %s", ErrTaken, mac, id)
			}
			e.IP, e.MAC = res.IP, mac
			return nil
		}
	}
	if _, err := s.ReplaceEndpoint(ctx, n, "reserved-1", Endpoint{ID: "ep", Name: "web", Host: h1}, keep(other.MAC)); !errors.Is(err, ErrTaken) {
		t.Errorf("a MAC another endpoint holds: %v, want ErrTaken", err)
	}
	if _, err := s.ReplaceEndpoint(ctx, n, "reserved-1", Endpoint{ID: "other", Host: h1}, keep("02:00:00:00:00:01")); !errors.Is(err, ErrExists) {
		t.Errorf("an ID another endpoint has: %v, want ErrExists", err)
	}
	got, err := s.ReplaceEndpoint(ctx, n, "reserved-1", Endpoint{ID: "ep", Name: "web", Host: h1}, keep("02:00:00:00:00:01"))
	if err != nil || got.ID != "ep" || got.IP != res.IP || got.MAC != "02:00:00:00:00:01" {
		t.Fatalf("replace: %+v, %v", got, err)
	}
	resp, err := s.cli.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	for _, x := range resp.Kvs {
		kv[string(x.Key)] = string(x.Value)
	}
	want := map[string]string{
		Prefix + "alloc/net/ip/" + res.IP.Addr().String():   "ep",
		Prefix + "alloc/net/mac/02:00:00:00:00:01":          "ep",
		Prefix + "alloc/net/ip/" + other.IP.Addr().String(): "other",
		Prefix + "alloc/net/mac/" + other.MAC:               "other",
	}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
	for _, gone := range []string{Prefix + "alloc/net/mac/" + res.MAC, endpointKey("net", "reserved-1"), publishedKey("net", "reserved-1")} {
		if _, ok := kv[gone]; ok {
			t.Errorf("%s left after the replace", gone)
		}
	}
	if e, err := s.Endpoint(ctx, "net", "ep"); err != nil || e.Name != "web" || e.MAC != "02:00:00:00:00:01" {
		t.Errorf("the new record: %+v, %v", e, err)
	}
	if _, err := s.ReplaceEndpoint(ctx, n, "reserved-1", Endpoint{ID: "ep2", Host: h1}, lowest); !errors.Is(err, ErrNotFound) {
		t.Errorf("replace a released endpoint: %v, want ErrNotFound", err)
	}
	// Names change in place; the addresses stay.
	if err := s.UpdateEndpoint(ctx, "net", Endpoint{ID: "ep", Name: "www", Aliases: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Endpoint(ctx, "net", "ep"); err != nil || e.Name != "www" || !slices.Equal(e.Aliases, []string{"a"}) || e.IP != res.IP || e.Host != h1 {
		t.Errorf("after UpdateEndpoint: %+v, %v", e, err)
	}
	if err := s.UpdateEndpoint(ctx, "net", Endpoint{ID: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("update a missing endpoint: %v, want ErrNotFound", err)
	}
}

// TestLiveness: what a host publishes goes with its lease; its allocations
// stay, and host rm releases them only once it is not alive.
func TestLiveness(t *testing.T) {
	_, s := startEtcd(t)
	ctx := context.Background()
	v := &viewer{}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Follow(fctx, FollowConfig{OnView: v.onView, OnError: v.onError}); close(done) }()
	defer func() { stop(); <-done }()

	n, err := s.CreateNetwork(ctx, testNet("net"))
	if err != nil {
		t.Fatal(err)
	}
	l1, err := s.Register(ctx, Live{VTEP: h1, Since: time.Now()}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := s.Register(ctx, Live{VTEP: h2, Since: time.Now()}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	kctx, kstop := context.WithCancel(ctx)
	if _, err := s.KeepAlive(kctx, l2); err != nil {
		t.Fatal(err)
	}
	defer kstop()
	e1, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "a", Name: "web", Host: h1}, lowest)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, l1.ID, e1); err != nil {
		t.Fatal(err)
	}
	e2, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "b", Host: h2}, lowest)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, l2.ID, e2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both published", func() string {
		view := v.view()
		if view == nil || len(view.Published["net"]) != 2 || !view.Alive(h1) || !view.Alive(h2) {
			return fmt.Sprintf("view %+v; %v", view, v)
		}
		return ""
	})
	if _, err := s.RemoveHost(ctx, h1); !errors.Is(err, ErrInUse) {
		t.Errorf("host rm of a live host: %v, want ErrInUse", err)
	}
	// h1 keeps nothing alive: its lease expires and takes its publication.
	eventually(t, "h1's lease expired", func() string {
		view := v.view()
		if _, ok := view.Published["net"]["a"]; ok || view.Alive(h1) {
			return "h1 still published or alive"
		}
		return ""
	})
	view := v.view()
	if _, ok := view.Endpoints["net"]["a"]; !ok {
		t.Error("h1's endpoint record went with its lease; allocations must outlive leases")
	}
	if _, ok := view.Hosts[h1]; !ok {
		t.Error("h1's host record went with its lease")
	}
	if _, ok := view.Published["net"]["b"]; !ok || !view.Alive(h2) {
		t.Error("h2, kept alive, lost its publication")
	}
	// Meanwhile its address is not handed out.
	e3, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "c", Host: h2}, lowest)
	if err != nil || e3.IP == e1.IP {
		t.Errorf("new endpoint got %v (%v); h1's %v must stay reserved", e3.IP, err, e1.IP)
	}
	released, err := s.RemoveHost(ctx, h1)
	if err != nil || released != 1 {
		t.Fatalf("host rm: %d released, %v", released, err)
	}
	eventually(t, "h1 removed", func() string {
		view := v.view()
		if _, ok := view.Endpoints["net"]["a"]; ok {
			return "h1's endpoint still recorded"
		}
		if _, ok := view.Hosts[h1]; ok {
			return "h1 still listed"
		}
		return ""
	})
	if _, err := s.RemoveHost(ctx, h1); !errors.Is(err, ErrNotFound) {
		t.Errorf("host rm twice: %v, want ErrNotFound", err)
	}
	// Its address is free now.
	if _, err := s.CreateEndpoint(ctx, n, Endpoint{ID: "d", Host: h2, IP: e1.IP}, lowest); err != nil {
		t.Errorf("h1's address after host rm: %v", err)
	}
	// A reclaim of what another endpoint holds now is refused.
	if err := s.Reclaim(ctx, n, e1); !errors.Is(err, ErrTaken) {
		t.Errorf("reclaim of a taken address: %v, want ErrTaken", err)
	}
}

// TestFollowCompacted: a follower whose watch starts from a compacted
// revision lists again and converges.
func TestFollowCompacted(t *testing.T) {
	_, s := startEtcd(t)
	ctx := context.Background()
	ca, err := s.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.CreateNetwork(ctx, testNet(fmt.Sprint("n", i))); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	// The watch from the old listing's revision is refused as compacted.
	err = s.watch(ctx, ca, FollowConfig{OnView: func(*View) {}})
	if err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("watch from a compacted revision: %v", err)
	}
	// Follow as a whole gets there.
	v := &viewer{}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Follow(fctx, FollowConfig{OnView: v.onView, OnError: v.onError}); close(done) }()
	defer func() { stop(); <-done }()
	eventually(t, "view of 5 networks", func() string {
		if view := v.view(); view == nil || !slices.Equal(view.NetworkNames(), []string{"n0", "n1", "n2", "n3", "n4"}) {
			return fmt.Sprint(view)
		}
		return ""
	})
}

// TestUnavailable: with etcd gone a request fails within the request
// timeout with ErrUnavailable and a line that says so; Follow reports the
// error and converges once etcd is back.
func TestUnavailable(t *testing.T) {
	e, s := startEtcd(t)
	ctx := context.Background()
	s.timeout = 2 * time.Second
	v := &viewer{}
	fctx, stop := context.WithCancel(ctx)
	resync := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		s.Follow(fctx, FollowConfig{OnView: v.onView, OnError: v.onError, Resync: resync})
		close(done)
	}()
	defer func() { stop(); <-done }()
	eventually(t, "first view", func() string {
		if v.view() == nil {
			return "none"
		}
		return ""
	})
	e.stop()
	_, err := s.CreateNetwork(ctx, testNet("n"))
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("create while etcd is away: %v", err)
	}
	e.start(t)
	e.waitHealthy(t, s)
	resync <- struct{}{}
	if _, err := s.CreateNetwork(ctx, testNet("n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "view after etcd came back", func() string {
		if view := v.view(); view == nil || len(view.Networks) != 1 {
			return fmt.Sprint(view, v)
		}
		return ""
	})
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		tls  bool
		want []string
	}{
		{"etcd://198.18.0.100:2379", false, []string{"http://198.18.0.100:2379"}},
		{"etcd://198.18.0.100:2379,198.18.0.101:2379", true, []string{"https://198.18.0.100:2379", "https://198.18.0.101:2379"}},
		{"etcd://[2001:2::64]:2379", false, []string{"http://[2001:2::64]:2379"}},
		{"etcd://etcd.example:2379/", false, []string{"http://etcd.example:2379"}},
	} {
		got, err := ParseURL(c.in, c.tls)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseURL(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "http://1.2.3.4:2379", "etcd://", "etcd://1.2.3.4", "etcd://1.2.3.4:2379,", "etcd://:2379"} {
		if _, err := ParseURL(bad, false); err == nil || !strings.Contains(err.Error(), "--store") {
			t.Errorf("ParseURL(%q): %v, want an error naming --store", bad, err)
		}
	}
}

// TestCorruptRecord: a record this version cannot decode is left out of
// views (and logged as it arrives); the rest of the cluster is seen.
func TestCorruptRecord(t *testing.T) {
	_, s := startEtcd(t)
	ctx := context.Background()
	if _, err := s.cli.Put(ctx, pNetworks+"bad", "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateNetwork(ctx, testNet("good")); err != nil {
		t.Fatal(err)
	}
	v, err := s.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.NetworkNames(); !slices.Equal(got, []string{"good"}) {
		t.Errorf("networks %v, want only good", got)
	}
}
