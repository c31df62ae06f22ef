package main_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// tracedPing is an ICMP echo request or reply read back from a trace.
type tracedPing struct {
	reply    bool
	src, dst string
	id, seq  uint16
	payload  []byte
}

// readTrace reads a pcap file written by `vxswitch trace` with gopacket
// and returns how many frames it holds and the ICMP echoes among them.
func readTrace(t *testing.T, file string) (int, []tracedPing) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not a pcap file: %v", file, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type %v, want Ethernet", r.LinkType())
	}
	n := 0
	var pings []tracedPing
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return n, pings
		}
		if err != nil {
			t.Fatalf("frame %d of %s: %v", n, file, err)
		}
		n++
		if ci.CaptureLength != ci.Length || ci.Timestamp.IsZero() {
			t.Errorf("frame %d: %d of %d bytes, time %v", n, ci.CaptureLength, ci.Length, ci.Timestamp)
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if ip == nil || icmp == nil {
			continue
		}
		switch icmp.TypeCode.Type() {
		case layers.ICMPv4TypeEchoRequest, layers.ICMPv4TypeEchoReply:
			pings = append(pings, tracedPing{reply: icmp.TypeCode.Type() == layers.ICMPv4TypeEchoReply,
				src: ip.SrcIP.String(), dst: ip.DstIP.String(), id: icmp.Id, seq: icmp.Seq, payload: icmp.Payload})
		}
	}
}

var traceSummary = regexp.MustCompile(`^(\d+) frames recorded to .*, (\d+) dropped`)

// `vxswitch trace` records what the switch forwards both ways: while c1
// pings c2 with a known payload, a trace on host 1 holds the echo
// requests (from the TAP into the overlay) and their replies (from the
// overlay into the TAP) with that payload, and --count stops it at that
// many frames.
func TestTrace(t *testing.T) {
	offloadModes(t, func(t *testing.T, args []string) {
		c := newCluster(t, 2, args...)
		ping(t, c.ctrs[0], "10.0.0.3")
		// A ping every 20 ms with a 100-byte payload of 0xab 0xcd ... for
		// as long as the traces run.
		pinger, err := c.ctrs[0].Start("ping", "-i", "0.02", "-s", "100", "-p", "abcd", "10.0.0.3")
		if err != nil {
			t.Fatal(err)
		}
		defer pinger.Stop()

		file := filepath.Join(t.TempDir(), "net.pcap")
		const count = 40
		out := cli(t, c.ds[0], "trace", "net", "--pcap", file, "--count", strconv.Itoa(count))
		m := traceSummary.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("trace printed %q", out)
		}
		n, pings := readTrace(t, file)
		if m[1] != strconv.Itoa(count) || n != count {
			t.Errorf("--count %d: the command says %s frames, the file holds %d", count, m[1], n)
		}
		// ping's payload: a 16-byte timestamp, then the pattern.
		want := bytes.Repeat([]byte{0xab, 0xcd}, 42)
		requests := map[uint16][]byte{}
		pairs := 0
		for _, p := range pings {
			if len(p.payload) != 100 || !bytes.Equal(p.payload[16:], want) {
				t.Errorf("echo %v seq %d from %s: payload %x, want 16 bytes and %x", p.reply, p.seq, p.src, p.payload, want)
				continue
			}
			switch {
			case !p.reply && p.src == "10.0.0.2" && p.dst == "10.0.0.3":
				requests[p.seq] = p.payload
			case p.reply && p.src == "10.0.0.3" && p.dst == "10.0.0.2":
				// The first reply may answer a request sent before
				// the trace began.
				if bytes.Equal(requests[p.seq], p.payload) {
					pairs++
				}
			default:
				t.Errorf("unexpected echo %+v", p)
			}
		}
		// 40 frames of a ping every 20 ms are mostly echoes: at the very
		// least some request and its reply.
		if pairs == 0 {
			t.Fatalf("no echo request with its reply among %d echoes of %d frames", len(pings), n)
		}
		t.Logf("%d frames: %d echoes, %d request/reply pairs, %s dropped", n, len(pings), pairs, m[2])

		// One trace at a time: while one runs, a second is refused.
		dir := t.TempDir()
		long := filepath.Join(dir, "long.pcap")
		longCtx, kill := context.WithCancel(testCtx(t))
		longDone := make(chan struct{})
		go func() {
			defer close(longDone)
			c.ds[0].CLI(longCtx, "trace", "net", "--pcap", long)
		}()
		defer func() { kill(); <-longDone }()
		// The command creates the file once the daemon answered.
		eventually(t, "the first trace to start", func() bool { _, err := os.Stat(long); return err == nil })
		if _, errOut, err := c.ds[0].CLI(testCtx(t), "trace", "net", "--pcap", filepath.Join(dir, "second.pcap"), "--count", "1"); err == nil {
			t.Error("a second trace of the network started while one ran")
		} else if !strings.Contains(errOut, "traced already") {
			t.Errorf("second trace: %v: %s", err, errOut)
		}
		// A client that goes away mid-trace (killed) frees the network:
		// the next trace starts once the daemon saw its connection close.
		kill()
		<-longDone
		file2 := filepath.Join(dir, "short.pcap")
		eventually(t, "a trace after the first client went away", func() bool {
			o, errOut, err := c.ds[0].CLI(testCtx(t), "trace", "net", "--pcap", file2, "--duration", "500ms")
			if err != nil && !strings.Contains(errOut, "traced already") {
				t.Fatalf("trace --duration: %v: %s", err, errOut)
			}
			out = o
			return err == nil
		})
		// --duration stops a trace too.
		if m := traceSummary.FindStringSubmatch(out); m == nil {
			t.Fatalf("trace --duration printed %q", out)
		} else if n, _ := readTrace(t, file2); strconv.Itoa(n) != m[1] {
			t.Errorf("trace --duration: the command says %s frames, the file holds %d", m[1], n)
		}
		if _, errOut, err := c.ds[0].CLI(testCtx(t), "trace", "nosuch", "--pcap", file2); err == nil {
			t.Error("trace of a network that does not exist succeeded")
		} else if !bytes.Contains([]byte(errOut), []byte("no network named nosuch")) {
			t.Errorf("trace nosuch: %s", errOut)
		}
	})
}
