// Package cni is vxswitch's CNI plugin: the vxswitch binary, run by a
// container runtime as a plugin of type "vxswitch" (CNI_COMMAND set in its
// environment), translates CNI's commands into the daemon's own attach and
// detach over the daemon's control socket, as `vxswitch network attach`
// does. It keeps no state of its own: the endpoint's ID on the daemon is
// derived from CNI's key for an attachment (network, container ID,
// interface name), so DEL, CHECK and GC find it again by ID.
//
// A network configuration names the vxswitch network (which must exist:
// with a cluster store the cluster's, otherwise the daemon's own) and,
// optionally, the daemon's socket:
//
//	{"cniVersion": "1.0.0", "name": "mynet",
//	 "plugins": [{"type": "vxswitch", "network": "mynet", "socket": "/run/vxswitch/vxswitch.sock"}]}
//
// ADD attaches CNI_NETNS as interface CNI_IFNAME, named in DNS after
// K8S_POD_NAME from CNI_ARGS (podman passes the container's name there) or
// else the container ID, with the address (IP=) and MAC (MAC=) CNI_ARGS
// asks for, if any; its result lists the interface, its MAC, its addresses
// with the gateway, on an --egress network the second interface the daemon
// made and its address, the default route the endpoint got, and on a cluster
// network the gateway as nameserver and the network as search domain (the
// daemon's DNS server there answers for every endpoint's name). DEL
// detaches, releasing the address and names on every host, and succeeds
// when there is nothing to detach. CHECK verifies the endpoint against the
// daemon, the previous result and the container's namespace. Spec versions
// 0.3.0 to 1.1.0; with 1.1.0 also STATUS (is the daemon there, the
// network usable) and GC (detach this network configuration's endpoints
// that are not in the runtime's list of valid attachments).
package cni

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/daemon"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// Type is the plugin's type in a network configuration, and the name its
// binary must have in a directory of CNI_PATH.
const Type = "vxswitch"

// DefaultSocket is the daemon's control socket when the network
// configuration names none.
var DefaultSocket = filepath.Join(daemon.DefaultRunDir, daemon.SocketName)

// ErrRefused is the error code (plugins may use 100 and up) of a request
// the daemon refused as wrong or conflicting: an address already taken,
// an interface name already used in the namespace, a bad value in
// CNI_ARGS. The message is the daemon's.
const ErrRefused uint = 100

// Versions are the CNI spec versions the plugin speaks.
var Versions = version.VersionsStartingFrom("0.3.0")

// timeout bounds one command: attaching runs netlink work in the daemon
// and, with a store, an etcd transaction; a minute is far beyond that,
// yet a hung daemon does not hang the runtime forever.
const timeout = time.Minute

// NetConf is the plugin's network configuration.
type NetConf struct {
	types.PluginConf
	// Network is the vxswitch network to attach to.
	Network string `json:"network"`
	// Socket is the daemon's control socket; empty: DefaultSocket.
	Socket string `json:"socket,omitempty"`
}

// Args are the CNI_ARGS the plugin reads; others are refused unless
// IgnoreUnknown=1 is among them (runtimes such as podman pass it).
type Args struct {
	types.CommonArgs
	// K8S_POD_NAME names the endpoint in DNS (the spelling is CNI's).
	K8S_POD_NAME types.UnmarshallableString
	// IP asks for an IPv4 address (bare or CIDR) in the network's subnet.
	IP types.UnmarshallableString
	// MAC asks for a MAC address.
	MAC types.UnmarshallableString
}

// Main runs the plugin for the runtime that started this process (the
// command in its environment, the configuration on standard input), prints
// the result or the error as CNI asks, and exits with status 1 on error.
func Main(vxswitchVersion string) {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			res, err := Add(ctx, args)
			if err != nil {
				return err
			}
			return types.PrintResult(res, res.CNIVersion)
		},
		Del:    withTimeout(Del),
		Check:  withTimeout(Check),
		GC:     withTimeout(GC),
		Status: withTimeout(Status),
	}, Versions, "vxswitch CNI plugin "+vxswitchVersion)
}

func withTimeout(fn func(context.Context, *skel.CmdArgs) error) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return fn(ctx, args)
	}
}

// LoadConf decodes a network configuration and its previous result.
func LoadConf(data []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode the vxswitch network configuration: "+err.Error(), "")
	}
	if c.Network == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			`the vxswitch network configuration has no "network": name the vxswitch network to attach to`, "")
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode prevResult: "+err.Error(), "")
	}
	return &c, nil
}

// EndpointID is the ID on the daemon of the endpoint that the CNI
// network configuration named netName made for interface ifName of
// container containerID: CNI's key for an attachment, hashed into what an
// endpoint ID may be. The configuration's part comes first, so that GC
// can tell the endpoints of one configuration from others on the same
// vxswitch network.
func EndpointID(netName, containerID, ifName string) string {
	return idPrefix(netName) + hexSum(containerID + "\x00" + ifName)[:32]
}

func idPrefix(netName string) string { return "cni-" + hexSum(netName)[:8] + "-" }

func hexSum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// dnsLabel is one label of a name the daemon's DNS answers for.
var dnsLabel = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)

// validName reports whether s can be an endpoint's DNS name.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if !dnsLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// EndpointName is the DNS name an ADD gives the endpoint: K8S_POD_NAME
// when the runtime passes one (podman passes the container's name), else
// the container ID, cut to its first 12 characters (Docker's short ID)
// when it is longer than a DNS label, as the 64 hex digits of podman's
// and Docker's IDs are. "" when neither makes a DNS name: the daemon then
// names the endpoint after its namespace, if that has a name.
func EndpointName(podName, containerID string) string {
	if validName(podName) {
		return podName
	}
	if len(containerID) > 63 {
		containerID = containerID[:12]
	}
	if validName(containerID) {
		return containerID
	}
	return ""
}

// Add attaches the container's namespace to the network and returns the
// result in the configuration's CNI version (appended to the previous
// result, if the plugin is not the first of a list).
func Add(ctx context.Context, args *skel.CmdArgs) (*current.Result, error) {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return nil, err
	}
	var a Args
	if err := types.LoadArgs(args.Args, &a); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: "+err.Error(), "")
	}
	c := api.NewClient(conf.Socket)
	n, err := c.Network(ctx, conf.Network)
	if err != nil {
		return nil, networkErr(conf, err)
	}
	id := EndpointID(conf.Name, args.ContainerID, args.IfName)
	ep, err := c.Attach(ctx, conf.Network, api.Attach{
		Netns: args.Netns, ID: id, Name: EndpointName(string(a.K8S_POD_NAME), args.ContainerID),
		IfName: args.IfName, IP: string(a.IP), MAC: string(a.MAC),
	})
	if err != nil {
		return nil, daemonErr(fmt.Sprintf("attach container %s to vxswitch network %s", args.ContainerID, conf.Network), conf, err)
	}
	res, err := buildResult(conf, n, ep)
	if err != nil {
		// The endpoint is there but cannot be described: take it back
		// so that the runtime's retry starts clean.
		c.Detach(context.WithoutCancel(ctx), conf.Network, api.Detach{ID: id})
		return nil, err
	}
	return res, nil
}

// buildResult describes the endpoint ep of network n as CNI's result.
func buildResult(conf *NetConf, n api.Network, ep api.Endpoint) (*current.Result, error) {
	res := &current.Result{}
	if conf.PrevResult != nil {
		prev, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "convert prevResult: "+err.Error(), "")
		}
		res = prev
	}
	res.CNIVersion = conf.CNIVersion
	if res.CNIVersion == "" {
		res.CNIVersion = "0.3.0" // what the spec says an unversioned config is
	}
	iface := &current.Interface{Name: ep.IfName, Mac: ep.MAC, Sandbox: ep.Netns}
	if ok, _ := version.GreaterThanOrEqualTo(res.CNIVersion, "1.1.0"); ok {
		iface.Mtu = n.MTU
	}
	res.Interfaces = append(res.Interfaces, iface)
	idx := len(res.Interfaces) - 1
	gw := net.ParseIP(n.Gateway)
	for _, cidr := range []string{ep.IP, ep.IP6} {
		if cidr == "" {
			continue
		}
		ip, ipn, err := net.ParseCIDR(cidr)
		if err != nil {
			return nil, fmt.Errorf("the daemon gave endpoint %s address %q: %w", ep.ID, cidr, err)
		}
		ipc := &current.IPConfig{Interface: current.Int(idx), Address: net.IPNet{IP: ip, Mask: ipn.Mask}}
		if ip.To4() != nil && gw != nil {
			ipc.Gateway = gw
		}
		res.IPs = append(res.IPs, ipc)
	}
	// What the namespace got besides: on an --egress network a second
	// interface on the host's gateway bridge, and the default route the
	// daemon added (through the gateway, or the egress interface; none
	// on an --internal network or where the namespace had one already).
	var nv nsView
	if gw != nil || ep.EgressIP != "" { // else the daemon added nothing
		var err error
		if nv, err = readNamespace(ep); err != nil {
			return nil, err
		}
	}
	if nv.egress != nil {
		res.Interfaces = append(res.Interfaces, &current.Interface{Name: nv.egress.Name, Mac: nv.egress.HardwareAddr.String(), Sandbox: ep.Netns})
		if iface.Mtu != 0 {
			res.Interfaces[len(res.Interfaces)-1].Mtu = nv.egress.MTU
		}
		ip, ipn, err := net.ParseCIDR(ep.EgressIP)
		if err != nil {
			return nil, fmt.Errorf("the daemon gave endpoint %s egress address %q: %w", ep.ID, ep.EgressIP, err)
		}
		ipc := &current.IPConfig{Interface: current.Int(len(res.Interfaces) - 1), Address: net.IPNet{IP: ip, Mask: ipn.Mask}}
		if nv.defaultVia == nv.egress.Name {
			ipc.Gateway = nv.defaultGW
		}
		res.IPs = append(res.IPs, ipc)
	}
	if nv.defaultGW != nil {
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: nv.defaultGW})
	}
	// A cluster network's DNS server, at the gateway on every host,
	// answers for every endpoint as NAME and NAME.NETWORK and forwards
	// the rest.
	if n.Scope == "cluster" && gw != nil && res.DNS.IsEmpty() {
		res.DNS = types.DNS{Nameservers: []string{gw.String()}, Search: []string{n.Name}}
	}
	return res, nil
}

// nsView is what the daemon made in an endpoint's namespace beyond its
// interface.
type nsView struct {
	egress *netlink.LinkAttrs // the egress interface, on an --egress network
	// defaultGW is the IPv4 default route's gateway if the route leaves
	// through the endpoint's interface or its egress interface
	// (defaultVia); nil otherwise.
	defaultGW  net.IP
	defaultVia string
}

// readNamespace looks at the endpoint's namespace: its egress interface
// (the one holding ep.EgressIP) and its default route.
func readNamespace(ep api.Endpoint) (nsView, error) {
	var v nsView
	h, err := nsutil.Handle(ep.Netns)
	if err != nil {
		return v, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return v, fmt.Errorf("list interfaces in %s: %w", ep.Netns, err)
	}
	ours := map[int]string{}
	var egressIP net.IP
	if ep.EgressIP != "" {
		if egressIP, _, err = net.ParseCIDR(ep.EgressIP); err != nil {
			return v, fmt.Errorf("the daemon gave endpoint %s egress address %q: %w", ep.ID, ep.EgressIP, err)
		}
	}
	for _, l := range links {
		at := l.Attrs()
		if at.Name == ep.IfName {
			ours[at.Index] = at.Name
			continue
		}
		if egressIP == nil {
			continue
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return v, fmt.Errorf("list addresses of %s in %s: %w", at.Name, ep.Netns, err)
		}
		if slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(egressIP) }) {
			v.egress = at
			ours[at.Index] = at.Name
		}
	}
	if egressIP != nil && v.egress == nil {
		return v, fmt.Errorf("no interface in %s has endpoint %s's egress address %s", ep.Netns, ep.ID, ep.EgressIP)
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return v, fmt.Errorf("list routes in %s: %w", ep.Netns, err)
	}
	for _, r := range routes {
		if name, ok := ours[r.LinkIndex]; ok && r.Gw != nil && (r.Dst == nil || isZeroMask(r.Dst.Mask)) {
			v.defaultGW, v.defaultVia = r.Gw, name
			break
		}
	}
	return v, nil
}

func isZeroMask(m net.IPMask) bool { ones, _ := m.Size(); return ones == 0 }

// Del detaches the endpoint ADD made. Detaching what is not there (a
// second DEL, a container never added, a network that is gone) succeeds.
func Del(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	err = api.NewClient(conf.Socket).Detach(ctx, conf.Network, api.Detach{ID: EndpointID(conf.Name, args.ContainerID, args.IfName)})
	if err == nil || isStatus(err, http.StatusNotFound) {
		return nil
	}
	return daemonErr(fmt.Sprintf("detach container %s from vxswitch network %s", args.ContainerID, conf.Network), conf, err)
}

// Check verifies what ADD made: the daemon has the endpoint, for this
// namespace and interface, without a problem; it is what the previous
// result says; and the container's namespace has the interface with its
// MAC, MTU and addresses, up, and the routes of the previous result.
func Check(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	n, err := api.NewClient(conf.Socket).Network(ctx, conf.Network)
	if err != nil {
		return networkErr(conf, err)
	}
	id := EndpointID(conf.Name, args.ContainerID, args.IfName)
	i := slices.IndexFunc(n.Endpoints, func(e api.Endpoint) bool { return e.ID == id && e.Netns != "" })
	if i < 0 {
		return types.NewError(types.ErrUnknownContainer, fmt.Sprintf("container %s has no interface %s on vxswitch network %s on this host (endpoint %s); add it first",
			args.ContainerID, args.IfName, conf.Network, id), "")
	}
	ep := n.Endpoints[i]
	if ep.Problem != "" {
		return checkErr("endpoint %s of container %s: %s", ep.ID, args.ContainerID, ep.Problem)
	}
	if ep.IfName != args.IfName {
		return checkErr("endpoint %s is interface %s, not %s", ep.ID, ep.IfName, args.IfName)
	}
	if !sameNetns(ep.Netns, args.Netns) {
		return checkErr("endpoint %s is in netns %s, not in %s", ep.ID, ep.Netns, args.Netns)
	}
	var routes []*types.Route
	if conf.PrevResult != nil {
		prev, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return types.NewError(types.ErrDecodingFailure, "convert prevResult: "+err.Error(), "")
		}
		if err := checkPrevResult(prev, ep); err != nil {
			return err
		}
		routes = prev.Routes
	}
	return checkNamespace(ep, n.MTU, routes)
}

func checkErr(format string, args ...any) error {
	return types.NewError(types.ErrInternal, "check: "+fmt.Sprintf(format, args...), "")
}

// sameNetns reports whether two paths name the same network namespace.
func sameNetns(a, b string) bool {
	ia, err := nsutil.Inode(a)
	if err != nil {
		return false
	}
	ib, err := nsutil.Inode(b)
	return err == nil && ia == ib && nsutil.IsNetns(a) && nsutil.IsNetns(b)
}

// checkPrevResult checks that the previous result lists ep's interface
// with its MAC, and exactly ep's addresses on it.
func checkPrevResult(prev *current.Result, ep api.Endpoint) error {
	idx := slices.IndexFunc(prev.Interfaces, func(i *current.Interface) bool { return i.Name == ep.IfName && i.Sandbox != "" })
	if idx < 0 {
		return checkErr("prevResult lists no interface %s in a sandbox", ep.IfName)
	}
	if !strings.EqualFold(prev.Interfaces[idx].Mac, ep.MAC) {
		return checkErr("prevResult says %s has MAC %s; endpoint %s has %s", ep.IfName, prev.Interfaces[idx].Mac, ep.ID, ep.MAC)
	}
	var got, want []string
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface == idx {
			got = append(got, ipc.Address.String())
		}
	}
	for _, cidr := range []string{ep.IP, ep.IP6} {
		if cidr != "" {
			p, err := netip.ParsePrefix(cidr)
			if err != nil {
				return checkErr("endpoint %s has address %q: %v", ep.ID, cidr, err)
			}
			want = append(want, p.String())
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return checkErr("prevResult gives %s addresses %v; endpoint %s has %v", ep.IfName, got, ep.ID, want)
	}
	return nil
}

// checkNamespace checks the interface in the container's namespace.
func checkNamespace(ep api.Endpoint, mtu int, routes []*types.Route) error {
	h, err := nsutil.Handle(ep.Netns)
	if err != nil {
		return checkErr("open netns %s: %v", ep.Netns, err)
	}
	defer h.Close()
	l, err := h.LinkByName(ep.IfName)
	if err != nil {
		return checkErr("interface %s in netns %s: %v", ep.IfName, ep.Netns, err)
	}
	at := l.Attrs()
	if !strings.EqualFold(at.HardwareAddr.String(), ep.MAC) {
		return checkErr("interface %s has MAC %s, want %s", ep.IfName, at.HardwareAddr, ep.MAC)
	}
	if at.Flags&net.FlagUp == 0 {
		return checkErr("interface %s in netns %s is down", ep.IfName, ep.Netns)
	}
	if mtu != 0 && at.MTU != mtu {
		return checkErr("interface %s has MTU %d, want the network's %d", ep.IfName, at.MTU, mtu)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return checkErr("list addresses of %s: %v", ep.IfName, err)
	}
	for _, cidr := range []string{ep.IP, ep.IP6} {
		if cidr == "" {
			continue
		}
		ip, ipn, err := net.ParseCIDR(cidr)
		if err != nil {
			return checkErr("endpoint %s has address %q: %v", ep.ID, cidr, err)
		}
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
			return a.IP.Equal(ip) && slices.Equal(a.Mask, ipn.Mask)
		}) {
			return checkErr("interface %s in netns %s lacks address %s", ep.IfName, ep.Netns, cidr)
		}
	}
	for _, r := range routes {
		family := netlink.FAMILY_V4
		if r.Dst.IP.To4() == nil {
			family = netlink.FAMILY_V6
		}
		have, err := h.RouteList(nil, family)
		if err != nil {
			return checkErr("list routes in %s: %v", ep.Netns, err)
		}
		if !slices.ContainsFunc(have, func(h netlink.Route) bool { return sameRoute(h, r) }) {
			return checkErr("netns %s has no route %s via %s", ep.Netns, r.Dst.String(), r.GW)
		}
	}
	if ep.EgressIP != "" {
		if _, err := readNamespace(ep); err != nil {
			return checkErr("%v", err)
		}
	}
	return nil
}

// sameRoute reports whether the kernel's route h is the result's r.
func sameRoute(h netlink.Route, r *types.Route) bool {
	dst := h.Dst
	if dst == nil { // the default route
		if ones, _ := r.Dst.Mask.Size(); ones != 0 {
			return false
		}
	} else if !dst.IP.Equal(r.Dst.IP) || !slices.Equal(dst.Mask, r.Dst.Mask) {
		return false
	}
	return r.GW == nil || h.Gw.Equal(r.GW)
}

// GC detaches the endpoints that this network configuration made on this
// host and that are not in the runtime's list of valid attachments.
func GC(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	valid := map[string]bool{}
	for _, a := range conf.ValidAttachments {
		valid[EndpointID(conf.Name, a.ContainerID, a.IfName)] = true
	}
	c := api.NewClient(conf.Socket)
	n, err := c.Network(ctx, conf.Network)
	if isStatus(err, http.StatusNotFound) {
		return nil // nothing of it is left anywhere
	}
	if err != nil {
		return networkErr(conf, err)
	}
	prefix := idPrefix(conf.Name)
	var errs []error
	for _, ep := range n.Endpoints {
		if ep.Netns == "" || !strings.HasPrefix(ep.ID, prefix) || valid[ep.ID] {
			continue // another host's, another front end's, or in use
		}
		if err := c.Detach(ctx, conf.Network, api.Detach{ID: ep.ID}); err != nil && !isStatus(err, http.StatusNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return daemonErr(fmt.Sprintf("garbage-collect %d endpoint(s) on vxswitch network %s", len(errs), conf.Network), conf, errors.Join(errs...))
	}
	return nil
}

// Status reports whether ADD can work now: the daemon answers, the
// network exists, is up and, on a cluster network, the store is
// reachable.
func Status(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	n, err := api.NewClient(conf.Socket).Network(ctx, conf.Network)
	if err != nil {
		e := networkErr(conf, err)
		var te *types.Error
		if errors.As(e, &te) {
			te.Code = types.ErrPluginNotAvailable
		}
		return e
	}
	switch {
	case n.Problem != "":
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("vxswitch network %s is down: %s", conf.Network, n.Problem), "")
	case n.Stale != "":
		return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("vxswitch network %s cannot take endpoints now: %s", conf.Network, n.Stale), "")
	}
	return nil
}

func isStatus(err error, code int) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Code == code
}

// networkErr reports a failure to look the configuration's network up.
func networkErr(conf *NetConf, err error) error {
	if isStatus(err, http.StatusNotFound) {
		return types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("vxswitch network %s (in CNI network configuration %s) does not exist on the daemon at %s; create it with `vxswitch network create %s --subnet CIDR`",
				conf.Network, conf.Name, conf.Socket, conf.Network), "")
	}
	return daemonErr("look up vxswitch network "+conf.Network, conf, err)
}

// daemonErr turns a failed request to the daemon into a CNI error.
func daemonErr(what string, conf *NetConf, err error) error {
	var se *api.StatusError
	switch {
	case errors.Is(err, api.ErrDaemonDown):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("%s: no vxswitch daemon answers at %s; start it with `vxswitch daemon`, or set \"socket\" in the network configuration to its socket", what, conf.Socket), "")
	case errors.As(err, &se) && se.Code == http.StatusServiceUnavailable:
		return types.NewError(types.ErrTryAgainLater, what+": "+se.Message, "")
	case errors.As(err, &se) && (se.Code == http.StatusBadRequest || se.Code == http.StatusConflict || se.Code == http.StatusNotFound):
		return types.NewError(ErrRefused, what+": "+se.Message, "")
	}
	return types.NewError(types.ErrInternal, what+": "+err.Error(), "")
}
