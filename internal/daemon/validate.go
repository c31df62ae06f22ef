package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/encap"
	"github.com/vxswitch/vxswitch/fib"
)

// Every request body is decoded by decodeRequest: one JSON object of the
// route's type, no unknown field, nothing after it, and every field
// checked on its own (its syntax and range) before the operation looks at
// the daemon's state, with one line that names the field. The operations
// check again what depends on state (a subnet's free addresses, a taken
// VNI); FuzzDecodeRequest checks that whatever is accepted is well-formed.

// Bounds of request fields.
const (
	maxIfName   = 15   // IFNAMSIZ - 1
	maxNetnsLen = 4096 // PATH_MAX
	maxDNSName  = 253  // RFC 1035, in text
	maxDNSLabel = 63
	maxAliases  = 64 // names of one endpoint: a few in practice
	maxFDBIPs   = 64 // addresses of one static station
	minMTU      = 576
	maxMTU      = 65535
	// maxMaxLearned bounds a network's --max-learned: a bound on
	// what a flood may fill, far above any real segment's stations.
	maxMaxLearned = 1 << 24
	// maxQuoted bounds how much of a bad value an error line repeats.
	maxQuoted = 64
)

// decodeRequest reads one JSON object into v (a pointer to a request
// type of package api) and validates it.
func decodeRequest(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bad("bad request body: %s", jsonProblem(err, v))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("bad request body: more after the JSON object; send one object")
	}
	return validateRequest(v)
}

// jsonProblem says in one line what is wrong with a body json refused.
func jsonProblem(err error, v any) string {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return "empty; want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "cut short; want a whole JSON object"
	case errors.As(err, &syntax):
		return fmt.Sprintf("not JSON at byte %d (%v)", syntax.Offset, syntax)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("want a JSON object, got %s", cut(typ.Value))
		}
		return fmt.Sprintf("field %s: want %s, got %s", cut(typ.Field), jsonKind(typ.Type), cut(typ.Value))
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Sprintf("unknown field %s; known: %s", cut(f), strings.Join(jsonFields(v), ", "))
	}
	return cut(strings.TrimPrefix(err.Error(), "json: "))
}

// cut bounds text from a request that an error line repeats.
func cut(s string) string {
	if len(s) > maxQuoted {
		return s[:maxQuoted] + "…"
	}
	return s
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number, 0 to %d", uint64(1)<<(t.Bits())-1)
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(jsonKind(t.Elem()), "a ") + "s"
	}
	return t.String()
}

// jsonFields lists the JSON names of v's fields.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// validateRequest checks every field of a decoded request on its own.
func validateRequest(v any) error {
	switch r := v.(type) {
	case *api.NetworkCreate:
		return validateNetworkCreate(r)
	case *api.Attach:
		return validateAttach(r)
	case *api.Detach:
		return validateDetach(r)
	case *api.Peer:
		return validateVTEP(r.VTEP)
	case *api.FDBEntry:
		return validateFDBEntry(r)
	}
	return nil
}

// q quotes a value for an error line, cut to maxQuoted bytes.
func q(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q...", s[:maxQuoted])
	}
	return fmt.Sprintf("%q", s)
}

func validateNetworkCreate(r *api.NetworkCreate) error {
	if !nameRE.MatchString(r.Name) {
		return bad("bad network name %s: use 1 to 64 letters, digits, '_', '.', '-', starting with a letter or digit", q(r.Name))
	}
	if r.VNI > encap.MaxVNI {
		return bad("bad VNI %d: a VNI is 1 to %d (0: the lowest free one)", r.VNI, encap.MaxVNI)
	}
	if r.Subnet == "" {
		return bad("subnet is required: an IPv4 CIDR such as 10.0.0.0/24")
	}
	if p, err := netip.ParsePrefix(r.Subnet); err != nil || !p.Addr().Is4() {
		if err == nil {
			return bad("bad subnet %s: the first subnet is the IPv4 one; an IPv6 one goes second (subnet6 in the API)", q(r.Subnet))
		}
		return bad("bad subnet %s: want an IPv4 CIDR such as 10.0.0.0/24", q(r.Subnet))
	}
	if r.Subnet6 != "" {
		if p, err := netip.ParsePrefix(r.Subnet6); err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return bad("bad IPv6 subnet %s: want an IPv6 CIDR such as fd00:1::/64", q(r.Subnet6))
		}
	}
	if r.Gateway != "" {
		if a, err := netip.ParseAddr(r.Gateway); err != nil || !a.Is4() {
			if err == nil {
				return bad("bad gateway %s: IPv6 gateways are not supported (only an IPv4 one, set on br0)", a)
			}
			return bad("bad gateway %s: want an IPv4 address in the subnet", q(r.Gateway))
		}
	}
	if r.MTU != 0 && (r.MTU < minMTU || r.MTU > maxMTU) {
		return bad("bad MTU %d: want %d to %d, or 0 for the underlay's MTU less the VXLAN overhead", r.MTU, minMTU, maxMTU)
	}
	if r.Egress && r.Internal {
		return bad("--egress and --internal exclude each other: an internal network has no way out")
	}
	if r.MaxLearned < 0 || r.MaxLearned > maxMaxLearned {
		return bad("bad max-learned %d: want 1 to %d learned MAC entries, or 0 for the daemon's --max-learned", r.MaxLearned, maxMaxLearned)
	}
	return nil
}

func validateAttach(r *api.Attach) error {
	if err := validateNetns(r.Netns, true); err != nil {
		return err
	}
	if r.ID != "" && !idRE.MatchString(r.ID) {
		return bad("bad endpoint ID %s: 1 to 128 letters, digits, '_', '.', '-', starting with a letter or digit", q(r.ID))
	}
	if len(r.Aliases) > maxAliases {
		return bad("%d aliases: an endpoint has at most %d", len(r.Aliases), maxAliases)
	}
	names := r.Aliases
	if r.Name != "" {
		names = append([]string{r.Name}, names...)
	}
	for _, n := range names {
		if !validDNSName(n) {
			return bad("bad endpoint name %s: a DNS name of letters, digits, '-' and '_', labels of up to 63 joined by '.', 253 in all", q(n))
		}
	}
	if r.IP != "" && !addrOrPrefix(r.IP, true) {
		return bad("bad IP %s: want an IPv4 address or CIDR such as 10.0.0.5/24", q(r.IP))
	}
	if r.IP6 != "" && !addrOrPrefix(r.IP6, false) {
		return bad("bad IPv6 address %s: want an IPv6 address or CIDR such as fd00:1::5/64", q(r.IP6))
	}
	if r.MAC != "" {
		if m, err := fib.ParseMAC(r.MAC); err != nil || m.IsMulticast() || m.IsZero() {
			return bad("bad MAC %s: want a unicast address such as 02:42:0a:00:00:05", q(r.MAC))
		}
	}
	if r.IfName != "" && !validIfName(r.IfName) {
		return bad("bad interface name %s: 1 to %d letters, digits, '_', '.', '-', starting with a letter or digit", q(r.IfName), maxIfName)
	}
	return nil
}

func validateDetach(r *api.Detach) error {
	if (r.Netns == "") == (r.ID == "") {
		return bad("detach needs the endpoint's netns or its ID (one of them)")
	}
	if r.ID != "" && !idRE.MatchString(r.ID) {
		return bad("bad endpoint ID %s: 1 to 128 letters, digits, '_', '.', '-', starting with a letter or digit", q(r.ID))
	}
	if r.Netns != "" {
		return validateNetns(r.Netns, true)
	}
	return nil
}

// validateFDBEntry checks a static entry to add or remove (remove sends
// the MAC alone). What `fdb show` prints besides (network, vni, source,
// age) is not part of a request.
func validateFDBEntry(r *api.FDBEntry) error {
	if r.Network != "" || r.VNI != 0 || r.Source != "" || r.Age != nil {
		return bad("network, vni, source and age_seconds are what fdb show prints: a request gives mac, vtep and ips")
	}
	if m, err := fib.ParseMAC(r.MAC); err != nil || m.IsMulticast() || m.IsZero() {
		return bad("bad MAC %s: want a unicast address such as 02:42:0a:00:00:03", q(r.MAC))
	}
	if r.VTEP != "" {
		if err := validateVTEP(r.VTEP); err != nil {
			return err
		}
	}
	if len(r.IPs) > maxFDBIPs {
		return bad("%d ips: a static entry has at most %d", len(r.IPs), maxFDBIPs)
	}
	for _, s := range r.IPs {
		if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
			return bad("bad IP %s for static entry %s: want an address such as 10.0.0.3", q(s), r.MAC)
		}
	}
	return nil
}

func validateVTEP(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || a.IsUnspecified() || a.IsMulticast() {
		return bad("bad VTEP IP %s: want a unicast underlay address such as 198.18.0.2", q(s))
	}
	return nil
}

// validateNetns checks a namespace's name or path (resolved later).
func validateNetns(s string, required bool) error {
	switch {
	case s == "" && required:
		return bad("netns is required: a name from `ip netns` or a path such as /proc/PID/ns/net")
	case len(s) > maxNetnsLen || strings.ContainsRune(s, 0):
		return bad("bad netns %s: want a name from `ip netns` or a path such as /proc/PID/ns/net", q(s))
	case !strings.Contains(s, "/") && (s == "." || s == ".." || len(s) > 255):
		return bad("bad netns %s: a name from `ip netns` or a path such as /proc/PID/ns/net", q(s))
	}
	return nil
}

// validIfName is an interface name the kernel takes and `ip` prints
// back unchanged.
func validIfName(s string) bool {
	return len(s) <= maxIfName && s != "." && s != ".." && nameRE.MatchString(s)
}

// validDNSName is a name the networks' DNS servers can answer.
func validDNSName(s string) bool {
	if len(s) > maxDNSName || !dnsNameRE.MatchString(s) {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if len(l) > maxDNSLabel {
			return false
		}
	}
	return true
}

// addrOrPrefix reports whether s is an address or CIDR of the family.
func addrOrPrefix(s string, v4 bool) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		p, perr := netip.ParsePrefix(s)
		if perr != nil {
			return false
		}
		a = p.Addr()
	}
	return a.Zone() == "" && a.Is4() == v4 && !a.Is4In6()
}

// decodeBody is decodeRequest on bytes (for the fuzz target).
func decodeBody(b []byte, v any) error { return decodeRequest(bytes.NewReader(b), v) }
