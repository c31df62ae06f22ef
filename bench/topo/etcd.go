package topo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// Etcd clusters.
//
// Each member of a cluster made by Topo.Etcd is a host of its own on the
// Topo's LAN, so vxswitch hosts reach it over the underlay as they would
// a real store. Members take underlay addresses from the top of the
// range, 198.18.0.100, .101, ... (or 2001:2::64, ... with IPv6VTEPs),
// outside AddHost's sequence: hosts added with AddHost are still .1, .2,
// ... whether they come before or after the cluster, so a Topo holds at
// most 99 of them beside its etcd members.

// ErrNoEtcd is returned by Topo.Etcd when the etcd binary cannot be found.
var ErrNoEtcd = errors.New("etcd not found: install Debian's etcd-server (apt-get install etcd-server), or set EtcdOptions.Binary (BuildEtcd builds a current etcd)")

// ErrEtcdUnhealthy is returned when a member does not report itself
// healthy within EtcdStartTimeout.
var ErrEtcdUnhealthy = errors.New("etcd member not healthy")

// EtcdClientPort and EtcdPeerPort are where every member listens, on its
// underlay address.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// EtcdStartTimeout bounds the wait for a member to become healthy after
// it started: a guard against a hang, not a measurement (a cluster is
// normally healthy within a few seconds, longer on a loaded machine).
const EtcdStartTimeout = 90 * time.Second

// firstEtcdIdx is the host index of the first etcd member: its address
// is 198.18.0.100 (see Etcd).
const firstEtcdIdx = 100

// CurrentEtcdVersion is the newest etcd release, which BuildEtcd builds
// for the tests: the new end of what the project's etcd client (v3.6)
// must work with. Debian's etcd-server (3.4) is the old end.
const CurrentEtcdVersion = "v3.7.3"

// EtcdOptions configure an etcd cluster made by Topo.Etcd.
type EtcdOptions struct {
	// Members is the number of members; 0 means 1.
	Members int
	// Binary is the etcd executable; "" means "etcd" from PATH (Debian's
	// etcd-server). BuildEtcd builds a current release.
	Binary string
	// TLS serves clients over HTTPS and requires a client certificate
	// signed by the cluster's CA (--client-cert-auth); members talk to
	// each other over TLS too, with their server certificates. The paths
	// of the CA and of a client certificate are in Etcd.
	TLS bool
	// Name names the cluster's hosts and members (<Name>0, <Name>1, ...);
	// "" means "etcd". Two clusters in one Topo need different names.
	Name string
	// Args are extra etcd flags for every member.
	Args []string
}

// Etcd is an etcd cluster on a Topo's LAN, stopped by the Topo's Close.
type Etcd struct {
	// CACert, ClientCert and ClientKey are PEM files (keys 0600) for
	// clients of a TLS cluster, as vxswitch's --store-cacert,
	// --store-cert and --store-key take them; "" without TLS.
	CACert, ClientCert, ClientKey string

	topo    *Topo
	opts    EtcdOptions
	members []*EtcdMember
	tlsConf *tls.Config // client side; nil without TLS
}

// EtcdMember is one member of an Etcd cluster, running in a host
// namespace of its own.
type EtcdMember struct {
	Host      *Host
	Name      string // --name
	ClientURL string // http(s)://ADDR:2379
	PeerURL   string // http(s)://ADDR:2380
	DataDir   string // kept across Stop and Start; removed by the Topo's Close

	e    *Etcd
	args []string

	mu   sync.Mutex
	proc *Proc           // nil before the first start
	past strings.Builder // output of earlier runs
	runs int
}

// Etcd starts an etcd cluster of opts.Members members, each in a host
// namespace of its own on the LAN (see the addresses above), and waits
// until every member reports itself healthy. The Topo's underlay must be
// a LAN with IPv4 or global IPv6 addresses. What it made is removed by
// Close, also when Etcd fails.
func (t *Topo) Etcd(opts EtcdOptions) (*Etcd, error) {
	if opts.Members <= 0 {
		opts.Members = 1
	}
	if opts.Binary == "" {
		opts.Binary = "etcd"
	}
	if opts.Name == "" {
		opts.Name = "etcd"
	}
	if t.opts.Underlay != LAN {
		return nil, errors.New("etcd needs a LAN underlay (Options.Underlay = LAN)")
	}
	if t.opts.VTEPs == LinkLocalVTEPs {
		return nil, errors.New("etcd needs routable underlay addresses: use IPv4VTEPs or IPv6VTEPs")
	}
	if _, err := exec.LookPath(opts.Binary); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoEtcd, err)
	}
	e := &Etcd{topo: t, opts: opts}
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	for i := range opts.Members {
		name := opts.Name + strconv.Itoa(i)
		h, err := t.addHighHost(name)
		if err != nil {
			return nil, fmt.Errorf("etcd member %s: %w", name, err)
		}
		dir, err := t.runDir(h, "etcd")
		if err != nil {
			return nil, err
		}
		hostport := func(port int) string { return netip.AddrPortFrom(h.Addr, uint16(port)).String() }
		e.members = append(e.members, &EtcdMember{Host: h, Name: name, e: e,
			ClientURL: scheme + "://" + hostport(EtcdClientPort),
			PeerURL:   scheme + "://" + hostport(EtcdPeerPort),
			DataDir:   filepath.Join(dir, "data")})
	}
	if opts.TLS {
		if err := e.makeCerts(); err != nil {
			return nil, fmt.Errorf("etcd certificates: %w", err)
		}
	}
	var cluster []string
	for _, m := range e.members {
		cluster = append(cluster, m.Name+"="+m.PeerURL)
	}
	for _, m := range e.members {
		m.args = []string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(cluster, ","),
			"--initial-cluster-state", "new", // ignored once the data dir exists
			"--initial-cluster-token", t.prefix + "-" + opts.Name,
			"--logger", "zap",
		}
		if opts.TLS {
			dir := filepath.Dir(e.CACert)
			cert, key := filepath.Join(dir, m.Name+".crt"), filepath.Join(dir, m.Name+".key")
			m.args = append(m.args,
				"--cert-file", cert, "--key-file", key, "--trusted-ca-file", e.CACert, "--client-cert-auth",
				"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", e.CACert, "--peer-client-cert-auth")
		}
		m.args = append(m.args, opts.Args...)
	}
	t.onClose(e.close)
	if err := e.Start(); err != nil {
		return nil, err
	}
	return e, nil
}

// MustEtcd is Etcd for tests.
func (t *Topo) MustEtcd(opts EtcdOptions) *Etcd {
	e, err := t.Etcd(opts)
	t.fatal(err, "start etcd")
	return e
}

// RequireEtcd skips tb unless the etcd binary (Debian's etcd-server) is
// in PATH; under CI=true it fails instead, so CI can never pass by
// skipping.
func RequireEtcd(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("etcd"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("etcd is not installed; CI must install it (apt-get install etcd-server)")
	}
	tb.Skip("etcd is not installed (Debian: apt-get install etcd-server); under CI=true this is a failure")
}

// addHighHost adds a host on the LAN with the first free address from
// firstEtcdIdx up (a LAN port p<idx> that does not exist yet). It is not
// in t.hosts, so AddHost's sequence does not move.
func (t *Topo) addHighHost(name string) (*Host, error) {
	idx := firstEtcdIdx
	if t.lan != nil {
		lh, err := t.lan.Handle()
		if err != nil {
			return nil, err
		}
		for ; idx < 255; idx++ {
			if _, err := lh.LinkByName("p" + strconv.Itoa(idx)); err != nil {
				break
			}
		}
		lh.Close()
		if idx == 255 {
			return nil, errors.New("no underlay address left above 198.18.0.100")
		}
	}
	if _, err := os.Stat(filepath.Join(nsutil.DefaultDir, t.prefix+"-"+name)); err == nil {
		return nil, fmt.Errorf("this Topo already has a host %s: give the second cluster another EtcdOptions.Name", name)
	}
	ns, err := t.newNSv6(name, t.opts.IPv6 || t.opts.VTEPs != IPv4VTEPs)
	if err != nil {
		return nil, err
	}
	h := &Host{NS: *ns, Addr: t.vtepAddr(idx), idx: idx}
	if err := t.joinLAN(h); err != nil {
		return nil, fmt.Errorf("host %s underlay: %w", name, err)
	}
	return h, nil
}

// Len is the number of members.
func (e *Etcd) Len() int { return len(e.members) }

// Member is member i, from 0.
func (e *Etcd) Member(i int) *EtcdMember { return e.members[i] }

// Endpoints are the members' client URLs (http://198.18.0.100:2379, ...;
// https with TLS).
func (e *Etcd) Endpoints() []string {
	var eps []string
	for _, m := range e.members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// StoreURL is the cluster as vxswitch's daemon flag takes it:
// etcd://198.18.0.100:2379,198.18.0.101:2379 (also with TLS, whose files
// are given apart: CACert, ClientCert, ClientKey).
func (e *Etcd) StoreURL() string {
	var hp []string
	for _, m := range e.members {
		hp = append(hp, netip.AddrPortFrom(m.Host.Addr, EtcdClientPort).String())
	}
	return "etcd://" + strings.Join(hp, ",")
}

// ClientTLS is a TLS configuration that trusts the cluster's CA and
// presents the client certificate; nil without TLS. Each call returns a
// new copy.
func (e *Etcd) ClientTLS() *tls.Config {
	if e.tlsConf == nil {
		return nil
	}
	return e.tlsConf.Clone()
}

// HTTPClient is an HTTP client that connects from inside ns (a host of
// the Topo, say), with the client certificate of a TLS cluster. It keeps
// no idle connections. etcd serves its gRPC gateway over HTTP: POST
// /v3/kv/put {"key": base64, "value": base64}, /v3/kv/range {"key": ...}.
func (e *Etcd) HTTPClient(ns *NS) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, network, addr string) (net.Conn, error) { return ns.Dial(ctx, network, addr) },
		TLSClientConfig:   e.ClientTLS(),
		DisableKeepAlives: true,
	}}
}

// Start starts every member that is not running and waits until every
// member is healthy; use it to bring back a cluster that lost its
// quorum (EtcdMember.Start waits for a quorum that may need the others).
func (e *Etcd) Start() error {
	for _, m := range e.members {
		if err := m.launch(); err != nil {
			return err
		}
	}
	for _, m := range e.members {
		if err := m.waitHealthy(); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops every member, one after the other (see EtcdMember.Stop),
// as when the store goes away; their data stays for Start. One at a
// time, a leader always has a live peer to hand its leadership to, and
// the last member finds none and does not wait.
func (e *Etcd) Stop() {
	for _, m := range e.members {
		m.Stop()
	}
}

// close kills the members (their data goes with the Topo, so they need
// no graceful stop) and, when the test failed, prints what they said. It
// is registered with the Topo's Close before any member starts and stops
// every run of every member (their processes have no cleanup of their
// own), so it runs before the hosts' namespaces go and after what was
// made later (daemons that used the store).
func (e *Etcd) close() error {
	for _, m := range e.members {
		m.Kill()
	}
	if tb := e.topo.tb; tb != nil && tb.Failed() {
		for _, m := range e.members {
			tb.Logf("etcd member %s (%s) said:\n%s", m.Name, m.ClientURL, m.Output())
		}
	}
	return nil
}

// Start starts the member (again, after Stop or Kill: same data dir, so
// it rejoins with its data) and waits until it reports itself healthy,
// which needs a quorum of the cluster running (see Etcd.Start).
func (m *EtcdMember) Start() error {
	if err := m.launch(); err != nil {
		return err
	}
	return m.waitHealthy()
}

// launch starts the member's process unless it is running.
func (m *EtcdMember) launch() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runningLocked() {
		return nil
	}
	m.retireLocked()
	p, err := m.Host.startEnv(etcdEnv(), m.e.opts.Binary, m.args...)
	if err != nil {
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	}
	m.proc = p
	m.runs++
	return nil
}

// etcdEnv is the test's environment without ETCD_* variables (etcd reads
// its flags from them too), with ETCD_UNSUPPORTED_ARCH where etcd 3.4
// wants it: on every architecture but amd64.
func etcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	if runtime.GOARCH != "amd64" {
		env = append(env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	return env
}

// retireLocked moves the output of a finished run into m.past.
func (m *EtcdMember) retireLocked() {
	if m.proc == nil {
		return
	}
	fmt.Fprintf(&m.past, "--- run %d (%v) ---\n%s", m.runs, m.proc.err, m.proc.Output())
	m.proc = nil
}

// waitHealthy polls the member's /health from inside its namespace until
// it answers {"health":"true"}, the member exits, or EtcdStartTimeout
// passes.
func (m *EtcdMember) waitHealthy() error {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil {
		return fmt.Errorf("etcd member %s is not running", m.Name)
	}
	client := m.e.HTTPClient(&m.Host.NS)
	deadline := time.Now().Add(EtcdStartTimeout)
	var last error
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("etcd member %s exited at start: %v; output:\n%s", m.Name, p.err, tail(p.Output(), 40))
		default:
		}
		if last = m.health(client); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s after %v: %v; output:\n%s", ErrEtcdUnhealthy, m.Name, EtcdStartTimeout, last, tail(p.Output(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// health asks the member's /health once.
func (m *EtcdMember) health(client *http.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return err
	}
	var h struct {
		Health string `json:"health"`
	}
	if err := json.Unmarshal(body, &h); err != nil || resp.StatusCode != http.StatusOK || h.Health != "true" {
		return fmt.Errorf("GET /health: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Stop stops the member (SIGTERM; SIGKILL if it has not exited after
// five seconds) and waits for it. Its data stays for Start. A leader
// hands its leadership to a peer first, which takes up to 7 s if that
// peer stops at the same moment: stop members one at a time.
func (m *EtcdMember) Stop() {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

// Kill kills the member (SIGKILL, by PID), as a crash would, and waits
// for it to be gone.
func (m *EtcdMember) Kill() {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.Done():
	default:
		p.Cmd.Process.Signal(syscall.SIGKILL)
		<-p.Done()
	}
}

// Running reports whether the member's process is running.
func (m *EtcdMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runningLocked()
}

func (m *EtcdMember) runningLocked() bool {
	if m.proc == nil {
		return false
	}
	select {
	case <-m.proc.Done():
		return false
	default:
		return true
	}
}

// PID is the process ID of the running member, 0 when it is not running.
func (m *EtcdMember) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.runningLocked() {
		return 0
	}
	return m.proc.PID()
}

// Output is everything the member has written to stdout and stderr, in
// every run so far.
func (m *EtcdMember) Output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.past.String()
	if m.proc != nil {
		out += fmt.Sprintf("--- run %d ---\n%s", m.runs, m.proc.Output())
	}
	return out
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// startEnv is Start with the command's environment set to env, and
// without a cleanup of its own: the caller stops the process.
func (n *NS) startEnv(env []string, name string, args ...string) (*Proc, error) {
	cmd := n.Command(context.Background(), name, args...)
	cmd.Env = env
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := startOnSpawner(cmd); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, n.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// makeCerts writes a CA, a certificate per member (server and client
// use, for clients and peers, with the member's address as IP SAN) and a
// client certificate into the cluster's directory under RunBase, and
// loads the client side into e.tlsConf. The CA's key is never written.
func (e *Etcd) makeCerts() error {
	t := e.topo
	dir := filepath.Join(RunBase, t.prefix, t.prefix+"-"+e.opts.Name+"-pki") // removed with RunBase/<prefix> (runDir registered it)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	newKey := func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	template := func(cn string) (*x509.Certificate, error) {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{t.prefix}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}, nil
	}

	caKey, err := newKey()
	if err != nil {
		return err
	}
	caTmpl, err := template(e.opts.Name + " CA")
	if err != nil {
		return err
	}
	caTmpl.IsCA, caTmpl.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	e.CACert = filepath.Join(dir, "ca.crt")
	if err := writePEM(e.CACert, 0o644, "CERTIFICATE", caDER); err != nil {
		return err
	}

	issue := func(base string, tmpl *x509.Certificate) (certFile, keyFile string, err error) {
		key, err := newKey()
		if err != nil {
			return "", "", err
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return "", "", err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return "", "", err
		}
		certFile, keyFile = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
		if err := writePEM(certFile, 0o644, "CERTIFICATE", der); err != nil {
			return "", "", err
		}
		return certFile, keyFile, writePEM(keyFile, 0o600, "PRIVATE KEY", keyDER)
	}
	for _, m := range e.members {
		tmpl, err := template(m.Name)
		if err != nil {
			return err
		}
		tmpl.IPAddresses = []net.IP{m.Host.Addr.AsSlice()}
		// Server use for clients and peers; client use for peers and
		// for the gRPC gateway, which dials its own member.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		if _, _, err := issue(m.Name, tmpl); err != nil {
			return err
		}
	}
	tmpl, err := template("vxswitch-test-client")
	if err != nil {
		return err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if e.ClientCert, e.ClientKey, err = issue("client", tmpl); err != nil {
		return err
	}

	pair, err := tls.LoadX509KeyPair(e.ClientCert, e.ClientKey)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	e.tlsConf = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	return nil
}

// writePEM writes one PEM block to a new file with mode perm.
func writePEM(path string, perm os.FileMode, blockType string, der []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: blockType, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BuildEtcd builds the etcd server of release version (v3.6.16, say:
// see CurrentEtcdVersion) into dir and returns the binary's path, for
// EtcdOptions.Binary. dir is a cache: a binary built there before is
// used as it is. The build runs in a throwaway module of its own under
// dir (`go install pkg@version` refuses etcd's server module, whose
// go.mod has replace directives), so the project's go.mod never names
// etcd's server; it needs the Go module proxy, and takes about a minute
// on two cores with a cold build cache, seconds after that.
func BuildEtcd(dir, version string) (string, error) {
	if !strings.HasPrefix(version, "v3.") || strings.ContainsAny(version, "/ @") {
		return "", fmt.Errorf("build etcd %q: want a release such as %s", version, CurrentEtcdVersion)
	}
	out := filepath.Join(dir, "etcd-"+version)
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// One build at a time (test binaries of several packages run at
	// once): the others wait, then find the binary.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return out, nil
	}
	mod, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(mod)
	tmp := filepath.Join(mod, "etcd")
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	for _, args := range [][]string{
		{"mod", "init", "etcdbuild"},
		{"get", "go.etcd.io/etcd/server/v3@" + version},
		{"build", "-trimpath", "-o", tmp, "go.etcd.io/etcd/server/v3"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = mod, env
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build etcd %s: go %s: %w: %s", version, strings.Join(args, " "), err, tail(string(b), 20))
		}
	}
	// Renamed into place whole, so a concurrent or interrupted build
	// never leaves a partial binary under the cached name.
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}
