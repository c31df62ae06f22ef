package encap_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxswitch/vxswitch/encap"
)

func TestPutParseVXLAN(t *testing.T) {
	for _, tc := range []struct {
		vni, want uint32
		wire      []byte
	}{
		{0, 0, []byte{0x08, 0, 0, 0, 0, 0, 0, 0}},
		{1, 1, []byte{0x08, 0, 0, 0, 0, 0, 1, 0}},
		{4096, 4096, []byte{0x08, 0, 0, 0, 0, 0x10, 0, 0}},
		{encap.MaxVNI, encap.MaxVNI, []byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}},
		{0xab123456, 0x123456, []byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}}, // upper bits ignored
	} {
		b := bytes.Repeat([]byte{0xff}, encap.VXLANHeaderLen+2) // stale bytes must be overwritten
		encap.PutVXLAN(b, tc.vni)
		if !bytes.Equal(b[:encap.VXLANHeaderLen], tc.wire) {
			t.Errorf("PutVXLAN(%#x) = %x, want %x", tc.vni, b[:8], tc.wire)
		}
		if b[8] != 0xff || b[9] != 0xff {
			t.Errorf("PutVXLAN wrote past the header")
		}
		vni, err := encap.ParseVXLAN(b)
		if err != nil || vni != tc.want {
			t.Errorf("ParseVXLAN = %#x, %v; want %#x", vni, err, tc.want)
		}
		if v := encap.VXLAN(b); v.VNI() != tc.want || v.Flags() != encap.VXLANFlagVNI {
			t.Errorf("view: VNI %#x flags %#x", v.VNI(), v.Flags())
		}
		var g layers.VXLAN
		if err := g.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || !g.ValidIDFlag || g.VNI != tc.want {
			t.Errorf("gopacket decodes %+v, %v", g, err)
		}
	}
}

func TestPutVXLANShortPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("PutVXLAN on 7 bytes did not panic")
		}
	}()
	encap.PutVXLAN(make([]byte, 7), 1)
}

func TestParseVXLANErrors(t *testing.T) {
	valid := []byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}
	with := func(i int, v byte) []byte {
		b := bytes.Clone(valid)
		b[i] = v
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"nil", nil, encap.ErrShort},
		{"7 bytes", valid[:7], encap.ErrShort},
		{"flags 0", with(0, 0), encap.ErrBadFlags},
		{"flags G+I (GBP)", with(0, 0x88), encap.ErrBadFlags},
		{"flags I+P (GPE)", with(0, 0x0c), encap.ErrBadFlags},
		{"flags 0xff", with(0, 0xff), encap.ErrBadFlags},
		{"reserved byte 1", with(1, 0x80), encap.ErrReserved},
		{"reserved byte 2", with(2, 0x01), encap.ErrReserved},
		{"reserved byte 3", with(3, 0x10), encap.ErrReserved},
		{"reserved byte 7", with(7, 0x01), encap.ErrReserved},
		{"valid", valid, nil},
		{"valid with payload", append(bytes.Clone(valid), 1, 2, 3), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vni, err := encap.ParseVXLAN(tc.b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && vni != 0x123456 {
				t.Fatalf("vni = %#x", vni)
			}
			if err != nil && vni != 0 {
				t.Fatalf("vni = %#x with error", vni)
			}
		})
	}
}
