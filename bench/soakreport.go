package bench

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// The soak chart's geometry, in SVG user units (px).
const (
	soakW       = 960
	soakPanelW  = soakW / 3
	soakHeaderH = 112
	soakPanelH  = 250
	soakFooterH = 124
	soakPlotL   = 52  // from the panel's left to the plot's
	soakPlotR   = 20  // from the plot's right to the panel's
	soakPlotT   = 48  // from the panel's top to the plot's
	soakPlotB   = 210 // from the panel's top to the plot's bottom (the time axis)
)

// soakColors are the daemons' colours, h1's first.
var soakColors = []string{"#e8743b", "#3b75af"}

// WriteSVG draws the soak as a standalone SVG chart: one panel per
// resource (RSS, goroutines, open fds) with a line per daemon over the
// run, the warm-up shaded, and the traffic's integrity and the trends
// under them.
func (r *SoakResults) WriteSVG(w io.Writer) error {
	height := soakHeaderH + soakPanelH + soakFooterH
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n",
		soakW, height, soakW, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", soakW, height)
	s := r.Settings
	dur := time.Duration(s.DurationS * float64(time.Second))
	text(&b, 20, 30, 20, "start", "bold", "#222", fmt.Sprintf("vxswitch soak: %s of TCP and UDP both ways through two daemons", minutes(dur)))
	text(&b, 20, 50, 12, "start", "normal", "#444", fmt.Sprintf("%s · %s", r.Machine, r.Machine.Date))
	text(&b, 20, 67, 12, "start", "normal", "#444",
		fmt.Sprintf("%s · daemon args: %s · TCP: back-to-back %d MiB transfers each way, SHA-256 checked",
			orUnknown(s.VXSwitchVersion), orNone(s.DaemonArgs), s.TCPChunk>>20))
	text(&b, 20, 84, 12, "start", "normal", "#444",
		fmt.Sprintf("UDP: %d datagrams/s each way, sequence, length and CRC-32C checked · each daemon sampled every %gs", s.UDPRate, s.SampleS))
	x := 20
	for i, d := range r.Daemons {
		line(&b, x, 100, x+22, 100, i)
		text(&b, x+28, 104, 12, "start", "normal", "#222", d.Host+"'s daemon")
		x += 130
	}
	fmt.Fprintf(&b, `<rect x="%d" y="94" width="12" height="12" fill="#eeeeee" stroke="#cccccc"/>`+"\n", x)
	text(&b, x+17, 104, 12, "start", "normal", "#222", fmt.Sprintf("warm-up (first %gs), before the figures' first sample", s.WarmupS))

	panels := []struct {
		title string
		value func(SoakSample) float64
		trend func(DaemonSoak) Trend
		prec  int
	}{
		{"RSS (MiB)", func(x SoakSample) float64 { return x.RSSMiB }, func(d DaemonSoak) Trend { return d.RSS }, 1},
		{"goroutines", func(x SoakSample) float64 { return float64(x.Goroutines) }, func(d DaemonSoak) Trend { return d.Goroutines }, 0},
		{"open file descriptors", func(x SoakSample) float64 { return float64(x.FDs) }, func(d DaemonSoak) Trend { return d.FDs }, 0},
	}
	for i, p := range panels {
		x0, y0 := i*soakPanelW, soakHeaderH
		left, right := x0+soakPlotL, x0+soakPanelW-soakPlotR
		top, bottom := y0+soakPlotT, y0+soakPlotB
		var hi float64
		for _, d := range r.Daemons {
			for _, smp := range d.Samples {
				hi = max(hi, p.value(smp))
			}
		}
		ymax := niceCeil(hi * 1.15)
		xs := func(t float64) float64 {
			return float64(left) + t/math.Max(s.DurationS, 1)*float64(right-left)
		}
		ys := func(v float64) float64 { return float64(bottom) - v/ymax*float64(bottom-top) }
		text(&b, x0+soakPanelW/2, y0+18, 14, "middle", "bold", "#222", p.title)
		var sub []string
		for _, d := range r.Daemons {
			t := p.trend(d)
			sub = append(sub, fmt.Sprintf("%s %.*f → %.*f", d.Host, p.prec, t.First, p.prec, t.Last))
		}
		text(&b, x0+soakPanelW/2, y0+34, 11, "middle", "normal", "#666", "first → last: "+strings.Join(sub, " · "))
		// Warm-up, grid, axes.
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#eeeeee"/>`+"\n", left, top, xs(s.WarmupS)-float64(left), bottom-top)
		for k := 0; k <= 4; k++ {
			v := ymax * float64(k) / 4
			y := ys(v)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0" stroke-width="1"/>`+"\n", left, y, right, y)
			text(&b, left-6, int(y)+4, 10, "end", "normal", "#666", trimFloat(v))
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888" stroke-width="1"/>`+"\n", left, bottom, right, bottom)
		step, unit, scale := timeTicks(s.DurationS)
		for t := 0.0; t <= s.DurationS+1e-9; t += step {
			x := xs(t)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888" stroke-width="1"/>`+"\n", x, bottom, x, bottom+4)
			text(&b, int(x), bottom+16, 10, "middle", "normal", "#666", trimFloat(t/scale))
		}
		text(&b, (left+right)/2, bottom+32, 11, "middle", "normal", "#444", "time ("+unit+")")
		for j, d := range r.Daemons {
			var pts []string
			for _, smp := range d.Samples {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs(smp.T), ys(p.value(smp))))
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" %s/>`+"\n", strings.Join(pts, " "), lineStyle(j))
		}
	}

	y := soakHeaderH + soakPanelH + 8
	for _, t := range r.TCP {
		text(&b, 20, y, 12, "start", "normal", "#222", fmt.Sprintf("TCP %s: %d transfers, %.1f GB (%.2f Gbit/s), %d altered, %d failed",
			t.Direction, t.Transfers, float64(t.Bytes)/1e9, t.Gbps, t.Mismatched, t.Errors))
		y += 17
	}
	for _, u := range r.UDP {
		text(&b, 20, y, 12, "start", "normal", "#222", fmt.Sprintf("UDP %s: %d sent, %d received, %d lost (%.3f %%), %d duplicated, %d reordered, %d corrupt",
			u.Direction, u.Sent, u.Received, u.Lost, u.LostPct, u.Duplicated, u.Reordered, u.Corrupt))
		y += 17
	}
	for _, d := range r.Daemons {
		text(&b, 20, y, 12, "start", "normal", "#444", fmt.Sprintf("%s's daemon after warm-up: RSS %+.2f MiB (%+.2f in the second half), goroutines %+.0f, fds %+.0f; peak RSS %.1f MiB",
			d.Host, d.RSS.Growth, d.RSS.LateGrowth, d.Goroutines.Growth, d.FDs.Growth, d.HWMMiB))
		y += 17
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// lineStyle is daemon j's line: its colour, and dashes for the second,
// so that a line drawn over the other still shows.
func lineStyle(j int) string {
	st := fmt.Sprintf(`stroke="%s" stroke-width="2"`, soakColors[j%len(soakColors)])
	if j%2 == 1 {
		st += ` stroke-dasharray="6 4"`
	}
	return st
}

// line draws a legend's sample of daemon j's line.
func line(b *bytes.Buffer, x1, y1, x2, y2, j int) {
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" %s/>`+"\n", x1, y1, x2, y2, lineStyle(j))
}

// minutes is d as "10 min", or in seconds below two minutes.
func minutes(d time.Duration) string {
	if d < 2*time.Minute {
		return trimFloat(d.Seconds()) + " s"
	}
	return trimFloat(d.Minutes()) + " min"
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v ≤ 0).
func niceCeil(v float64) float64 {
	if !(v > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// timeTicks picks the time axis's tick spacing (seconds) and unit for a
// run of d seconds: about five to ten ticks.
func timeTicks(d float64) (step float64, unit string, scale float64) {
	if d >= 120 {
		unit, scale = "min", 60
	} else {
		unit, scale = "s", 1
	}
	step = niceCeil(d/scale/8) * scale
	return step, unit, scale
}

// trimFloat formats v with at most one decimal and no trailing zero.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}
