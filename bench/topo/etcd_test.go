package topo_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxswitch/vxswitch/bench/topo"
	"github.com/vxswitch/vxswitch/internal/nsutil"
)

// A one-member cluster: addresses outside AddHost's sequence, the store
// URL, a put and a get from a vxswitch host on the LAN, and the data
// kept across Stop and Start and across Kill and Start.
func TestEtcdOneMember(t *testing.T) {
	topo.RequireEtcd(t)
	tp := topo.New(t)
	e := tp.MustEtcd(topo.EtcdOptions{})
	h1 := tp.MustHost("h1") // after the cluster: still the first host's address
	if h1.Addr.String() != "198.18.0.1" {
		t.Errorf("h1 after an etcd member has %s, want 198.18.0.1", h1.Addr)
	}
	m := e.Member(0)
	if e.Len() != 1 || m.Host.Addr.String() != "198.18.0.100" || m.Name != "etcd0" {
		t.Fatalf("member %s at %s (of %d), want etcd0 at 198.18.0.100", m.Name, m.Host.Addr, e.Len())
	}
	if got := e.StoreURL(); got != "etcd://198.18.0.100:2379" {
		t.Errorf("StoreURL = %q", got)
	}
	if got := e.Endpoints(); len(got) != 1 || got[0] != "http://198.18.0.100:2379" {
		t.Errorf("Endpoints = %q", got)
	}
	if e.CACert != "" || e.ClientTLS() != nil {
		t.Errorf("TLS material without TLS: %q, %v", e.CACert, e.ClientTLS())
	}

	c := e.HTTPClient(&h1.NS)
	mustPut(t, c, m.ClientURL, "/vxswitch/hosts/h1", "198.18.0.1")
	if v := mustGet(t, c, m.ClientURL, "/vxswitch/hosts/h1"); v != "198.18.0.1" {
		t.Fatalf("get = %q, want 198.18.0.1", v)
	}

	m.Stop()
	if m.Running() || m.PID() != 0 {
		t.Fatal("member running after Stop")
	}
	if err := put(c, m.ClientURL, "k", "v"); err == nil {
		t.Fatal("put to a stopped member succeeded")
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, c, m.ClientURL, "/vxswitch/hosts/h1"); v != "198.18.0.1" {
		t.Fatalf("after Stop and Start: get = %q, want 198.18.0.1", v)
	}
	mustPut(t, c, m.ClientURL, "/vxswitch/hosts/h1", "198.18.0.11")
	m.Kill()
	if m.Running() {
		t.Fatal("member running after Kill")
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, c, m.ClientURL, "/vxswitch/hosts/h1"); v != "198.18.0.11" {
		t.Fatalf("after Kill and Start: get = %q, want 198.18.0.11", v)
	}
	if out := m.Output(); !strings.Contains(out, "--- run 2") || !strings.Contains(out, "--- run 3") {
		t.Errorf("Output does not keep every run:\n%s", out)
	}

	// A second cluster takes the next address, a second of the same name
	// is refused.
	if _, err := tp.Etcd(topo.EtcdOptions{}); err == nil || !strings.Contains(err.Error(), "EtcdOptions.Name") {
		t.Errorf("a second cluster named etcd: %v, want a refusal naming EtcdOptions.Name", err)
	}
	e2 := tp.MustEtcd(topo.EtcdOptions{Name: "other"})
	if got := e2.StoreURL(); got != "etcd://198.18.0.101:2379" {
		t.Errorf("second cluster's StoreURL = %q", got)
	}
	if v, err := get(e2.HTTPClient(&h1.NS), e2.Member(0).ClientURL, "/vxswitch/hosts/h1"); err != nil || v != "" {
		t.Errorf("second cluster shares the first's data: %q, %v", v, err)
	}
}

// A three-member cluster: every member serves what one was given; with
// its leader killed (no leadership handed over, as on a crash) the other
// two elect another and stay writable; stopped, a member leaves two that
// stay writable too; each comes back with everything written while it
// was away.
func TestEtcdThreeMembers(t *testing.T) {
	topo.RequireEtcd(t)
	tp := topo.New(t)
	h1 := tp.MustHost("h1")
	e := tp.MustEtcd(topo.EtcdOptions{Members: 3})
	h2 := tp.MustHost("h2")
	if h1.Addr.String() != "198.18.0.1" || h2.Addr.String() != "198.18.0.2" {
		t.Errorf("hosts around the cluster: %s, %s; want 198.18.0.1 and .2", h1.Addr, h2.Addr)
	}
	want := "etcd://198.18.0.100:2379,198.18.0.101:2379,198.18.0.102:2379"
	if got := e.StoreURL(); got != want {
		t.Errorf("StoreURL = %q, want %q", got, want)
	}
	c := e.HTTPClient(&h1.NS)
	mustPut(t, c, e.Member(0).ClientURL, "/k", "one")
	for i := range e.Len() {
		if v := mustGet(t, e.HTTPClient(&h2.NS), e.Member(i).ClientURL, "/k"); v != "one" {
			t.Errorf("member %d: get = %q, want one", i, v)
		}
	}

	lead := leader(t, c, e)
	e.Member(lead).Kill()
	other := e.Member((lead + 1) % 3).ClientURL
	waitUntil(t, "a put with the leader killed", func() error { return putWithin(c, other, "/k", "two", time.Second) })
	if v := mustGet(t, c, e.Member((lead+2)%3).ClientURL, "/k"); v != "two" {
		t.Errorf("the third member: get = %q, want two", v)
	}
	if err := e.Member(lead).Start(); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, c, e.Member(lead).ClientURL, "/k"); v != "two" {
		t.Errorf("the old leader after Start: get = %q, want two", v)
	}

	m := e.Member((lead + 1) % 3)
	m.Stop()
	if m.Running() {
		t.Fatal("member running after Stop")
	}
	rest := e.Member((lead + 2) % 3).ClientURL
	waitUntil(t, "a put with a member stopped", func() error { return putWithin(c, rest, "/k", "three", time.Second) })
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, c, m.ClientURL, "/k"); v != "three" {
		t.Errorf("the stopped member after Start: get = %q, want three", v)
	}
}

// TLS: clients need the client certificate (and peers talk TLS); keys
// are private; the store URL is the same etcd:// form.
func TestEtcdTLS(t *testing.T) {
	topo.RequireEtcd(t)
	tp := topo.New(t)
	h1 := tp.MustHost("h1")
	e := tp.MustEtcd(topo.EtcdOptions{Members: 3, TLS: true})
	if got, want := e.StoreURL(), "etcd://198.18.0.100:2379,198.18.0.101:2379,198.18.0.102:2379"; got != want {
		t.Errorf("StoreURL = %q, want %q", got, want)
	}
	if eps := e.Endpoints(); len(eps) != 3 || eps[0] != "https://198.18.0.100:2379" {
		t.Errorf("Endpoints = %q", eps)
	}
	for _, f := range []string{e.CACert, e.ClientCert, e.ClientKey} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".key") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	c := e.HTTPClient(&h1.NS)
	mustPut(t, c, e.Member(1).ClientURL, "/secure", "yes")
	if v := mustGet(t, c, e.Member(2).ClientURL, "/secure"); v != "yes" {
		t.Fatalf("get = %q, want yes", v)
	}

	// The CA, but no client certificate: the handshake is refused.
	noCert := e.HTTPClient(&h1.NS)
	tc := e.ClientTLS()
	tc.Certificates = nil
	noCert.Transport.(*http.Transport).TLSClientConfig = tc
	if v, err := get(noCert, e.Member(0).ClientURL, "/secure"); err == nil {
		t.Errorf("a client without a certificate read %q", v)
	}
	// Plain HTTP is not served.
	plain := strings.Replace(e.Member(0).ClientURL, "https://", "http://", 1)
	if v, err := get(noCert, plain, "/secure"); err == nil {
		t.Errorf("plain HTTP read %q", v)
	}
}

// Close leaves nothing: no member process, no namespace, no file.
func TestEtcdClose(t *testing.T) {
	topo.RequireEtcd(t)
	topo.RequireRoot(t)
	tp, err := topo.Open(topo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			tp.Close()
		}
	})
	e, err := tp.Etcd(topo.EtcdOptions{Members: 3, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for i := range e.Len() {
		if pids = append(pids, e.Member(i).PID()); pids[i] == 0 {
			t.Fatalf("member %d has no PID", i)
		}
	}
	e.Member(2).Kill() // a member that is down at Close
	dir := filepath.Join(topo.RunBase, tp.Prefix())
	if _, err := os.Stat(filepath.Join(e.Member(0).DataDir, "member")); err != nil {
		t.Fatalf("no data dir under %s: %v", dir, err)
	}

	closed = true
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		// Reaped by Close; a PID taken again since is another process.
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(cmd), "etcd") {
			t.Errorf("etcd member %d still runs: %q", pid, cmd)
		} else if err == nil && syscall.Kill(pid, 0) == nil {
			t.Logf("PID %d was taken again by %q", pid, cmd)
		}
	}
	ents, err := os.ReadDir(nsutil.DefaultDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), tp.Prefix()) {
			t.Errorf("namespace %s left", ent.Name())
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left: %v", dir, err)
	}
	for _, f := range []string{e.CACert, e.ClientKey} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", f, err)
		}
	}
}

// A current etcd (CurrentEtcdVersion, built by BuildEtcd into the user's
// cache, once per machine) runs under the same fixture: a three-member
// TLS cluster serves a put and a get, and keeps a member's data across
// Stop and Start. The project's etcd client must work with it as with
// Debian's 3.4.
func TestEtcdCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd " + topo.CurrentEtcdVersion + " (about a minute the first time); not with -short")
	}
	topo.RequireRoot(t)
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := topo.BuildEtcd(filepath.Join(cache, "vxswitch-etcd"), topo.CurrentEtcdVersion)
	if err != nil {
		t.Fatal(err)
	}
	tp := topo.New(t)
	h1 := tp.MustHost("h1")
	e := tp.MustEtcd(topo.EtcdOptions{Members: 3, TLS: true, Binary: bin})
	if out := e.Member(0).Output(); !strings.Contains(out, strings.TrimPrefix(topo.CurrentEtcdVersion, "v")) {
		t.Errorf("member 0 does not say it is etcd %s:\n%s", topo.CurrentEtcdVersion, out)
	}
	c := e.HTTPClient(&h1.NS)
	mustPut(t, c, e.Member(0).ClientURL, "/current", "yes")
	m := e.Member(1)
	m.Stop()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, c, m.ClientURL, "/current"); v != "yes" {
		t.Fatalf("after Stop and Start: get = %q, want yes", v)
	}
}

// gateway posts req as JSON to one of etcd's gRPC gateway's /v3 paths
// and decodes the answer into resp, within timeout.
func gateway(c *http.Client, url, path string, timeout time.Duration, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	res, err := c.Do(r)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s%s: %s: %s", url, path, res.Status, b)
	}
	return json.Unmarshal(b, resp)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// requestTimeout bounds a request in a test: longer than etcd's own
// request timeout (5 s and two election timeouts).
const requestTimeout = 20 * time.Second

func put(c *http.Client, url, key, value string) error {
	return putWithin(c, url, key, value, requestTimeout)
}

// putWithin is put within timeout. A put sent to a follower just after
// its leader died waits for etcd's request timeout (7 s) before it
// fails; retries with a shorter timeout get through as soon as the
// cluster has a new leader.
func putWithin(c *http.Client, url, key, value string, timeout time.Duration) error {
	var resp struct{}
	return gateway(c, url, "/v3/kv/put", timeout, map[string]string{"key": b64(key), "value": b64(value)}, &resp)
}

// get returns key's value, "" when there is none.
func get(c *http.Client, url, key string) (string, error) {
	var resp struct {
		KVs []struct {
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := gateway(c, url, "/v3/kv/range", requestTimeout, map[string]string{"key": b64(key)}, &resp); err != nil {
		return "", err
	}
	if len(resp.KVs) == 0 {
		return "", nil
	}
	v, err := base64.StdEncoding.DecodeString(resp.KVs[0].Value)
	return string(v), err
}

func mustPut(t *testing.T, c *http.Client, url, key, value string) {
	t.Helper()
	if err := put(c, url, key, value); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t *testing.T, c *http.Client, url, key string) string {
	t.Helper()
	v, err := get(c, url, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// leader is the index of the member that leads the cluster, as member 0
// sees it once there is a leader.
func leader(t *testing.T, c *http.Client, e *topo.Etcd) int {
	t.Helper()
	ids := make([]string, e.Len())
	var lead string
	waitUntil(t, "every member's status", func() error {
		for i := range e.Len() {
			var st struct {
				Header struct {
					MemberID string `json:"member_id"`
				} `json:"header"`
				Leader string `json:"leader"`
			}
			if err := gateway(c, e.Member(i).ClientURL, "/v3/maintenance/status", requestTimeout, struct{}{}, &st); err != nil {
				return err
			}
			if st.Leader == "" || st.Leader == "0" {
				return fmt.Errorf("member %d has no leader", i)
			}
			ids[i], lead = st.Header.MemberID, st.Leader
		}
		return nil
	})
	for i, id := range ids {
		if id == lead {
			return i
		}
	}
	t.Fatalf("leader %s is none of the members %q", lead, ids)
	return -1
}

// waitUntil calls fn until it returns nil, and fails the test with its
// last error after a minute (a guard against a hang, not a measurement).
func waitUntil(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A three-member etcd cluster on the LAN beside two hosts, for a test
// of vxswitch daemons with a cluster store (not run: it needs root and
// etcd, and prints nothing).
func ExampleTopo_Etcd() {
	tp, err := topo.Open(topo.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tp.Close()
	h1, err := tp.AddHost("h1") // 198.18.0.1
	if err != nil {
		fmt.Println(err)
		return
	}
	e, err := tp.Etcd(topo.EtcdOptions{Members: 3, TLS: true}) // 198.18.0.100 to .102
	if err != nil {
		fmt.Println(err)
		return
	}
	args := []string{"--store", e.StoreURL(), // etcd://198.18.0.100:2379,...
		"--store-cacert", e.CACert, "--store-cert", e.ClientCert, "--store-key", e.ClientKey}
	if _, err := h1.VXSwitch(topo.DaemonOptions{Binary: "vxswitch", Args: args}); err != nil {
		fmt.Println(err)
		return
	}
	e.Member(0).Stop() // the store loses a member; the daemon must not notice
	if err := e.Member(0).Start(); err != nil {
		fmt.Println(err)
	}
}
