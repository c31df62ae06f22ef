// Package pcap writes and reads the classic pcap file format (the one
// tcpdump -w writes: a 24-byte file header, then a 16-byte record header
// before each frame; microsecond timestamps; libpcap's
// pcap-savefile(5)), for `vxswitch trace`.
//
// It is written here rather than taken from gopacket's pcapgo because
// pcapgo imports gopacket/layers, whose package initialisation fills
// tables of 65 536 entries: about 9.7 MiB of resident memory in every
// process of the binary, daemons included, which is more than a third of
// a daemon's footprint, for a format of two fixed headers. The tests
// check the files against pcapgo's reader.
package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// LinkTypeEthernet is DLT_EN10MB.
const LinkTypeEthernet = 1

const (
	magicMicros = 0xa1b2c3d4
	magicNanos  = 0xa1b23c4d
	fileHdrLen  = 24
	recHdrLen   = 16
	// maxSnapLen bounds a record a Reader accepts (libpcap's own bound).
	maxSnapLen = 262144
)

// Writer writes a pcap file to an io.Writer.
type Writer struct {
	w   io.Writer
	hdr [recHdrLen]byte
}

// NewWriter returns a Writer; call WriteFileHeader first.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteFileHeader writes the file header: version 2.4, little-endian,
// microsecond timestamps.
func (w *Writer) WriteFileHeader(snapLen, linkType uint32) error {
	var h [fileHdrLen]byte
	binary.LittleEndian.PutUint32(h[0:], magicMicros)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	// thiszone and sigfigs are 0.
	binary.LittleEndian.PutUint32(h[16:], snapLen)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	_, err := w.w.Write(h[:])
	return err
}

// WritePacket writes one record: data (the captured bytes) of a frame
// that was origLen bytes long, seen at ts.
func (w *Writer) WritePacket(ts time.Time, data []byte, origLen int) error {
	if origLen < len(data) {
		return fmt.Errorf("pcap: frame of %d bytes with %d captured", origLen, len(data))
	}
	binary.LittleEndian.PutUint32(w.hdr[0:], uint32(ts.Unix()))
	binary.LittleEndian.PutUint32(w.hdr[4:], uint32(ts.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(w.hdr[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(w.hdr[12:], uint32(origLen))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return err
	}
	_, err := w.w.Write(data)
	return err
}

// Reader reads a pcap file of either byte order, with microsecond or
// nanosecond timestamps.
type Reader struct {
	r        io.Reader
	order    binary.ByteOrder
	nanos    bool
	snapLen  uint32
	linkType uint32
	hdr      [recHdrLen]byte
}

// ErrFormat is returned for a stream that is not a pcap file.
var ErrFormat = errors.New("pcap: not a pcap file")

// NewReader reads the file header from r.
func NewReader(r io.Reader) (*Reader, error) {
	var h [fileHdrLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("pcap: file header: %w", err)
	}
	rd := &Reader{r: r}
	for _, o := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		switch o.Uint32(h[0:]) {
		case magicMicros:
			rd.order = o
		case magicNanos:
			rd.order, rd.nanos = o, true
		}
		if rd.order != nil {
			break
		}
	}
	if rd.order == nil {
		return nil, ErrFormat
	}
	rd.snapLen, rd.linkType = rd.order.Uint32(h[16:]), rd.order.Uint32(h[20:])
	return rd, nil
}

// SnapLen and LinkType are the file header's.
func (r *Reader) SnapLen() uint32  { return r.snapLen }
func (r *Reader) LinkType() uint32 { return r.linkType }

// ReadPacket reads the next record: io.EOF at a clean end of the file,
// io.ErrUnexpectedEOF for a record cut short.
func (r *Reader) ReadPacket() (ts time.Time, data []byte, origLen int, err error) {
	if _, err = io.ReadFull(r.r, r.hdr[:]); err != nil {
		return time.Time{}, nil, 0, err
	}
	sec, frac := r.order.Uint32(r.hdr[0:]), r.order.Uint32(r.hdr[4:])
	capLen, orig := r.order.Uint32(r.hdr[8:]), r.order.Uint32(r.hdr[12:])
	if capLen > maxSnapLen || capLen > orig {
		return time.Time{}, nil, 0, fmt.Errorf("pcap: record of %d bytes captured of %d", capLen, orig)
	}
	data = make([]byte, capLen)
	if _, err = io.ReadFull(r.r, data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return time.Time{}, nil, 0, err
	}
	if !r.nanos {
		frac *= 1000
	}
	return time.Unix(int64(sec), int64(frac)), data, int(orig), nil
}
