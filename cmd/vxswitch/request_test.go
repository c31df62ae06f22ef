package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
)

// Requests sent to the control API directly (past the CLI's own checks):
// each bad one is refused with a 400 or 409 and one line, and leaves no
// namespace, link or state entry behind, also when it fails after the
// daemon began making things (the address or interface name is taken
// only in the container).
func TestFailedRequestsLeaveNothing(t *testing.T) {
	tp := topo.New(t)
	d := tp.MustHost("h1").MustVXSwitch(topo.DaemonOptions{Binary: vxbin(t)})
	d.MustNetwork(topo.NetConfig{Name: "net", VNI: 256, Subnet: "10.0.0.0/24"})
	c1, c2 := tp.MustContainer("c1"), tp.MustContainer("c2")
	cli(t, d, "network", "attach", "net", "--netns", c1.Name, "--ip", "10.0.0.5")
	if out, err := c2.Run(testCtx(t), "ip", "link", "add", "eth7", "type", "veth", "peer", "name", "eth8"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket())
	}}}
	post := func(method, path string, body []byte) (int, string) {
		req, _ := http.NewRequestWithContext(testCtx(t), method, "http://vxswitch"+path, bytes.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error
	}
	eps := "/v1/networks/net/endpoints"
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"ifname too long", "POST", eps, `{"netns":"` + c2.Name + `","ifname":"abcdefghijklmnop"}`, 400, `bad interface name "abcdefghijklmnop": 1 to 15`},
		{"ifname with a slash", "POST", eps, `{"netns":"` + c2.Name + `","ifname":"a/b"}`, 400, `bad interface name "a/b"`},
		{"ifname taken in the container", "POST", eps, `{"netns":"` + c2.Name + `","ifname":"eth7"}`, 409, "interface eth7 already exists"},
		{"IP taken", "POST", eps, `{"netns":"` + c2.Name + `","ip":"10.0.0.5"}`, 409, "IP 10.0.0.5 is already used"},
		{"unknown field", "POST", eps, `{"netns":"` + c2.Name + `","ipv4":"10.0.0.6"}`, 400, `bad request body: unknown field "ipv4"; known: netns, id, name, aliases, ip, ip6, mac, ifname`},
		{"two objects", "POST", eps, `{"netns":"` + c2.Name + `"}{"netns":"` + c2.Name + `"}`, 400, "bad request body: more after the JSON object"},
		{"body too large", "POST", eps, `{"netns":"` + c2.Name + `","name":"` + strings.Repeat("a", 70<<10) + `"}`, 400, "request body over 65536 bytes"},
		{"network: VNI out of range", "POST", "/v1/networks", `{"name":"x","vni":16777216,"subnet":"10.1.0.0/24"}`, 400, "bad VNI 16777216: a VNI is 1 to 16777215"},
		{"network: MTU", "POST", "/v1/networks", `{"name":"x","subnet":"10.1.0.0/24","mtu":9}`, 400, "bad MTU 9"},
		{"network: type", "POST", "/v1/networks", `{"name":"x","subnet":"10.1.0.0/24","mtu":"big"}`, 400, "bad request body: field mtu: want a whole number, got string"},
		{"detach: both", "DELETE", eps, `{"netns":"` + c1.Name + `","id":"x"}`, 400, "detach needs the endpoint's netns or its ID"},
		{"fdb: output fields", "POST", "/v1/networks/net/fdb", `{"mac":"02:42:0a:00:00:09","vtep":"198.18.0.2","source":"learned"}`, 400, "network, vni, source and age_seconds are what fdb show prints"},
		{"peer: multicast", "POST", "/v1/networks/net/peers", `{"vtep":"239.0.0.1"}`, 400, `bad VTEP IP "239.0.0.1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := takeSnapshot(t, d, c1.Path, c2.Path)
			code, msg := post(tc.method, tc.path, []byte(tc.body))
			if code != tc.code || !strings.HasPrefix(msg, tc.want) && !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("%d %q, want %d with %q", code, msg, tc.code, tc.want)
			}
			if after := takeSnapshot(t, d, c1.Path, c2.Path); !slices.Equal(after.netns, before.netns) ||
				!slices.Equal(after.links, before.links) || after.state != before.state {
				t.Errorf("left something behind:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	// And what was refused works when asked properly.
	ep, err := d.Client.Attach(testCtx(t), "net", api.Attach{Netns: c2.Name, IfName: "eth9"})
	var se *api.StatusError
	if err != nil || errors.As(err, &se) || ep.IfName != "eth9" {
		t.Fatalf("attach: %+v, %v", ep, err)
	}
}
