package fib

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMAC(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MAC
		ok   bool
	}{
		{"02:42:0a:00:00:03", MAC{0x02, 0x42, 0x0a, 0x00, 0x00, 0x03}, true},
		{"02-42-0A-00-00-03", MAC{0x02, 0x42, 0x0a, 0x00, 0x00, 0x03}, true},
		{"AA:bb:Cc:dD:ee:FF", MAC{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, true},
		{"ff:ff:ff:ff:ff:ff", MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true},
		{"00:00:00:00:00:00", MAC{}, true},
		{"", MAC{}, false},
		{"02:42:0a:00:00", MAC{}, false},          // five octets
		{"02:42:0a:00:00:03:04", MAC{}, false},    // seven octets
		{"02:42:0a:00:00:3", MAC{}, false},        // short octet
		{"02:42:0a:00:00:0g", MAC{}, false},       // not hex
		{"02:42-0a:00:00:03", MAC{}, false},       // mixed separators
		{"02.42.0a.00.00.03", MAC{}, false},       // dots
		{"0242.0a00.0003", MAC{}, false},          // Cisco form
		{"02:42:0a:00:00:03 ", MAC{}, false},      // trailing space
		{" 02:42:0a:00:00:03", MAC{}, false},      // leading space
		{"02:42:0a:00:00:+3", MAC{}, false},       // sign
		{"0x:42:0a:00:00:03", MAC{}, false},       // prefix
		{"00:00:5e:00:53:01:00:00", MAC{}, false}, // EUI-64
	} {
		got, err := ParseMAC(tc.in)
		if !tc.ok {
			if !errors.Is(err, ErrBadMAC) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("ParseMAC(%q) = %v, %v; want an ErrBadMAC naming the input", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMAC(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestMACString(t *testing.T) {
	if got := (MAC{0x02, 0x42, 0x0a, 0xbc, 0xde, 0xf0}).String(); got != "02:42:0a:bc:de:f0" {
		t.Errorf("String = %q", got)
	}
}

func TestMACPredicates(t *testing.T) {
	for _, tc := range []struct {
		mac                    MAC
		multi, bcast, zero, ok bool
	}{
		{MAC{0x02, 0x42, 0x0a, 0, 0, 3}, false, false, false, true},
		{MAC{0x01, 0x00, 0x5e, 0, 0, 1}, true, false, false, false},
		{MAC{0x33, 0x33, 0, 0, 0, 1}, true, false, false, false},
		{MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, true, true, false, false},
		{MAC{}, false, false, true, false},
	} {
		if tc.mac.IsMulticast() != tc.multi || tc.mac.IsBroadcast() != tc.bcast ||
			tc.mac.IsZero() != tc.zero || tc.mac.unicast() != tc.ok {
			t.Errorf("%v: multicast %v broadcast %v zero %v unicast %v", tc.mac,
				tc.mac.IsMulticast(), tc.mac.IsBroadcast(), tc.mac.IsZero(), tc.mac.unicast())
		}
	}
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"02:42:0a:00:00:03", "FF-FF-FF-FF-FF-FF", "02:42-0a:00:00:03", "", "0242.0a00.0003"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			if !errors.Is(err, ErrBadMAC) {
				t.Fatalf("ParseMAC(%q): error %v does not wrap ErrBadMAC", s, err)
			}
			return
		}
		str := m.String()
		if want := strings.ToLower(strings.ReplaceAll(s, "-", ":")); str != want {
			t.Fatalf("ParseMAC(%q).String() = %q, want %q", s, str, want)
		}
		if m2, err := ParseMAC(str); err != nil || m2 != m {
			t.Fatalf("ParseMAC(%q) = %v, %v; want %v", str, m2, err, m)
		}
	})
}
