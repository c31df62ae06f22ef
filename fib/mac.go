package fib

import "fmt"

// MAC is an Ethernet address. It is comparable and can be used as a map key.
type MAC [6]byte

const hexDigits = "0123456789abcdef"

// String formats m as six lowercase hex octets separated by colons,
// for example "02:42:0a:00:00:03".
func (m MAC) String() string {
	var b [17]byte
	for i, o := range m {
		if i > 0 {
			b[3*i-1] = ':'
		}
		b[3*i] = hexDigits[o>>4]
		b[3*i+1] = hexDigits[o&0xf]
	}
	return string(b[:])
}

// ParseMAC parses six hex octets separated by colons ("02:42:0a:00:00:03")
// or by hyphens ("02-42-0A-00-00-03"), in either case. Other forms that
// net.ParseMAC accepts (dotted, 8- and 20-octet addresses) are rejected
// because they are not Ethernet addresses. The error wraps ErrBadMAC and
// quotes s.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 || (s[2] != ':' && s[2] != '-') {
		return MAC{}, badMAC(s)
	}
	for i := range m {
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 || (i < 5 && s[3*i+2] != s[2]) {
			return MAC{}, badMAC(s)
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

func badMAC(s string) error {
	return fmt.Errorf("%w %q: want six hex octets like 02:42:0a:00:00:03", ErrBadMAC, s)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// IsMulticast reports whether m is a group address (the I/G bit of the first
// octet is set). The broadcast address is a multicast address.
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// key packs m big-endian into the low 48 bits of a uint64, so keys order
// like MACs and maps use the runtime's fast path for 8-byte keys.
func (m MAC) key() uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// unicast reports whether m may be an entry's key: a station address, not a
// group address and not the all-zeros address.
func (m MAC) unicast() bool { return !m.IsMulticast() && !m.IsZero() }
