package daemon

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vxswitch/vxswitch/cmd/vxswitch/api"
	"github.com/vxswitch/vxswitch/fib"
	vswitch "github.com/vxswitch/vxswitch/switch"
)

// fillDistinct sets every number field of the struct *p to a value of its
// own (1, 2, 3, ...) and every map to one entry, so that a conversion that
// drops or swaps a field shows.
func fillDistinct(t *testing.T, p any) {
	t.Helper()
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Uint64, reflect.Uint32:
			f.SetUint(uint64(i + 1))
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Map:
			m := reflect.MakeMap(f.Type())
			m.SetMapIndex(reflect.ValueOf("reason"), reflect.ValueOf(uint64(i+1)))
			f.Set(m)
		default:
			t.Fatalf("%s.%s: a %s; teach fillDistinct about it", v.Type(), v.Type().Field(i).Name, f.Kind())
		}
	}
}

// sameJSON fails unless a and b encode to the same JSON object.
func sameJSON(t *testing.T, a, b any) {
	t.Helper()
	var ma, mb map[string]any
	for _, x := range []struct {
		v any
		m *map[string]any
	}{{a, &ma}, {b, &mb}} {
		data, err := json.Marshal(x.v)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, x.m); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(ma, mb) {
		t.Errorf("%T and %T differ on the wire:\n %v\n %v", a, b, ma, mb)
	}
}

// The control API's stats types are its own, converted from the
// datapath's: every datapath counter reaches the API, under the name it
// always had on the wire, and the API has no counter nobody fills.
func TestAPICounters(t *testing.T) {
	var c vswitch.Counters
	fillDistinct(t, &c)
	sameJSON(t, c, apiCounters(c))
	var sc vswitch.SwitchCounters
	fillDistinct(t, &sc)
	sameJSON(t, sc, apiSwitchCounters(sc))
	var s fib.Stats
	fillDistinct(t, &s)
	sameJSON(t, s, apiFIBStats(s))
}

// The API's default socket is where a daemon with the default run
// directory listens.
func TestDefaultSocket(t *testing.T) {
	if got := filepath.Join(DefaultRunDir, SocketName); got != api.DefaultSocket {
		t.Errorf("the daemon listens at %s by default, api.DefaultSocket is %s", got, api.DefaultSocket)
	}
}

// Every per-peer counter reaches the API under its own name; the entry
// for unknown VTEPs beyond the bound is "other".
func TestAPIPeers(t *testing.T) {
	p := vswitch.PeerCounters{VTEP: netip.MustParseAddr("198.18.0.2"), TXDatagrams: 1, TXBytes: 2, RXFrames: 3, RXBytes: 4,
		Drops: map[string]uint64{"send_error": 5}}
	got := apiPeers([]vswitch.PeerCounters{p, {RXFrames: 6}})
	want := []api.PeerCounters{{VTEP: "198.18.0.2", TXDatagrams: 1, TXBytes: 2, RXFrames: 3, RXBytes: 4,
		Drops: map[string]uint64{"send_error": 5}}, {VTEP: "other", RXFrames: 6}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("apiPeers:\n got %+v\nwant %+v", got, want)
	}
	if n := reflect.TypeOf(p).NumField(); n != reflect.TypeOf(api.PeerCounters{}).NumField() || n != 6 {
		t.Errorf("PeerCounters has %d fields: teach apiPeers and this test the new ones", n)
	}
}
