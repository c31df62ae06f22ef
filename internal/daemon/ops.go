package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/internal/nsutil"
	"github.com/vxswitch/vxswitch/internal/veth"
)

// The operations every front end shares: the control API (`network
// attach` is CreateEndpoint and JoinEndpoint in one, `network detach` is
// DeleteEndpoint), the Docker plugin (internal/docker), and whatever
// comes next. An endpoint is keyed by its network and a caller-chosen ID;
// its addresses come from the same IPAM whoever asks.
//
//	EnsureNetwork     the network by name: found (its subnet checked) or created
//	CreateEndpoint    ID, addresses and MAC held; the network's namespace up; nothing plumbed
//	ReserveAddress    a provisional endpoint holding an address for one that does not exist yet
//	ClaimReservation  the endpoint that address was for takes the reservation over
//	JoinEndpoint      plumbed into a namespace, or handed off to a runtime; published
//	SetEndpointNames  its DNS names, everywhere
//	LeaveEndpoint     no longer joined; unpublished; addresses still held
//	DeleteEndpoint    released everywhere
//
// Each takes the daemon's mutex, changes nothing if it fails, and saves
// the state before it returns success.

// DefaultReservationTTL is how long an address reserved for an endpoint
// that does not exist yet stays reserved: Docker asks its IPAM for the
// address and creates the endpoint a moment later, retrying a plugin
// that does not answer for about 30 s; a reservation older than this was
// abandoned (the engine failed in between).
const DefaultReservationTTL = 2 * time.Minute

// reservationPrefix starts the ID of a provisional endpoint.
const reservationPrefix = "reserved-"

// NetworkSpec names the network EnsureNetwork finds or creates.
type NetworkSpec struct {
	Name   string
	Subnet netip.Prefix // IPv4; an existing network must have exactly this one
	// Gateway, when valid, is a new network's gateway, and must be an
	// existing one's if it has one; invalid means the default (the
	// subnet's first address with a store).
	Gateway netip.Addr
	// MTU, when not 0, is a new network's MTU (an existing one keeps its
	// own).
	MTU int
}

// NetworkInfo is a network as the operations report it.
type NetworkInfo struct {
	Name    string
	VNI     uint32
	Subnet  netip.Prefix
	Subnet6 netip.Prefix // invalid unless dual-stack
	Gateway netip.Addr   // invalid if none
	MTU     int
	Cluster bool // the cluster store's
}

// EndpointSpec asks for an endpoint.
type EndpointSpec struct {
	// ID names the endpoint for its caller (a Docker endpoint ID, say);
	// "" makes one. Unique in the network.
	ID string
	// Name and Aliases are its DNS names (with a store).
	Name    string
	Aliases []string
	// IP, IP6 and MAC ask for an address (bare or CIDR), an IPv6 address
	// (in a dual-stack network) or a MAC; "" picks one: the lowest free
	// IPv4 address, 02:42 followed by it, and the IPv6 prefix with the
	// MAC's EUI-64.
	IP, IP6, MAC string
}

// JoinSpec says where a joined endpoint goes: Netns, or Sandbox.
type JoinSpec struct {
	// Netns plumbs the endpoint into this namespace (a name from `ip
	// netns` or a path) as IfName (default eth0), configured with its
	// address, MAC, MTU and a default route through the gateway, as
	// `network attach` does.
	Netns, IfName string
	// Sandbox hands the container end off instead: it is made in the
	// daemon's own (underlay) namespace, down, with the network's MTU and
	// the endpoint's MAC and nothing else, and EndpointInfo.Peer names it,
	// for a runtime that moves it into the container and configures it
	// (Docker). Sandbox is the runtime's name for that container's
	// namespace, shown by inspect.
	Sandbox string
}

// EndpointInfo is an endpoint as the operations report it.
type EndpointInfo struct {
	Network string
	ID      string
	Name    string
	Aliases []string
	IP      netip.Prefix
	IP6     netip.Prefix // invalid unless the network is dual-stack
	MAC     string
	// Gateway and MTU are the network's, and Internal says it has no
	// way out (network create --internal).
	Gateway  netip.Addr
	MTU      int
	Internal bool
	// Joined reports whether the endpoint is plumbed (Netns, IfName) or
	// handed off (Sandbox, Peer). Veth is the bridge end of its pair.
	Joined        bool
	Netns, IfName string
	Sandbox, Peer string
	Veth          string
	// Reserved is when a provisional endpoint was reserved (zero for
	// every other).
	Reserved time.Time
}

// EnsureNetwork returns the network named spec.Name, creating it (in the
// cluster store, with one) if there is none. An existing network must
// have spec's subnet, and its gateway if spec names one: otherwise it is
// an error that says what the network has.
func (d *Daemon) EnsureNetwork(ctx context.Context, spec NetworkSpec) (NetworkInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for range 3 {
		info, found, err := d.findNetwork(ctx, spec.Name)
		if err != nil {
			return NetworkInfo{}, err
		}
		if found {
			return info, spec.check(info)
		}
		req := api.NetworkCreate{Name: spec.Name, Subnet: spec.Subnet.String(), MTU: spec.MTU}
		if spec.Gateway.IsValid() {
			req.Gateway = spec.Gateway.String()
		}
		_, err = d.createNetwork(ctx, req)
		if err == nil {
			info, _, err = d.findNetwork(ctx, spec.Name)
			return info, err
		}
		if !errors.Is(err, errConflict) || d.cluster == nil {
			return NetworkInfo{}, err
		}
		// Another host made it meanwhile: look again.
	}
	return NetworkInfo{}, conflict("network %s kept changing while it was being made; try again", spec.Name)
}

// findNetwork looks a network up: this host's, or the cluster store's.
func (d *Daemon) findNetwork(ctx context.Context, name string) (NetworkInfo, bool, error) {
	if n, ok := d.nets[name]; ok && (!n.Cluster || d.cluster == nil) {
		return n.info(), true, nil
	}
	if d.cluster == nil {
		return NetworkInfo{}, false, nil
	}
	sn, err := d.cluster.st.Network(ctx, name)
	if err != nil {
		var ue *userError
		if err = storeErr(err); errors.As(err, &ue) && errors.Is(err, errNotFound) {
			return NetworkInfo{}, false, nil
		}
		return NetworkInfo{}, false, err
	}
	return NetworkInfo{Name: sn.Name, VNI: sn.VNI, Subnet: sn.Subnet, Subnet6: sn.Subnet6, Gateway: sn.Gateway, MTU: sn.MTU, Cluster: true}, true, nil
}

// check says how an existing network differs from what spec asks.
func (spec NetworkSpec) check(info NetworkInfo) error {
	if info.Subnet != spec.Subnet {
		return conflict("network %s exists with subnet %s, not %s; give --subnet %s, or another network name", info.Name, info.Subnet, spec.Subnet, info.Subnet)
	}
	if spec.Gateway.IsValid() && info.Gateway.IsValid() && info.Gateway != spec.Gateway {
		return conflict("network %s exists with gateway %s, not %s; give --gateway %s", info.Name, info.Gateway, spec.Gateway, info.Gateway)
	}
	return nil
}

func (n *network) info() NetworkInfo {
	return NetworkInfo{Name: n.Name, VNI: n.VNI, Subnet: n.Subnet, Subnet6: n.Subnet6, Gateway: n.Gateway, MTU: n.MTU, Cluster: n.Cluster}
}

// CreateEndpoint makes an endpoint on the network: its ID, addresses and
// MAC are held (in the cluster store, with one) and the network's
// namespace is up on this host, but nothing is plumbed and nothing is
// published until JoinEndpoint.
func (d *Daemon) CreateEndpoint(ctx context.Context, network string, spec EndpointSpec) (_ EndpointInfo, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var u undo
	defer u.onError(&err)
	n, err := d.attachable(ctx, network, &u)
	if err != nil {
		return EndpointInfo{}, err
	}
	ep, err := d.createEndpoint(ctx, n, spec, time.Time{}, &u)
	if err != nil {
		return EndpointInfo{}, err
	}
	if err := d.commit(); err != nil {
		return EndpointInfo{}, err
	}
	d.log.Info("endpoint created", zap.String("network", n.Name), zap.String("id", ep.ID), zap.Stringer("ip", ep.IP), zap.String("mac", ep.MAC))
	return d.endpointInfo(n, ep), nil
}

// ReserveAddress holds an address (ip, or the lowest free one if "") for
// an endpoint that does not exist yet, as a provisional endpoint: Docker
// asks its IPAM for an address before it creates the endpoint, and the
// address must be unique across hosts from that moment. ClaimReservation
// turns it into the endpoint; ReleaseReservation, or ReservationTTL
// without a claim, releases it.
func (d *Daemon) ReserveAddress(ctx context.Context, network, ip string) (_ EndpointInfo, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var u undo
	defer u.onError(&err)
	n, err := d.attachable(ctx, network, &u)
	if err != nil {
		return EndpointInfo{}, err
	}
	id, err := randomID(reservationPrefix)
	if err != nil {
		return EndpointInfo{}, err
	}
	ep, err := d.createEndpoint(ctx, n, EndpointSpec{ID: id, IP: ip}, time.Now().UTC(), &u)
	if err != nil {
		return EndpointInfo{}, err
	}
	if err := d.commit(); err != nil {
		return EndpointInfo{}, err
	}
	d.log.Info("address reserved for an endpoint to come", zap.String("network", n.Name), zap.String("id", ep.ID), zap.Stringer("ip", ep.IP))
	return d.endpointInfo(n, ep), nil
}

// ClaimReservation makes endpoint spec.ID from the reservation that holds
// ip, in one step (one store transaction): its address stays held
// throughout, and a MAC asked for in spec (and the IPv6 address made from
// it) replaces the reservation's. With no reservation holding ip (it was
// released, or the address came from another IPAM) the endpoint is
// created asking for ip.
func (d *Daemon) ClaimReservation(ctx context.Context, network string, ip netip.Addr, spec EndpointSpec) (_ EndpointInfo, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var u undo
	defer u.onError(&err)
	n, err := d.attachable(ctx, network, &u)
	if err != nil {
		return EndpointInfo{}, err
	}
	spec.IP = ip.String()
	if j := slices.IndexFunc(n.Endpoints, func(e epState) bool { return e.ID == spec.ID && e.Reserved.IsZero() }); j >= 0 && n.Endpoints[j].IP.Addr() == ip {
		return d.endpointInfo(n, n.Endpoints[j]), nil // claimed already: a caller that retries
	}
	i := slices.IndexFunc(n.Endpoints, func(e epState) bool { return !e.Reserved.IsZero() && e.IP.Addr() == ip })
	if i < 0 {
		ep, err := d.createEndpoint(ctx, n, spec, time.Time{}, &u)
		if err != nil {
			return EndpointInfo{}, err
		}
		if err := d.commit(); err != nil {
			return EndpointInfo{}, err
		}
		d.log.Info("endpoint created (no reservation held its address)", zap.String("network", n.Name), zap.String("id", ep.ID), zap.Stringer("ip", ep.IP))
		return d.endpointInfo(n, ep), nil
	}
	old := n.Endpoints[i]
	ep := epState{ID: spec.ID, Name: spec.Name, Aliases: spec.Aliases}
	if err := d.checkNames(n, &ep, old.ID); err != nil {
		return EndpointInfo{}, err
	}
	if err := d.ipam.replace(ctx, n, old, spec.attach(), &ep); err != nil {
		return EndpointInfo{}, err
	}
	// Undone by releasing the endpoint: the reservation was for it, and
	// the caller that failed releases its address anyway.
	u.push(func() {
		if err := d.ipam.release(undoCtx(), n, ep); err != nil {
			d.log.Warn("cannot release a failed claim's address now; it is released when this host registers again",
				zap.String("network", n.Name), zap.String("id", ep.ID), zap.Error(err))
		}
	})
	d.setEndpoints(n, slices.Replace(slices.Clone(n.Endpoints), i, i+1, ep), &u)
	if err := d.commit(); err != nil {
		return EndpointInfo{}, err
	}
	d.log.Info("endpoint created from a reservation", zap.String("network", n.Name), zap.String("id", ep.ID), zap.String("reservation", old.ID),
		zap.Stringer("ip", ep.IP), zap.String("mac", ep.MAC))
	return d.endpointInfo(n, ep), nil
}

// ReleaseReservation releases the reservation holding ip, if one does
// (and reports whether one did). An address held by an endpoint that is
// not a reservation is left alone: DeleteEndpoint releases that.
func (d *Daemon) ReleaseReservation(ctx context.Context, network string, ip netip.Addr) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.nets[network]
	if !ok {
		return false, nil
	}
	i := slices.IndexFunc(n.Endpoints, func(e epState) bool { return !e.Reserved.IsZero() && e.IP.Addr() == ip })
	if i < 0 {
		return false, nil
	}
	return true, d.deleteEndpoint(ctx, n, i)
}

// JoinEndpoint plumbs endpoint id into j.Netns, or hands it off to a
// runtime's j.Sandbox (see JoinSpec), and publishes it to the other hosts.
func (d *Daemon) JoinEndpoint(ctx context.Context, network, id string, j JoinSpec) (_ EndpointInfo, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var u undo
	defer u.onError(&err)
	n, i, err := d.endpoint(network, id)
	if err != nil {
		return EndpointInfo{}, err
	}
	if n.sw == nil {
		return EndpointInfo{}, conflict("network %s is down on this host: %s", n.Name, n.problem)
	}
	if !n.Endpoints[i].Reserved.IsZero() {
		return EndpointInfo{}, conflict("endpoint %s is a reservation; claim it first", id)
	}
	if ep := n.Endpoints[i]; j.Sandbox != "" && ep.Sandbox == j.Sandbox {
		return d.endpointInfo(n, ep), nil // joined already: a caller that retries
	}
	tgt, err := d.joinTarget(n, j)
	if err != nil {
		return EndpointInfo{}, err
	}
	if err := d.joinEndpoint(n, i, tgt, &u); err != nil {
		return EndpointInfo{}, err
	}
	if err := d.commit(); err != nil {
		return EndpointInfo{}, err
	}
	ep := n.Endpoints[i]
	if n.Cluster && d.cluster != nil {
		d.cluster.publish(ctx, n, ep)
	}
	d.syncNetwork(n)
	d.log.Info("endpoint joined", zap.String("network", n.Name), zap.String("id", ep.ID), zap.String("netns", ep.Netns),
		zap.String("sandbox", ep.Sandbox), zap.String("peer", ep.Peer), zap.Stringer("ip", ep.IP), zap.String("mac", ep.MAC))
	return d.endpointInfo(n, ep), nil
}

// SetEndpointNames replaces endpoint id's DNS names (the store's record
// too, and its publication if it is joined).
func (d *Daemon) SetEndpointNames(ctx context.Context, network, id, name string, aliases []string) (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var u undo
	defer u.onError(&err)
	n, i, err := d.endpoint(network, id)
	if err != nil {
		return err
	}
	ep := n.Endpoints[i]
	if ep.Name == name && slices.Equal(ep.Aliases, aliases) {
		return nil
	}
	ep.Name, ep.Aliases = name, slices.Clone(aliases)
	for _, nm := range ep.names() {
		if !dnsNameRE.MatchString(nm) {
			return bad("bad endpoint name %q: a DNS name of letters, digits, '-' and '_', labels joined by '.', up to 63 characters", nm)
		}
	}
	if n.Cluster && d.cluster != nil {
		if err := storeErr(d.cluster.st.UpdateEndpoint(ctx, n.Name, ep.record(n.Name, d.cluster.advertise))); err != nil {
			return err
		}
		old := n.Endpoints[i]
		u.push(func() {
			if err := d.cluster.st.UpdateEndpoint(undoCtx(), n.Name, old.record(n.Name, d.cluster.advertise)); err != nil {
				d.log.Warn("cannot put an endpoint's names back after a failed change", zap.String("network", n.Name), zap.String("id", id), zap.Error(err))
			}
		})
	}
	d.setEndpoints(n, slices.Replace(slices.Clone(n.Endpoints), i, i+1, ep), &u)
	if err := d.commit(); err != nil {
		return err
	}
	if n.Cluster && d.cluster != nil && ep.joined() {
		d.cluster.publish(ctx, n, ep)
	}
	d.syncNetwork(n)
	d.log.Info("endpoint names set", zap.String("network", n.Name), zap.String("id", id), zap.String("name", name), zap.Strings("aliases", aliases))
	return nil
}

// LeaveEndpoint undoes JoinEndpoint: the endpoint is unpublished and no
// longer answers DNS, and a plumbed one's veth pair is deleted; a handed
// off one's pair stays until DeleteEndpoint, since the runtime moves the
// container end back out of the container after it leaves. Its addresses
// stay held. Leaving an endpoint that is not joined does nothing.
func (d *Daemon) LeaveEndpoint(ctx context.Context, network, id string) (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var u undo
	defer u.onError(&err)
	n, i, err := d.endpoint(network, id)
	if err != nil {
		return err
	}
	old := n.Endpoints[i]
	if !old.joined() {
		return nil
	}
	ep := old
	if ep.Netns != "" {
		ep.Netns, ep.NetnsInode, ep.IfName, ep.Veth, ep.ResolvConf = "", 0, "", "", ""
	}
	ep.Sandbox = ""
	d.setEndpoints(n, slices.Replace(slices.Clone(n.Endpoints), i, i+1, ep), &u)
	if err := d.commit(); err != nil {
		return err
	}
	delete(n.epProbs, id)
	delete(d.gone.marks, goneKey{network, id}) // a re-Join starts afresh
	if old.Netns != "" {
		d.unplumb(n, old)
		removeResolvConf(old.ResolvConf, n.Name)
	}
	if n.Cluster && d.cluster != nil {
		if err := d.cluster.st.Unpublish(ctx, n.Name, id); err != nil {
			d.log.Warn("cannot withdraw the endpoint's publication now; it goes when the endpoint is deleted or this host registers again",
				zap.String("network", n.Name), zap.String("id", id), zap.Error(err))
		}
	}
	d.syncNetwork(n)
	d.log.Info("endpoint left", zap.String("network", n.Name), zap.String("id", id), zap.String("netns", old.Netns), zap.String("sandbox", old.Sandbox))
	return nil
}

// DeleteEndpoint releases endpoint id: its record, addresses and MAC
// (in the store first, so while the store is away it fails and changes
// nothing), its veth pair, and with the network's last endpoint on this
// host the network's namespace. A joined endpoint leaves first.
func (d *Daemon) DeleteEndpoint(ctx context.Context, network, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, i, err := d.endpoint(network, id)
	if err != nil {
		return err
	}
	return d.deleteEndpoint(ctx, n, i)
}

// Endpoint returns endpoint id of network.
func (d *Daemon) Endpoint(network, id string) (EndpointInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, i, err := d.endpoint(network, id)
	if err != nil {
		return EndpointInfo{}, err
	}
	return d.endpointInfo(n, n.Endpoints[i]), nil
}

// Endpoints returns network's endpoints on this host (none if this host
// has no copy of it).
func (d *Daemon) Endpoints(network string) []EndpointInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.nets[network]
	if !ok {
		return nil
	}
	out := make([]EndpointInfo, 0, len(n.Endpoints))
	for _, ep := range n.Endpoints {
		out = append(out, d.endpointInfo(n, ep))
	}
	return out
}

// endpoint finds endpoint id of network on this host.
func (d *Daemon) endpoint(network, id string) (*network, int, error) {
	n, err := d.network(network)
	if err != nil {
		return nil, 0, err
	}
	i := slices.IndexFunc(n.Endpoints, func(e epState) bool { return e.ID == id })
	if i < 0 {
		return nil, 0, notFound("no endpoint %s on network %s on this host", id, network)
	}
	return n, i, nil
}

func (d *Daemon) endpointInfo(n *network, ep epState) EndpointInfo {
	return EndpointInfo{Network: n.Name, ID: ep.ID, Name: ep.Name, Aliases: slices.Clone(ep.Aliases), IP: ep.IP, IP6: ep.IP6, MAC: ep.MAC,
		Gateway: n.Gateway, MTU: n.MTU, Internal: n.Internal, Joined: ep.joined(), Netns: ep.Netns, IfName: ep.IfName, Sandbox: ep.Sandbox, Peer: ep.Peer,
		Veth: ep.Veth, Reserved: ep.Reserved}
}

// attach returns the Attach request pick understands.
func (s EndpointSpec) attach() api.Attach {
	return api.Attach{ID: s.ID, Name: s.Name, Aliases: s.Aliases, IP: s.IP, IP6: s.IP6, MAC: s.MAC}
}

// setEndpoints replaces n's endpoints; u puts them back.
func (d *Daemon) setEndpoints(n *network, eps []epState, u *undo) {
	old := n.Endpoints
	n.Endpoints = eps
	u.push(func() { n.Endpoints = old })
}

// createEndpoint checks spec, allocates the endpoint's addresses and MAC
// and adds it to n (a provisional one if reserved is not zero); u undoes
// both. The caller commits.
func (d *Daemon) createEndpoint(ctx context.Context, n *network, spec EndpointSpec, reserved time.Time, u *undo) (epState, error) {
	ep := epState{ID: spec.ID, Name: spec.Name, Aliases: spec.Aliases, Reserved: reserved}
	if err := d.checkNames(n, &ep, ""); err != nil {
		return epState{}, err
	}
	if err := d.ipam.allocate(ctx, n, spec.attach(), &ep); err != nil {
		return epState{}, err
	}
	u.push(func() {
		if err := d.ipam.release(undoCtx(), n, ep); err != nil {
			d.log.Warn("cannot release a failed attach's address now; it is released when this host registers again",
				zap.String("network", n.Name), zap.String("id", ep.ID), zap.Error(err))
		}
	})
	d.setEndpoints(n, append(slices.Clone(n.Endpoints), ep), u)
	return ep, nil
}

// checkNames checks and completes an endpoint's ID (made if not given;
// unique in n but for the endpoint replaced, if any) and DNS names.
func (d *Daemon) checkNames(n *network, ep *epState, replaced string) error {
	if ep.ID == "" {
		var err error
		if ep.ID, err = randomID(""); err != nil {
			return err
		}
	}
	if !idRE.MatchString(ep.ID) {
		return bad("bad endpoint ID %q: 1 to 128 letters, digits, '_', '.', '-', starting with a letter or digit", ep.ID)
	}
	if slices.ContainsFunc(n.Endpoints, func(e epState) bool { return e.ID == ep.ID && e.ID != replaced }) {
		return conflict("endpoint %s is already attached to network %s", ep.ID, n.Name)
	}
	for _, name := range ep.names() {
		if !dnsNameRE.MatchString(name) {
			return bad("bad endpoint name %q: a DNS name of letters, digits, '-' and '_', labels joined by '.', up to 63 characters", name)
		}
	}
	return nil
}

// randomID is prefix and 16 random hex digits.
func randomID(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// joinTarget is a checked JoinSpec.
type joinTarget struct {
	netns   string // resolved path, for a plumbed join
	ino     uint64
	ifname  string
	sandbox string // for a hand-off
}

// joinTarget checks where an endpoint of n is to be joined.
func (d *Daemon) joinTarget(n *network, j JoinSpec) (joinTarget, error) {
	if (j.Netns == "") == (j.Sandbox == "") {
		return joinTarget{}, bad("join needs a netns or a sandbox, not both")
	}
	if j.Sandbox != "" {
		return joinTarget{sandbox: j.Sandbox}, nil
	}
	path, err := nsutil.Resolve(j.Netns)
	if err != nil {
		if errors.Is(err, nsutil.ErrNotFound) {
			return joinTarget{}, notFound("netns %q not found (give a name from `ip netns` or a path such as /proc/PID/ns/net)", j.Netns)
		}
		return joinTarget{}, bad("%v", err)
	}
	if slices.ContainsFunc(n.Endpoints, func(e epState) bool { return e.Netns == path }) {
		return joinTarget{}, conflict("netns %s is already attached to network %s", j.Netns, n.Name)
	}
	ino, err := nsutil.Inode(path)
	if err != nil {
		return joinTarget{}, err
	}
	ifname := j.IfName
	if ifname == "" {
		ifname = defaultIfName
	}
	if len(ifname) > 15 || ifname == "." || ifname == ".." || !nameRE.MatchString(ifname) {
		return joinTarget{}, bad("bad interface name %q: 1 to 15 letters, digits, '_', '.', '-'", ifname)
	}
	return joinTarget{netns: path, ino: ino, ifname: ifname}, nil
}

// joinEndpoint plumbs or hands off endpoint i of n; u undoes it. The
// caller commits, publishes and syncs.
func (d *Daemon) joinEndpoint(n *network, i int, tgt joinTarget, u *undo) (err error) {
	ep := n.Endpoints[i]
	if ep.joined() {
		return conflict("endpoint %s is joined already (to %s)", ep.ID, ep.Netns+ep.Sandbox)
	}
	if ep.Veth != "" {
		// The pair of an earlier hand-off that left: a runtime that
		// joins again gets a new one.
		if err := veth.Delete(n.netns, ep.Veth); err != nil {
			return err
		}
		ep.Veth, ep.Peer = "", ""
	}
	if ep.Veth, err = vethName("veth"); err != nil {
		return err
	}
	if tgt.sandbox != "" {
		if ep.Peer, err = vethName("vxc"); err != nil {
			return err
		}
		ep.Sandbox = tgt.sandbox
		if err := d.stage(n, ep); err != nil {
			return err
		}
		u.push(func() { d.unplumb(n, ep) })
	} else {
		ep.Netns, ep.NetnsInode, ep.IfName = tgt.netns, tgt.ino, tgt.ifname
		if err := d.plumb(n, &ep); err != nil {
			return err
		}
		u.push(func() { d.unplumb(n, ep) })
		if n.Cluster {
			if ep.ResolvConf, err = d.writeResolvConf(ep.Netns, n); err != nil {
				return err
			}
			u.push(func() { removeResolvConf(ep.ResolvConf, n.Name) })
		}
	}
	d.setEndpoints(n, slices.Replace(slices.Clone(n.Endpoints), i, i+1, ep), u)
	return nil
}

// stage makes a handed-off endpoint's veth pair: the bridge end on br0,
// the container end (Peer) in the daemon's underlay namespace, where the
// runtime (which runs there) finds it.
func (d *Daemon) stage(n *network, ep epState) error {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return err
	}
	err = veth.Stage(veth.Spec{BridgeNetns: n.netns, Bridge: bridgeName, HostName: ep.Veth, Netns: d.cfg.Netns, IfName: ep.Peer, MAC: mac, MTU: n.MTU})
	if errors.Is(err, veth.ErrIfNameExists) {
		return conflict("interface %s already exists in %s; join again", ep.Peer, nsutil.Describe(d.cfg.Netns))
	}
	return err
}

// deleteEndpoint is DeleteEndpoint with d.mu held.
func (d *Daemon) deleteEndpoint(ctx context.Context, n *network, i int) (err error) {
	ep := n.Endpoints[i]
	var u undo
	defer u.onError(&err)
	if err := d.ipam.release(ctx, n, ep); err != nil {
		return err
	}
	crashpoint("detach:released")
	if n.Cluster && d.cluster != nil {
		u.push(func() {
			if err := d.cluster.st.Reclaim(undoCtx(), n.storeNetwork(), ep.record(n.Name, d.cluster.advertise)); err != nil {
				d.log.Warn("cannot take a failed detach's address back; detach again", zap.String("id", ep.ID), zap.Error(err))
			}
			if ep.joined() {
				d.cluster.publish(undoCtx(), n, ep)
			}
		})
	}
	d.setEndpoints(n, slices.Delete(slices.Clone(n.Endpoints), i, i+1), &u)
	last := n.Cluster && len(n.Endpoints) == 0 && !n.hasStatic()
	if last {
		delete(d.nets, n.Name)
		u.push(func() { d.nets[n.Name] = n })
	}
	if err := d.commit(); err != nil {
		return err
	}
	crashpoint("detach:committed")
	delete(n.epProbs, ep.ID)
	d.gone.released(n.Name, ep.ID)
	if ep.Veth != "" {
		if err := d.unplumb(n, ep); err != nil {
			d.log.Warn("endpoint detached but its veth could not be deleted", zap.String("veth", ep.Veth), zap.Error(err))
		}
	}
	removeResolvConf(ep.ResolvConf, n.Name)
	what := "endpoint detached"
	if !ep.Reserved.IsZero() {
		what = "reservation released"
	}
	d.log.Info(what, zap.String("network", n.Name), zap.String("netns", ep.Netns), zap.String("id", ep.ID), zap.Stringer("ip", ep.IP))
	if last {
		d.stop(n)
		if err := nsutil.Delete(n.netns); err != nil {
			d.log.Warn("cannot delete a network's namespace", zap.String("netns", n.netns), zap.Error(err))
		}
		d.log.Info("network's namespace removed with its last endpoint on this host", zap.String("network", n.Name), zap.String("netns", n.netns))
		return nil
	}
	d.syncNetwork(n)
	return nil
}

// sweepEvery is how often abandoned reservations are looked for.
const sweepEvery = 15 * time.Second

// sweepReservations releases, every sweepEvery until ctx ends,
// reservations older than the reservation TTL: their endpoint never came
// (see ReserveAddress). One that cannot be released now (the store is
// away) is tried again next time.
func (d *Daemon) sweepReservations(ctx context.Context) {
	ttl := d.cfg.ReservationTTL
	if ttl <= 0 {
		ttl = DefaultReservationTTL
	}
	every := min(sweepEvery, ttl/2)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		d.sweepOnce(ctx, ttl)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Daemon) sweepOnce(ctx context.Context, ttl time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for _, n := range d.sortedNets() {
		for _, ep := range slices.Clone(n.Endpoints) {
			if ep.Reserved.IsZero() || now.Sub(ep.Reserved) < ttl {
				continue
			}
			i := slices.IndexFunc(n.Endpoints, func(e epState) bool { return e.ID == ep.ID })
			if i < 0 {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := d.deleteEndpoint(rctx, n, i)
			cancel()
			if err != nil {
				d.log.Warn("cannot release an abandoned reservation now; trying again later", zap.String("network", n.Name),
					zap.String("id", ep.ID), zap.Stringer("ip", ep.IP), zap.Error(err))
				continue
			}
			d.log.Info("released a reservation no endpoint claimed", zap.String("network", n.Name), zap.String("id", ep.ID),
				zap.Stringer("ip", ep.IP), zap.Duration("age", now.Sub(ep.Reserved).Truncate(time.Second)))
		}
	}
}

// defaultName is the DNS name an endpoint plumbed into netns path gets
// without one: the namespace's name, for one made with `ip netns add`.
func defaultName(path string) string {
	if filepath.Dir(path) == nsutil.DefaultDir {
		return filepath.Base(path)
	}
	return ""
}

// Errors the operations return, for callers that test them with
// errors.Is; each is wrapped in a one-line message for the user.
var (
	ErrBadRequest  = errBadRequest
	ErrNotFound    = errNotFound
	ErrConflict    = errConflict
	ErrUnavailable = errUnavailable
)

// ValidEndpointName reports whether name can be an endpoint's DNS name or
// alias.
func ValidEndpointName(name string) bool { return dnsNameRE.MatchString(name) }
