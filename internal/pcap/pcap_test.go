package pcap

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// What Writer writes, gopacket's pcapgo reads (as tcpdump and Wireshark
// do), and what pcapgo writes, Reader reads.
func TestAgainstPcapgo(t *testing.T) {
	ts := time.Date(2026, 12, 2, 12, 0, 0, 123456000, time.UTC)
	frames := [][]byte{bytes.Repeat([]byte{0xab}, 60), {}, bytes.Repeat([]byte{1, 2, 3}, 500)}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteFileHeader(65535, LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WritePacket(ts.Add(time.Duration(i)*time.Millisecond), f, len(f)+i); err != nil {
			t.Fatal(err)
		}
	}
	pr, err := pcapgo.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if pr.LinkType() != layers.LinkTypeEthernet || pr.Snaplen() != 65535 {
		t.Errorf("pcapgo reads link type %v, snap length %d", pr.LinkType(), pr.Snaplen())
	}
	for i, f := range frames {
		data, ci, err := pr.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, f) || ci.Length != len(f)+i || !ci.Timestamp.Equal(ts.Add(time.Duration(i)*time.Millisecond)) {
			t.Errorf("record %d: pcapgo reads %d bytes of %d at %v", i, len(data), ci.Length, ci.Timestamp)
		}
	}
	if _, _, err := pr.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last record: %v", err)
	}

	// The other way, nanosecond timestamps included.
	for _, nanos := range []bool{false, true} {
		var b bytes.Buffer
		var pw *pcapgo.Writer
		if nanos {
			pw = pcapgo.NewWriterNanos(&b)
		} else {
			pw = pcapgo.NewWriter(&b)
		}
		if err := pw.WriteFileHeader(1500, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			if err := pw.WritePacket(gopacketCI(ts, f), f); err != nil {
				t.Fatal(err)
			}
		}
		r, err := NewReader(&b)
		if err != nil {
			t.Fatal(err)
		}
		if r.LinkType() != LinkTypeEthernet || r.SnapLen() != 1500 {
			t.Errorf("nanos %v: link type %d, snap length %d", nanos, r.LinkType(), r.SnapLen())
		}
		for i, f := range frames {
			got, data, orig, err := r.ReadPacket()
			if err != nil || !bytes.Equal(data, f) || orig != len(f) || !got.Equal(ts) {
				t.Errorf("nanos %v, record %d: %v %d bytes of %d at %v", nanos, i, err, len(data), orig, got)
			}
		}
		if _, _, _, err := r.ReadPacket(); !errors.Is(err, io.EOF) {
			t.Errorf("nanos %v: after the last record: %v", nanos, err)
		}
	}
}

func TestReaderRefuses(t *testing.T) {
	if _, err := NewReader(bytes.NewReader(make([]byte, 24))); !errors.Is(err, ErrFormat) {
		t.Errorf("zeros: %v", err)
	}
	if _, err := NewReader(bytes.NewReader([]byte{0xd4, 0xc3})); err == nil {
		t.Error("a short header was accepted")
	}
	var b bytes.Buffer
	w := NewWriter(&b)
	w.WriteFileHeader(65535, LinkTypeEthernet)
	w.WritePacket(time.Now(), make([]byte, 100), 100)
	cut := b.Bytes()[:b.Len()-10]
	r, err := NewReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.ReadPacket(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a record cut short: %v", err)
	}
	if err := w.WritePacket(time.Now(), make([]byte, 10), 5); err == nil {
		t.Error("a record longer than its frame was written")
	}
}

func gopacketCI(ts time.Time, f []byte) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(f), Length: len(f)}
}
