package daemon

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// requestKinds are the request bodies the control API decodes, by the
// fuzz target's kind byte.
var requestKinds = []func() any{
	func() any { return new(api.NetworkCreate) },
	func() any { return new(api.Attach) },
	func() any { return new(api.Detach) },
	func() any { return new(api.Peer) },
	func() any { return new(api.FDBEntry) },
}

// Each refused body gets one line naming the field and what it wants.
func TestDecodeRequest(t *testing.T) {
	long := strings.Repeat("a", 70)
	for _, tc := range []struct {
		kind int
		body string
		want string // "" accepts
	}{
		{0, `{"name":"app","subnet":"10.0.0.0/24"}`, ""},
		{0, `{"name":"app","vni":16777215,"subnet":"10.0.0.0/24","subnet6":"fd00:1::/64","gateway":"10.0.0.1","mtu":1450,"egress":true,"max_learned":100}`, ""},
		{0, ``, "bad request body: empty; want a JSON object"},
		{0, `{"name":"app"`, "bad request body: cut short"},
		{0, `{"name":"app",}`, "bad request body: not JSON at byte 15"},
		{0, `[1]`, "bad request body: want a JSON object, got array"},
		{0, `{"name":"app","subnet":"10.0.0.0/24"} {}`, "bad request body: more after the JSON object"},
		{0, `{"name":"app","color":"red"}`, `bad request body: unknown field "color"; known: name, vni, subnet, gateway, mtu, subnet6, egress, internal, max_learned`},
		{0, `{"name":"app","vni":"300"}`, "bad request body: field vni: want a whole number, 0 to 4294967295, got string"},
		{0, `{"name":"app","vni":-1}`, "bad request body: field vni: want a whole number, 0 to 4294967295, got number -1"},
		{0, `{"name":"","subnet":"10.0.0.0/24"}`, `bad network name ""`},
		{0, `{"name":"` + long + `","subnet":"10.0.0.0/24"}`, `bad network name "` + long[:64] + `"...`},
		{0, `{"name":"a b","subnet":"10.0.0.0/24"}`, `bad network name "a b"`},
		{0, `{"name":"app","vni":16777216,"subnet":"10.0.0.0/24"}`, "bad VNI 16777216: a VNI is 1 to 16777215"},
		{0, `{"name":"app"}`, "subnet is required"},
		{0, `{"name":"app","subnet":"10.0.0.0/33"}`, `bad subnet "10.0.0.0/33": want an IPv4 CIDR`},
		{0, `{"name":"app","subnet":"fd00::/64"}`, `bad subnet "fd00::/64": the first subnet is the IPv4 one`},
		{0, `{"name":"app","subnet":"10.0.0.0/24","subnet6":"10.1.0.0/24"}`, `bad IPv6 subnet "10.1.0.0/24"`},
		{0, `{"name":"app","subnet":"10.0.0.0/24","gateway":"x"}`, `bad gateway "x"`},
		{0, `{"name":"app","subnet":"10.0.0.0/24","gateway":"fd00::1"}`, `bad gateway fd00::1: IPv6 gateways are not supported`},
		{0, `{"name":"app","subnet":"10.0.0.0/24","mtu":100}`, "bad MTU 100: want 576 to 65535"},
		{0, `{"name":"app","subnet":"10.0.0.0/24","mtu":70000}`, "bad MTU 70000"},
		{0, `{"name":"app","subnet":"10.0.0.0/24","egress":true,"internal":true}`, "--egress and --internal exclude each other"},
		{0, `{"name":"app","subnet":"10.0.0.0/24","max_learned":-1}`, "bad max-learned -1"},
		{0, `{"name":"app","subnet":"10.0.0.0/24","max_learned":99999999}`, "bad max-learned 99999999"},
		{1, `{"netns":"c1","ip":"10.0.0.5","mac":"02:42:0a:00:00:05","ifname":"eth1","name":"web","aliases":["www","w.x"],"id":"ep1"}`, ""},
		{1, `{"netns":"/proc/1/ns/net","ip6":"fd00::5/64"}`, ""},
		{1, `{}`, "netns is required"},
		{1, `{"netns":".."}`, `bad netns ".."`},
		{1, `{"netns":"a\u0000b"}`, `bad netns "a\x00b"`},
		{1, `{"netns":"c1","ifname":"a-very-long-name0"}`, `bad interface name "a-very-long-name0": 1 to 15`},
		{1, `{"netns":"c1","ifname":"eth/0"}`, `bad interface name "eth/0"`},
		{1, `{"netns":"c1","ip":"10.0.0.300"}`, `bad IP "10.0.0.300"`},
		{1, `{"netns":"c1","ip":"fd00::1"}`, `bad IP "fd00::1"`},
		{1, `{"netns":"c1","ip6":"10.0.0.1"}`, `bad IPv6 address "10.0.0.1"`},
		{1, `{"netns":"c1","mac":"01:00:5e:00:00:01"}`, `bad MAC "01:00:5e:00:00:01"`},
		{1, `{"netns":"c1","mac":"00:00:00:00:00:00"}`, `bad MAC "00:00:00:00:00:00"`},
		{1, `{"netns":"c1","id":"-x"}`, `bad endpoint ID "-x"`},
		{1, `{"netns":"c1","name":"a..b"}`, `bad endpoint name "a..b"`},
		{1, `{"netns":"c1","aliases":["` + long + `"]}`, `bad endpoint name "` + long[:64] + `"...`},
		{1, `{"netns":"c1","aliases":[""]}`, `bad endpoint name ""`},
		{2, `{"id":"ep1"}`, ""},
		{2, `{"netns":"c1"}`, ""},
		{2, `{}`, "detach needs the endpoint's netns or its ID"},
		{2, `{"id":"ep1","netns":"c1"}`, "detach needs the endpoint's netns or its ID"},
		{3, `{"vtep":"198.18.0.2"}`, ""},
		{3, `{"vtep":"0.0.0.0"}`, `bad VTEP IP "0.0.0.0"`},
		{3, `{"vtep":"239.1.1.1"}`, `bad VTEP IP "239.1.1.1"`},
		{3, `{"vtep":""}`, `bad VTEP IP ""`},
		{4, `{"mac":"02:42:0a:00:00:03","vtep":"198.18.0.2","ips":["10.0.0.3"]}`, ""},
		{4, `{"mac":"02:42:0a:00:00:03"}`, ""},
		{4, `{"mac":"xx","vtep":"198.18.0.2"}`, `bad MAC "xx"`},
		{4, `{"mac":"02:42:0a:00:00:03","vtep":"nope"}`, `bad VTEP IP "nope"`},
		{4, `{"mac":"02:42:0a:00:00:03","vtep":"198.18.0.2","ips":["10.0.0.x"]}`, `bad IP "10.0.0.x" for static entry`},
		{4, `{"mac":"02:42:0a:00:00:03","vtep":"198.18.0.2","source":"learned"}`, "network, vni, source and age_seconds are what fdb show prints"},
	} {
		err := decodeBody([]byte(tc.body), requestKinds[tc.kind]())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d %s: %v", tc.kind, tc.body, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want) || !errors.Is(err, errBadRequest)):
			t.Errorf("%d %s:\n got %v\nwant %s...", tc.kind, tc.body, err, tc.want)
		}
	}
}

// Decoding never panics; a refusal is one short line and a 400; whatever
// is accepted is well-formed by rules written out here again, apart
// from validate.go's, and is accepted again after a round trip.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(uint8(0), []byte(`{"name":"app","vni":300,"subnet":"10.0.0.0/24","gateway":"10.0.0.1","mtu":1450}`))
	f.Add(uint8(1), []byte(`{"netns":"c1","ip":"10.0.0.5/24","mac":"02:42:0a:00:00:05","ifname":"eth0","name":"web","aliases":["www"]}`))
	f.Add(uint8(2), []byte(`{"id":"ep1"}`))
	f.Add(uint8(3), []byte(`{"vtep":"198.18.0.2"}`))
	f.Add(uint8(4), []byte(`{"mac":"02:42:0a:00:00:03","vtep":"fe80::1%eth0","ips":["10.0.0.3","fd00::3"]}`))
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		v := requestKinds[int(kind)%len(requestKinds)]()
		err := decodeBody(body, v)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || len(msg) > 400 || !errors.Is(err, errBadRequest) {
				t.Fatalf("refusal %q (%d bytes, bad request %v): want one line under 400 bytes", msg, len(msg), errors.Is(err, errBadRequest))
			}
			return
		}
		if problem := malformed(v); problem != "" {
			t.Fatalf("accepted %s: %s", body, problem)
		}
		again, _ := json.Marshal(v)
		if err := decodeBody(again, requestKinds[int(kind)%len(requestKinds)]()); err != nil {
			t.Fatalf("accepted %s, refused it re-encoded as %s: %v", body, again, err)
		}
	})
}

var (
	fuzzNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	fuzzDNSLabel = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$`)
)

// malformed says what is wrong with an accepted request, "" if nothing.
func malformed(v any) string {
	unicastMAC := func(s string) bool {
		m, err := net.ParseMAC(s)
		return err == nil && len(m) == 6 && m[0]&1 == 0 && string(m) != "\x00\x00\x00\x00\x00\x00"
	}
	dnsName := func(s string) bool {
		if len(s) == 0 || len(s) > 253 {
			return false
		}
		for _, l := range strings.Split(s, ".") {
			if len(l) > 63 || !fuzzDNSLabel.MatchString(l) {
				return false
			}
		}
		return true
	}
	addr := func(s string, v4 bool) bool {
		a, err := netip.ParseAddr(s)
		if err != nil {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return false
			}
			a = p.Addr()
		}
		return a.Is4() == v4 && a.Zone() == "" && !a.Is4In6()
	}
	switch r := v.(type) {
	case *api.NetworkCreate:
		p, err := netip.ParsePrefix(r.Subnet)
		switch {
		case len(r.Name) == 0 || len(r.Name) > 64 || !fuzzNameRE.MatchString(r.Name):
			return "network name " + r.Name
		case r.VNI > 1<<24-1:
			return "VNI out of range"
		case err != nil || !p.Addr().Is4():
			return "subnet " + r.Subnet
		case r.MTU != 0 && (r.MTU < 576 || r.MTU > 65535):
			return "MTU out of range"
		case r.Egress && r.Internal:
			return "egress and internal"
		case r.MaxLearned < 0 || r.MaxLearned > 1<<24:
			return "max_learned out of range"
		}
		if r.Subnet6 != "" {
			if p, err := netip.ParsePrefix(r.Subnet6); err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
				return "subnet6 " + r.Subnet6
			}
		}
		if r.Gateway != "" {
			if a, err := netip.ParseAddr(r.Gateway); err != nil || !a.Is4() {
				return "gateway " + r.Gateway
			}
		}
	case *api.Attach:
		switch {
		case r.Netns == "" || strings.ContainsRune(r.Netns, 0) || len(r.Netns) > 4096:
			return "netns"
		case r.IfName != "" && (len(r.IfName) > 15 || !fuzzNameRE.MatchString(r.IfName) || r.IfName == "." || r.IfName == ".."):
			return "ifname " + r.IfName
		case r.MAC != "" && !unicastMAC(r.MAC):
			return "MAC " + r.MAC
		case r.IP != "" && !addr(r.IP, true):
			return "IP " + r.IP
		case r.IP6 != "" && !addr(r.IP6, false):
			return "IP6 " + r.IP6
		case r.Name != "" && !dnsName(r.Name):
			return "name " + r.Name
		case len(r.ID) > 128 || r.ID != "" && !fuzzNameRE.MatchString(r.ID):
			return "ID " + r.ID
		case len(r.Aliases) > 64:
			return "aliases"
		}
		for _, a := range r.Aliases {
			if !dnsName(a) {
				return "alias " + a
			}
		}
	case *api.Detach:
		if (r.Netns == "") == (r.ID == "") || strings.ContainsRune(r.Netns, 0) {
			return "netns/id"
		}
	case *api.Peer:
		if a, err := netip.ParseAddr(r.VTEP); err != nil || a.IsUnspecified() || a.IsMulticast() {
			return "vtep " + r.VTEP
		}
	case *api.FDBEntry:
		if !unicastMAC(r.MAC) || r.Network != "" || r.VNI != 0 || r.Source != "" || r.Age != nil || len(r.IPs) > 64 {
			return "fdb entry"
		}
		if r.VTEP != "" {
			if a, err := netip.ParseAddr(r.VTEP); err != nil || a.IsUnspecified() || a.IsMulticast() {
				return "vtep " + r.VTEP
			}
		}
		for _, s := range r.IPs {
			if _, err := netip.ParseAddr(s); err != nil {
				return "ip " + s
			}
		}
	}
	return ""
}
