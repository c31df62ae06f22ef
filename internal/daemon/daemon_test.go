package daemon

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

func testNet() *network {
	return &network{netState: netState{
		Name: "n", VNI: 7, Subnet: netip.MustParsePrefix("10.0.0.0/29"), Gateway: netip.MustParseAddr("10.0.0.1"), MTU: 1450,
	}}
}

func TestPickIP(t *testing.T) {
	n := testNet()
	var got []string
	for {
		p, err := n.pickIP("", n.localTaken())
		if err != nil {
			if !errors.Is(err, errConflict) {
				t.Fatalf("exhausted subnet: %v, want a conflict", err)
			}
			break
		}
		got = append(got, p.String())
		n.Endpoints = append(n.Endpoints, epState{IP: p})
	}
	// .0 is the network, .1 the gateway, .7 the broadcast address.
	want := []string{"10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29", "10.0.0.5/29", "10.0.0.6/29"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("allocated %v, want %v", got, want)
	}

	n = testNet()
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"10.0.0.3", "10.0.0.3/29", nil},
		{"10.0.0.4/29", "10.0.0.4/29", nil},
		{"10.0.0.4/24", "", errBadRequest},
		{"10.0.0.0", "", errBadRequest},
		{"10.0.0.7", "", errBadRequest},
		{"10.0.0.1", "", errConflict},
		{"10.0.1.2", "", errBadRequest},
		{"fd00::2", "", errBadRequest},
		{"ten", "", errBadRequest},
	} {
		p, err := n.pickIP(tc.in, n.localTaken())
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("pickIP(%q) = %v, %v; want %v", tc.in, p, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.want {
			t.Errorf("pickIP(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}

func TestPickMAC(t *testing.T) {
	n := testNet()
	mac, err := n.pickMAC("", netip.MustParseAddr("10.0.0.3"), n.localTaken())
	if err != nil || mac != "02:42:0a:00:00:03" {
		t.Errorf("derived MAC %q, %v", mac, err)
	}
	n.Endpoints = append(n.Endpoints, epState{MAC: mac})
	if _, err := n.pickMAC("02:42:0A:00:00:03", netip.Addr{}, n.localTaken()); !errors.Is(err, errConflict) {
		t.Errorf("duplicate MAC: %v", err)
	}
	for _, bad := range []string{"ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00", "nope"} {
		if _, err := n.pickMAC(bad, netip.Addr{}, n.localTaken()); !errors.Is(err, errBadRequest) {
			t.Errorf("pickMAC(%q): %v, want bad request", bad, err)
		}
	}
}

func TestValidateNetwork(t *testing.T) {
	d := &Daemon{cfg: Config{VTEP: netip.MustParseAddr("198.18.0.1")}, ulIf: ulLink{mtu: 1500}, nets: map[string]*network{"a": testNet()}}
	ok, err := d.validateNetwork(api.NetworkCreate{Name: "b", VNI: 8, Subnet: "10.1.0.0/24", Gateway: "10.1.0.1"})
	if err != nil || ok.MTU != 1450 {
		t.Fatalf("valid request: %+v, %v", ok, err)
	}
	// Without --vni: the lowest free one from 256 up, as the store does.
	d.nets["c"] = &network{netState: netState{Name: "c", VNI: 256}}
	if ok, err := d.validateNetwork(api.NetworkCreate{Name: "b", Subnet: "10.1.0.0/24"}); err != nil || ok.VNI != 257 {
		t.Errorf("no VNI: %d, %v; want 257", ok.VNI, err)
	}
	delete(d.nets, "c")
	for _, tc := range []struct {
		req  api.NetworkCreate
		kind error
	}{
		{api.NetworkCreate{Name: "a", VNI: 8, Subnet: "10.1.0.0/24"}, errConflict},
		{api.NetworkCreate{Name: "b", VNI: 7, Subnet: "10.1.0.0/24"}, errConflict},
		{api.NetworkCreate{Name: "-b", VNI: 8, Subnet: "10.1.0.0/24"}, errBadRequest},
		{api.NetworkCreate{Name: "b", VNI: 1 << 24, Subnet: "10.1.0.0/24"}, errBadRequest},
		{api.NetworkCreate{Name: "b", VNI: 8, Subnet: "10.1.0.1/24"}, errBadRequest},
		{api.NetworkCreate{Name: "b", VNI: 8, Subnet: "fd00::/64"}, errBadRequest},
		{api.NetworkCreate{Name: "b", VNI: 8, Subnet: "10.1.0.0/24", Gateway: "10.1.0.255"}, errBadRequest},
		{api.NetworkCreate{Name: "b", VNI: 8, Subnet: "10.1.0.0/24", MTU: 1451}, errBadRequest},
		{api.NetworkCreate{Name: "b", VNI: 8, Subnet: "10.1.0.0/24", MTU: 100}, errBadRequest},
	} {
		if _, err := d.validateNetwork(tc.req); !errors.Is(err, tc.kind) {
			t.Errorf("%+v: %v, want %v", tc.req, err, tc.kind)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	empty, err := loadState(dir)
	if err != nil || len(empty.Networks) != 0 {
		t.Fatalf("missing state file: %+v, %v", empty, err)
	}
	n := testNet()
	n.Peers = []netip.Addr{netip.MustParseAddr("198.18.0.2")}
	n.Static = []staticEntry{{MAC: "02:42:0a:00:00:09", VTEP: netip.MustParseAddr("198.18.0.3")}}
	n.Endpoints = []epState{{Netns: "/run/netns/c1", IfName: "eth0", IP: netip.MustParsePrefix("10.0.0.2/29"), MAC: "02:42:0a:00:00:02", Veth: "veth01020304"}}
	want := state{Version: stateVersion, Networks: []netState{n.netState, {Name: "nogw", VNI: 9, Subnet: netip.MustParsePrefix("10.2.0.0/24"), MTU: 1400}}}
	if err := saveState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(dir)
	got.loaded = false
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v, %v\nwant %+v", got, err, want)
	}
	// A dual-stack network makes the file version 2, which a vxswitch
	// that knows only version 1 refuses rather than drop its IPv6
	// settings; without one the file stays version 1.
	ds := want
	ds.Networks = append([]netState{}, want.Networks...)
	ds.Networks[0].Subnet6 = netip.MustParsePrefix("fd00:1::/64")
	ds.Networks[0].Endpoints = []epState{{Netns: "/run/netns/c1", IfName: "eth0", IP: netip.MustParsePrefix("10.0.0.2/29"), IP6: netip.MustParsePrefix("fd00:1::42:aff:fe00:2/64"), MAC: "02:42:0a:00:00:02", Veth: "veth01020304"}}
	if err := saveState(dir, ds); err != nil {
		t.Fatal(err)
	}
	ds.Version = stateVersionIPv6
	ds.loaded = true // as loadState says of what it read
	if got, err := loadState(dir); err != nil || !reflect.DeepEqual(got, ds) {
		t.Errorf("dual-stack round trip:\n got %+v, %v\nwant %+v", got, err, ds)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 { // state.json and state.json.prev
		t.Errorf("temporary files left: %v", ents)
	}
	os.WriteFile(filepath.Join(dir, stateFileName), []byte("{"), 0o644)
	if _, err := loadState(dir); err == nil {
		t.Error("a corrupt state file loaded")
	}
	os.WriteFile(filepath.Join(dir, stateFileName), []byte(`{"version": 99}`), 0o644)
	if _, err := loadState(dir); err == nil {
		t.Error("a future state version loaded")
	}
}

// EnsureNetwork accepts an existing network only as asked for: the same
// subnet, and the same gateway if both have one.
func TestNetworkSpecCheck(t *testing.T) {
	have := NetworkInfo{Name: "mynet", Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}
	noGW := have
	noGW.Gateway = netip.Addr{}
	for _, tc := range []struct {
		spec NetworkSpec
		info NetworkInfo
		want string // "" for no error
	}{
		{NetworkSpec{Subnet: netip.MustParsePrefix("10.0.0.0/24")}, have, ""},
		{NetworkSpec{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}, have, ""},
		{NetworkSpec{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}, noGW, ""},
		{NetworkSpec{Subnet: netip.MustParsePrefix("10.1.0.0/24")}, have, "network mynet exists with subnet 10.0.0.0/24, not 10.1.0.0/24; give --subnet 10.0.0.0/24"},
		{NetworkSpec{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.254")}, have, "network mynet exists with gateway 10.0.0.1, not 10.0.0.254; give --gateway 10.0.0.1"},
	} {
		err := tc.spec.check(tc.info)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v against %+v: %v", tc.spec, tc.info, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrConflict) || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%+v against %+v: %v, want a conflict %q", tc.spec, tc.info, err, tc.want)
		}
	}
}
