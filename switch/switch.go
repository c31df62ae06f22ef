package vswitch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
	"github.com/vxswitch/vxswitch/tap"
)

// DefaultPort is the IANA VXLAN port (RFC 7348), also the Linux default
// when `dstport 4789` is given.
const DefaultPort = 4789

// Errors callers test with errors.Is.
var (
	ErrVNIInUse   = errors.New("VNI already in use")
	ErrNoNetwork  = errors.New("no such network")
	ErrBadVNI     = errors.New("VNI out of range (1 to 16777215)")
	ErrClosed     = errors.New("switch closed")
	errNilTAP     = errors.New("network needs a TAP device")
	errNilUnderly = errors.New("switch needs an underlay")
)

// Config configures a Switch.
type Config struct {
	// Underlay carries the VXLAN datagrams; the Switch owns it and closes
	// it on Close.
	Underlay Underlay
	// Port is the UDP destination port of VXLAN datagrams sent to peers;
	// 0 means DefaultPort.
	Port uint16
	// Logger; nil means no logging.
	Logger *zap.Logger
	// Clock drives MAC aging; nil means the wall clock.
	Clock fib.Clock
	// ExpireInterval is how often learned entries are swept; 0 means one
	// second (the resolution `fdb show` ages are printed with).
	ExpireInterval time.Duration
	// BusyPoll, when positive, keeps each loop polling its device without
	// sleeping for this long after it last found work (like SO_BUSY_POLL):
	// a frame that arrives in that window is handled without waking a
	// thread, which is most of the latency a userspace hop adds. It costs
	// CPU while traffic is sparse.
	BusyPoll time.Duration
	// PeersOnly accepts datagrams for a network only from the VTEPs that
	// network knows: the peers on its flood list and the VTEPs of its
	// static and store entries (fib.Table.KnownVTEP). Others are dropped
	// as unknown_vtep before their source MAC is learned. The check is
	// per network, so a VTEP known in one network cannot send into
	// another.
	PeersOnly bool
	// MaxInnerFrame is the longest inner Ethernet frame (VLAN tags
	// included) the underlay carries in one datagram: its MTU less the
	// outer IP, UDP and VXLAN headers (36 bytes over IPv4, 56 over IPv6).
	// 0 means unknown: frames are sent whatever their size. See
	// SetMaxInnerFrame.
	MaxInnerFrame int
}

// Switch is a VXLAN switch serving many networks over one underlay.
type Switch struct {
	log   *zap.Logger
	ul    Underlay
	port  uint16
	clock fib.Clock
	sweep time.Duration
	poll  time.Duration
	// peersOnly: see Config.PeersOnly.
	peersOnly bool
	// maxInner: see Config.MaxInnerFrame; the TX loops load it once a
	// batch.
	maxInner atomic.Int64
	gsoUL    gsoReporter // nil: the underlay always sends GSO messages as such
	global   counters    // drops counted before a datagram reaches a network

	mu     sync.Mutex // guards writes to nets and the closed flag
	nets   atomic.Pointer[map[uint32]*Network]
	closed bool

	wg sync.WaitGroup // the RX loop, the sweeper and every TX loop
}

// New returns a Switch; Run starts its loops.
func New(cfg Config) (*Switch, error) {
	if cfg.Underlay == nil {
		return nil, errNilUnderly
	}
	s := &Switch{
		log:   cfg.Logger,
		ul:    cfg.Underlay,
		port:  cfg.Port,
		clock: cfg.Clock,
		sweep: cfg.ExpireInterval,
		poll:  cfg.BusyPoll,

		peersOnly: cfg.PeersOnly,
	}
	s.gsoUL, _ = cfg.Underlay.(gsoReporter)
	s.SetMaxInnerFrame(cfg.MaxInnerFrame)
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.port == 0 {
		s.port = DefaultPort
	}
	if s.sweep <= 0 {
		s.sweep = time.Second
	}
	empty := map[uint32]*Network{}
	s.nets.Store(&empty)
	return s, nil
}

// SetMaxInnerFrame tells the switch the longest inner frame the underlay
// carries now (see Config.MaxInnerFrame), when the underlay's MTU
// changes. From the next batch on, each TX loop answers a frame from its
// TAP that is longer, as a router answers a packet too big for its next
// hop: with an ICMP "fragmentation needed" (IPv4 with Don't Fragment
// set) or ICMPv6 "packet too big" written into the TAP (Inject) from the
// frame's destination, rate-limited per network, so that the sender's
// TCP lowers its path MTU instead of stalling; the frame is dropped as
// too_big. A TCP superframe is cut into segments that fit instead (and
// answered too, so the sender learns); a UDP superframe cannot be cut.
// The check is one comparison per frame, without system calls.
func (s *Switch) SetMaxInnerFrame(n int) {
	s.maxInner.Store(int64(max(n, 0)))
}

// gso reports whether the underlay sends UDP_SEGMENT messages as such.
// Small frames are grouped into such messages only then: split again
// one by one, they would only cost the underlay more system calls.
func (s *Switch) gso() bool { return s.gsoUL == nil || s.gsoUL.GSOEnabled() }

// Run runs the receive loop and the MAC aging sweeper until ctx is done or
// Close is called. It returns nil after Close or ctx cancellation.
func (s *Switch) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The sweeper and the receive loop below; Close waits for both.
	s.wg.Add(2)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.sweeper(ctx)
	}()
	// Cancelling ctx closes the switch, which unblocks the receive loop.
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	err := newRxLoop(s).run()
	s.wg.Done()
	cancel()
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

func (s *Switch) sweeper(ctx context.Context) {
	t := time.NewTicker(s.sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, n := range *s.nets.Load() {
				if k := n.fib.Expire(); k > 0 && s.log.Core().Enabled(zap.DebugLevel) {
					s.log.Debug("aged out learned entries", zap.Uint32("vni", n.vni), zap.Int("count", k))
				}
				n.sweepPeers(n.fib.Now())
			}
		}
	}
}

// NetworkConfig describes a network to add to a Switch.
type NetworkConfig struct {
	// VNI, 1 to 16777215.
	VNI uint32
	// TAP is the network's uplink to its bridge. The Switch owns it from
	// AddNetwork on and closes it when the network is removed.
	TAP tap.Device
	// Gateway, when valid, is the IPv4 address every host's bridge has in
	// this network; ARP for it and from it never crosses the overlay.
	Gateway netip.Addr
	// Aging and MaxLearned configure the MAC table (zero values: the fib
	// defaults, 300 s and 65536).
	Aging      time.Duration
	MaxLearned int
	// OnTAPFailure, if set, is called when the network's TAP fails: a
	// read returned an error other than the device being closed (it was
	// deleted behind the switch's back, say). From then on the network
	// sends nothing and frames for it are dropped as tap_error, until
	// ReplaceTAP gives it a new TAP; its FIB and counters are kept. It
	// is called once per failure, from the failed TX loop's goroutine,
	// after that loop has stopped; it must not block (start the repair
	// on a goroutine of its own).
	OnTAPFailure func(n *Network, err error)
}

// Network is one VNI served by a Switch.
type Network struct {
	vni uint32
	tap tap.Device
	// maxFrame is the longest frame the TAP takes: its MTU plus the
	// Ethernet header.
	maxFrame int
	// off and poll are the TAP's optional abilities, found once here
	// rather than by a type assertion per frame: off is set when the TAP
	// exchanges virtio-net headers (offloads), poll when it can be read
	// without blocking.
	off  tap.Offloader
	poll tap.Poller
	// uso: the TAP also takes (and hands over) UDP superframes.
	uso bool
	// noGRO (TCP) and noUSO (UDP) are set when the kernel refused a
	// coalesced write of that kind to the TAP.
	noUSO atomic.Bool
	noGRO atomic.Bool
	// failed holds the error that stopped the TX loop, if one did.
	failed atomic.Pointer[error]
	// onFail is NetworkConfig.OnTAPFailure.
	onFail func(*Network, error)
	// txDone is closed when the current TX loop has returned; removed is
	// set when the network left the switch. Both guarded by ctlMu, as
	// are changes of the TAP (ReplaceTAP).
	txDone  chan struct{}
	removed bool
	// rxGen and rxNow cache the clock for the RX loop's current batch,
	// rxTouched marks the network as written to in batch rxTouched;
	// only the RX loop touches them.
	rxGen, rxTouched uint64
	rxNow            int64
	// txMu is held while frames are read from the TAP and sent, by the
	// TX loop or by the RX loop draining the TAP (see rxLoop.drainTX).
	txMu sync.Mutex
	// tapMu serialises writes to the TAP, which takes one writer at a
	// time: the RX loop holds it from its first write to the network in a
	// batch to the end of the batch's writes (once a batch, not once a
	// frame), Inject for its one write. Lock order: txMu before tapMu;
	// the RX loop releases every tapMu before it takes a txMu.
	tapMu  sync.Mutex
	inject injectScratch // guarded by tapMu
	// filters is the chain every frame passes (see filter.go), nil when
	// it is empty; replaced whole under ctlMu, read without a lock.
	filters atomic.Pointer[filterChain]
	gw      *gatewayFilter // nil without a gateway address
	proxy   neighborProxy
	// ctlMu serialises the control plane's changes: the filter chain,
	// and the TAP (the fields above that describe it, tap to uso and
	// maxFrame, are written under ctlMu, txMu and tapMu, after the TX
	// loop stopped; so the RX loop and Inject, which read them under
	// tapMu, the RX loop's drain under txMu, and the TX loop, which
	// starts after, see them whole).
	ctlMu sync.Mutex
	fib   *fib.Table
	s     *Switch
	c     counters
	log   *zap.Logger

	// peers are the per-VTEP counters (peers.go): read lock-free,
	// extended copy-on-write under peerMu; otherPeer counts the VTEPs
	// beyond the bound on unknown ones.
	peers     atomic.Pointer[peerSet]
	peerMu    sync.Mutex
	otherPeer peerCounters
	// tracer, when set, gets a copy of every frame forwarded (trace.go).
	tracer atomic.Pointer[Tracer]

	lastMoveLog atomic.Int64 // unix nanos of the last "MAC moved" log line
	movesMuted  atomic.Uint64

	// The token bucket of the ICMP "too big" answers (icmpAllow); guarded
	// by txMu, like everything the TX path does.
	icmpTokens int
	icmpLast   int64
}

const (
	// icmpBurst and icmpEvery bound the "too big" answers of a network:
	// a burst of 50, then one a millisecond, as Linux's default
	// icmp_msgs_per_sec (1000) and icmp_msgs_burst (50). A sender that
	// ignores them costs at most that much work here.
	icmpBurst = 50
	icmpEvery = int64(time.Millisecond)
)

// icmpAllow reports whether the network may send another "too big"
// answer at time now (unix nanoseconds), and takes a token if so. With
// txMu held.
func (n *Network) icmpAllow(now int64) bool {
	if n.icmpLast == 0 {
		n.icmpTokens, n.icmpLast = icmpBurst, now
	}
	if d := now - n.icmpLast; d >= icmpEvery {
		n.icmpTokens = min(icmpBurst, n.icmpTokens+int(d/icmpEvery))
		n.icmpLast += d / icmpEvery * icmpEvery
	}
	if n.icmpTokens == 0 {
		return false
	}
	n.icmpTokens--
	return true
}

// AddNetwork adds a network and starts its TX loop. It fails with
// ErrVNIInUse if the VNI is served already; then the TAP is not taken.
func (s *Switch) AddNetwork(cfg NetworkConfig) (*Network, error) {
	if cfg.VNI == 0 || cfg.VNI > encap.MaxVNI {
		return nil, fmt.Errorf("vni %d: %w", cfg.VNI, ErrBadVNI)
	}
	if cfg.TAP == nil {
		return nil, errNilTAP
	}
	table, err := fib.New(fib.Config{Aging: cfg.Aging, MaxLearned: cfg.MaxLearned, Clock: s.clock})
	if err != nil {
		return nil, err
	}
	n := &Network{vni: cfg.VNI, fib: table, s: s, onFail: cfg.OnTAPFailure,
		log: s.log.With(zap.Uint32("vni", cfg.VNI), zap.String("tap", cfg.TAP.Name()))}
	n.setTAP(cfg.TAP)
	n.peers.Store(&peerSet{m: map[netip.Addr]*peerCounters{}})
	if cfg.Gateway.IsValid() {
		if !cfg.Gateway.Is4() {
			return nil, fmt.Errorf("gateway %s: only IPv4 gateways are filtered", cfg.Gateway)
		}
		n.gw = &gatewayFilter{gw: cfg.Gateway.As4()}
	}
	n.proxy.n = n
	n.setFilters()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	old := *s.nets.Load()
	if _, ok := old[cfg.VNI]; ok {
		return nil, fmt.Errorf("vni %d: %w", cfg.VNI, ErrVNIInUse)
	}
	next := maps.Clone(old)
	next[cfg.VNI] = n
	s.nets.Store(&next)
	n.startTXLocked() // nobody else has n yet: no ctlMu needed
	return n, nil
}

// setTAP makes dev the network's TAP. Called before the network's loops
// start, or with ctlMu, txMu and tapMu held and the TX loop stopped.
func (n *Network) setTAP(dev tap.Device) {
	n.tap, n.off, n.poll, n.uso = dev, nil, nil, false
	n.maxFrame = dev.MTU() + encap.EthernetHeaderLen
	if o, ok := dev.(tap.Offloader); ok && o.VNetHdr() {
		n.off = o
	}
	n.poll, _ = dev.(tap.Poller)
	if u, ok := dev.(tap.UDPOffloader); ok && n.off != nil {
		n.uso = u.USO()
	}
	n.noGRO.Store(false)
	n.noUSO.Store(false)
}

// startTXLocked starts a TX loop for the network's TAP; with s.mu held
// (AddNetwork) or ctlMu (ReplaceTAP), after checking the switch is open.
// When the loop stops on a failure it records it and calls onFail.
func (n *Network) startTXLocked() {
	s := n.s
	s.wg.Add(1)
	done := make(chan struct{})
	n.txDone = done
	tx := newTxLoop(n)
	go func() {
		defer s.wg.Done()
		err := tx.run()
		if err != nil {
			n.log.Error("TAP failed; the network sends nothing until its TAP is replaced", zap.Error(err))
			n.failed.Store(&err)
		}
		close(done)
		if err != nil && n.onFail != nil {
			n.onFail(n, err)
		}
	}()
}

// ReplaceTAP gives a running network a new TAP, keeping its MAC table,
// peers, filters and counters: the way back after its TAP failed (see
// NetworkConfig.OnTAPFailure). It closes the current TAP, waits for the
// TX loop to stop, calls open for the new one (which must be made after
// the old is gone: they share a name) and starts a TX loop on it. If
// open fails, the network is left without a working TAP (frames for it
// are dropped as tap_error) and ReplaceTAP may be called again. It fails
// with ErrNoNetwork after the network was removed and ErrClosed after
// the switch was closed; then the TAP open made is closed.
func (n *Network) ReplaceTAP(open func() (tap.Device, error)) error {
	n.ctlMu.Lock()
	defer n.ctlMu.Unlock()
	if n.removed {
		return fmt.Errorf("vni %d: %w", n.vni, ErrNoNetwork)
	}
	n.tap.Close() // it may be closed already
	<-n.txDone
	dev, err := open()
	if err != nil {
		return err
	}
	n.txMu.Lock()
	n.tapMu.Lock()
	n.setTAP(dev)
	n.tapMu.Unlock()
	n.txMu.Unlock()
	n.failed.Store(nil)
	n.s.mu.Lock()
	defer n.s.mu.Unlock()
	if n.s.closed {
		dev.Close()
		return ErrClosed
	}
	n.startTXLocked()
	n.log.Info("TAP replaced; the network sends again")
	return nil
}

// closeTAP closes the network's TAP for good: it is leaving the switch.
func (n *Network) closeTAP() error {
	n.ctlMu.Lock()
	defer n.ctlMu.Unlock()
	n.removed = true
	if t := n.tracer.Swap(nil); t != nil {
		t.stop()
	}
	return n.tap.Close()
}

// RemoveNetwork stops serving vni and closes its TAP.
func (s *Switch) RemoveNetwork(vni uint32) error {
	s.mu.Lock()
	old := *s.nets.Load()
	n, ok := old[vni]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("vni %d: %w", vni, ErrNoNetwork)
	}
	next := maps.Clone(old)
	delete(next, vni)
	s.nets.Store(&next)
	s.mu.Unlock()
	return n.closeTAP()
}

// Stats returns the switch-level counters: datagrams received, lost in
// the kernel, and dropped before they could be matched to a network.
func (s *Switch) Stats() SwitchCounters {
	c := SwitchCounters{RXDatagrams: s.global.rxDgrams.Load()}
	c.Drops, _ = s.global.dropMaps()
	if u, ok := s.ul.(underlayStatser); ok {
		us := u.Stats()
		c.RXOverflow, c.TXGSOSplit = us.RXOverflow, us.TXGSOSplit
	}
	return c
}

// Close stops every loop, closes the underlay and every TAP, and waits for
// the loops to return.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	nets := *s.nets.Load()
	empty := map[uint32]*Network{}
	s.nets.Store(&empty)
	s.mu.Unlock()

	err := s.ul.Close()
	for _, n := range nets {
		if cerr := n.closeTAP(); cerr != nil && err == nil {
			err = cerr
		}
	}
	s.wg.Wait()
	return err
}

// VNI is the network's VXLAN network identifier.
func (n *Network) VNI() uint32 { return n.vni }

// FIB is the network's MAC table; the control plane installs static and
// control entries and peers through it.
func (n *Network) FIB() *fib.Table { return n.fib }

// Err returns the error that stopped the network's TX loop (the TAP was
// deleted behind the daemon's back, say), or nil while it runs; ReplaceTAP
// clears it.
func (n *Network) Err() error {
	if p := n.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Offload reports whether the network's TAP exchanges TSO superframes
// (virtio-net headers) rather than single frames.
func (n *Network) Offload() bool {
	n.ctlMu.Lock()
	defer n.ctlMu.Unlock()
	return n.off != nil
}

// Stats returns the network's counters.
func (n *Network) Stats() Counters { return n.c.snapshot() }

// noteMove logs, at most once a second per network, that learned MACs moved
// to another VTEP (a VM migration, a container restart elsewhere, or a
// misconfiguration); the count is always in the FIB stats.
func (n *Network) noteMove(mac fib.MAC, vtep netip.Addr, now int64) {
	last := n.lastMoveLog.Load()
	if now-last < int64(time.Second) || !n.lastMoveLog.CompareAndSwap(last, now) {
		n.movesMuted.Add(1)
		return
	}
	n.log.Info("MAC moved to another VTEP", zap.Stringer("mac", mac), zap.Stringer("vtep", vtep),
		zap.Uint64("suppressed", n.movesMuted.Swap(0)))
}
