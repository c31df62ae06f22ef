package docker

import (
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

const ep3 = "e333333333333333333333333333333333333333333333333333333333333333"

// TestGoneSandbox: a joined endpoint whose sandbox is destroyed without a
// Leave (the engine was killed, and its sandbox's namespace went) is
// released by the daemon, at once or at its next start, and the engine's
// Leave and DeleteEndpoint for it, when it comes back, succeed; an
// endpoint the engine created and did not join yet is never taken for
// gone.
func TestGoneSandbox(t *testing.T) {
	r := newRig(t)
	pool := "vxswitch:10.0.0.0/24"
	r.ok("NetworkDriver.CreateNetwork", createNetworkRequest{NetworkID: net1, IPv4Data: []ipamData{{Pool: "10.0.0.0/24", Gateway: "10.0.0.1/24"}}}, nil)
	r.eng.store(net1, "mynet")
	create := func(eid string) string {
		var addr requestAddressResponse
		r.ok("IpamDriver.RequestAddress", requestAddressRequest{PoolID: pool}, &addr)
		r.ok("NetworkDriver.CreateEndpoint", createEndpointRequest{NetworkID: net1, EndpointID: eid, Interface: &endpointInterface{Address: addr.Address}}, nil)
		return addr.Address
	}
	// join joins eid and moves its container end into a sandbox of its
	// own, as the engine does.
	join := func(eid string) (sandbox string) {
		var jr joinResponse
		r.ok("NetworkDriver.Join", joinRequest{NetworkID: net1, EndpointID: eid, SandboxKey: "/var/run/docker/netns/" + eid[:12]}, &jr)
		sandbox = topo.TempNS(t, "sb"+eid[:4])
		hh, err := nsutil.Handle(r.h.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer hh.Close()
		l, err := hh.LinkByName(jr.InterfaceName.SrcName)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := netns.GetFromPath(sandbox)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		if err := hh.LinkSetNsFd(l, int(fd)); err != nil {
			t.Fatal(err)
		}
		return sandbox
	}
	gone := func(eid string) bool { _, err := r.d.Endpoint("mynet", eid); return err != nil }

	addr1 := create(ep1)
	sb1 := join(ep1)
	r.eng.run(net1, "c1", "one", ep1)
	create(ep2) // the engine made it; its container has not started
	if err := nsutil.Delete(sb1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the endpoint whose sandbox went released", func() bool { return gone(ep1) })
	if gone(ep2) {
		t.Fatal("an endpoint created and not joined was released as gone")
	}
	// The engine, back, cleans up after the container it lost: every
	// call succeeds, and the address is free again.
	r.ok("NetworkDriver.Leave", endpointRequest{NetworkID: net1, EndpointID: ep1}, nil)
	r.ok("NetworkDriver.DeleteEndpoint", endpointRequest{NetworkID: net1, EndpointID: ep1}, nil)
	r.ok("IpamDriver.ReleaseAddress", releaseAddressRequest{PoolID: pool, Address: strings.Split(addr1, "/")[0]}, nil)
	r.eng.remove(net1, "c1")
	if a := create(ep3); a != addr1 {
		t.Errorf("the next endpoint got %s, want the released %s", a, addr1)
	}

	// A sandbox that goes while the daemon is down: released at start,
	// not made again; the created one stays.
	sb2 := join(ep2)
	r.eng.run(net1, "c2", "two", ep2)
	r.eng.run(net1, "c3", "three", ep3)
	r.stop()
	if err := nsutil.Delete(sb2); err != nil {
		t.Fatal(err)
	}
	r.start()
	eventually(t, "the endpoint whose sandbox went while the daemon was down released", func() bool { return gone(ep2) })
	if gone(ep3) {
		t.Fatal("an endpoint created and not joined was released as gone at start")
	}
}
