package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// display is how a metric is shown in the table and the chart: JSON keeps
// the unit of Metric.Unit, packets/s are shown in thousands.
func display(m Metric) (unit string, scale float64, prec int) {
	switch m.Unit {
	case "packets/s":
		return "kpps", 1e-3, 1
	case "Gbit/s", "CPU-s/GB":
		return m.Unit, 1, 2
	case "% of a core":
		return m.Unit, 1, 0
	default:
		return m.Unit, 1, 1
	}
}

func formatValue(m Metric, v float64) string {
	_, scale, prec := display(m)
	return fmt.Sprintf("%.*f", prec, v*scale)
}

func (r *Results) settingsLine() string {
	s := r.Settings
	args := "none"
	if len(s.DaemonArgs) > 0 {
		args = strings.Join(s.DaemonArgs, " ")
	}
	ver := s.VXSwitchVersion
	if ver == "" {
		ver = "not run"
	}
	rounds := "rounds"
	if s.Repeat == 1 {
		rounds = "round"
	}
	pin := "iperf3 unpinned"
	if a := strings.Split(s.IperfAffinity, ","); len(a) == 2 {
		pin = fmt.Sprintf("iperf3 client on CPU %s, server on CPU %s", a[0], a[1])
	}
	if s.PinLatencyCPU != nil {
		pin += fmt.Sprintf("; ping (and any daemon) on CPU %d for the latency", *s.PinLatencyCPU)
	}
	return fmt.Sprintf("%d %s × %g s per figure, medians; %s; daemon args: %s; %s", s.Repeat, rounds, s.DurationS, ver, args, pin)
}

// WriteTable prints the results as a text table: one row per figure, one
// column per case, and vxswitch ÷ kernel.
func (r *Results) WriteTable(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "vxswitch benchmark, %s\n", r.Machine.Date)
	fmt.Fprintf(&b, "machine   %s\n", r.Machine)
	fmt.Fprintf(&b, "topology  two hosts (netns) on a direct veth underlay, MTU %d; one container per host; overlay MTU %d\n",
		r.Settings.UnderlayMTU, r.Settings.OverlayMTU)
	fmt.Fprintf(&b, "runs      %s\n\n", r.settingsLine())

	const labelW, colW = 44, 11
	fmt.Fprintf(&b, "%-*s", labelW, "figure")
	for _, c := range r.Cases {
		fmt.Fprintf(&b, "%*s", colW, c.Name)
	}
	if r.Ratios != nil {
		fmt.Fprintf(&b, "%*s", colW+8, "vxswitch ÷ kernel")
	}
	b.WriteByte('\n')
	for _, m := range r.Metrics {
		if !r.measured(m.Key) {
			continue // a daemon figure without the vxswitch case
		}
		unit, _, _ := display(m)
		label := fmt.Sprintf("%s (%s)", m.Label, unit)
		if m.LowerIsBetter {
			label += " ↓"
		}
		fmt.Fprintf(&b, "%-*s", labelW, label)
		for _, c := range r.Cases {
			cell := "—"
			if v, ok := c.Summary[m.Key]; ok {
				cell = formatValue(m, v)
			}
			fmt.Fprintf(&b, "%*s", colW, cell)
		}
		if ratio, ok := r.Ratios[m.Key]; ok {
			fmt.Fprintf(&b, "%*.2f", colW+8, ratio)
		}
		b.WriteByte('\n')
	}
	b.WriteString("\n↓ lower is better (so is a ratio below 1 on that row). Machine CPU: busy time of the CPUs the\n" +
		"benchmark runs on (iperf3, daemons, kernel, and anything else running there) per GB the receiver\n" +
		"got. Daemon CPU is both daemons together; peak RSS is the larger daemon's VmHWM over the whole run.\n" +
		"UDP: datagrams the receiver got.\n")
	if lines := r.unsteady(); len(lines) > 0 {
		fmt.Fprintf(&b, "\nunsteady figures (largest round at least %g× the smallest; the median may mislead):\n", unsteadyRatio)
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	if w := r.Wakeup; w != nil && len(w.Rounds) > 0 {
		fmt.Fprintf(&b, "\nwake-up floor (medians): %s.\n", w.describe())
		b.WriteString("The kernel's vxlan runs a ping's round trip in ping's own system call and wakes no thread. Through\n" +
			"a daemon, ping's frame wakes the daemon and the reply wakes ping: two wake-ups that no daemon avoids\n" +
			"(with a daemon on each host, as here, the other daemon is woken on the way too: at least four wake-ups in all).\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// unsteadyRatio: a figure whose largest round is at least this many
// times its smallest is flagged under the table. The kernel's 4-stream
// TCP on a 2-core machine swings between about 17 and 35 Gbit/s from
// round to round, and the median of three rounds can land on either.
const unsteadyRatio = 1.5

// unsteady lists the figures whose rounds spread by unsteadyRatio or
// more, with their rounds, one line per case and figure.
func (r *Results) unsteady() []string {
	var out []string
	for _, c := range r.Cases {
		for _, m := range r.Metrics {
			var vals []string
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, run := range c.Runs {
				if v, ok := run[m.Key]; ok {
					lo, hi = min(lo, v), max(hi, v)
					vals = append(vals, formatValue(m, v))
				}
			}
			if len(vals) < 2 || !(lo > 0) || hi < unsteadyRatio*lo {
				continue
			}
			unit, _, _ := display(m)
			out = append(out, fmt.Sprintf("%s %s (%s): rounds %s", c.Name, m.Label, unit, strings.Join(vals, ", ")))
		}
	}
	return out
}

// measured tells whether any case has the figure.
func (r *Results) measured(key string) bool {
	for _, c := range r.Cases {
		if _, ok := c.Summary[key]; ok {
			return true
		}
	}
	return false
}

// WriteJSON writes the results as indented JSON.
func (r *Results) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Save writes latest.json and latest.svg into dir (created if needed),
// each through a temporary file renamed into place, and returns their
// paths.
func (r *Results) Save(dir string) (jsonPath, svgPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	jsonPath, svgPath = filepath.Join(dir, "latest.json"), filepath.Join(dir, "latest.svg")
	if err := writeFile(jsonPath, r.WriteJSON); err != nil {
		return "", "", err
	}
	if err := writeFile(svgPath, r.WriteSVG); err != nil {
		return "", "", err
	}
	return jsonPath, svgPath, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// caseColor is a case's colour in the chart.
func caseColor(name string) string {
	switch name {
	case Underlay:
		return "#9e9e9e"
	case Kernel:
		return "#3b75af"
	default:
		return "#e8743b"
	}
}

// The chart's geometry, in SVG user units (px).
const (
	svgW       = 960
	svgCols    = 3
	panelW     = svgW / svgCols
	panelH     = 235
	headerH    = 100
	footerH    = 36
	plotTop    = 58  // from the panel's top to the tallest bar's top
	plotBottom = 185 // from the panel's top to the baseline
	barW       = 56
	barGap     = 22
)

type bar struct {
	label, value, note, color string
	v                         float64
}

// WriteSVG draws the results as a standalone SVG chart: one panel per
// figure with a bar per case and its own scale (the figures' units
// differ), the vxswitch ÷ kernel ratio under vxswitch's bar, and a panel
// with the daemons' CPU per test.
func (r *Results) WriteSVG(w io.Writer) error {
	type panel struct {
		title, sub string
		bars       []bar
		// ref, when above 0, is drawn as a dashed line labelled refLabel.
		ref      float64
		refLabel string
	}
	var panels []panel
	var cpu panel
	for _, m := range r.Metrics {
		unit, _, _ := display(m)
		better := "higher is better"
		if m.LowerIsBetter {
			better = "lower is better"
		}
		if m.DaemonOnly {
			if m.Key == RSSPeak {
				continue // one number: in the footer
			}
			vx := r.Case(VXSwitch)
			if vx == nil {
				continue
			}
			if cpu.title == "" {
				cpu.title = "vxswitch daemons' CPU"
				cpu.sub = "% of one core, both daemons · " + better
			}
			if v, ok := vx.Summary[m.Key]; ok {
				cpu.bars = append(cpu.bars, bar{label: cpuBarLabel(m.Key),
					value: formatValue(m, v), color: caseColor(VXSwitch), v: v})
			}
			continue
		}
		p := panel{title: m.Label, sub: unit + " · " + better}
		if w := r.Wakeup; m.Key == LatAvg && w != nil && w.Median.CrossAvgUs > 0 {
			p.ref, p.refLabel = w.Median.CrossAvgUs, fmt.Sprintf("two cross-CPU wake-ups: %.1f", w.Median.CrossAvgUs)
		}
		for _, c := range r.Cases {
			v, ok := c.Summary[m.Key]
			if !ok {
				continue
			}
			b := bar{label: c.Name, value: formatValue(m, v), color: caseColor(c.Name), v: v}
			if ratio, ok := r.Ratios[m.Key]; ok && c.Name == VXSwitch {
				b.note = fmt.Sprintf("%.2f× kernel", ratio)
			}
			p.bars = append(p.bars, b)
		}
		panels = append(panels, p)
	}
	if len(cpu.bars) > 0 {
		panels = append(panels, cpu)
	}
	rows := (len(panels) + svgCols - 1) / svgCols
	height := headerH + rows*panelH + footerH

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n",
		svgW, height, svgW, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgW, height)
	text(&b, 20, 30, 20, "start", "bold", "#222", "vxswitch vs the kernel's vxlan vs the bare underlay")
	text(&b, 20, 50, 12, "start", "normal", "#444",
		fmt.Sprintf("%s · %s · direct veth underlay, MTU %d", r.Machine, r.Machine.Date, r.Settings.UnderlayMTU))
	text(&b, 20, 67, 12, "start", "normal", "#444", r.settingsLine())
	// Legend.
	x := 20
	for _, c := range r.Cases {
		fmt.Fprintf(&b, `<rect x="%d" y="80" width="12" height="12" fill="%s"/>`+"\n", x, caseColor(c.Name))
		text(&b, x+17, 91, 12, "start", "normal", "#222", c.Name)
		x += 100
	}

	for i, p := range panels {
		x0, y0 := (i%svgCols)*panelW, headerH+(i/svgCols)*panelH
		cx := x0 + panelW/2
		text(&b, cx, y0+18, 14, "middle", "bold", "#222", p.title)
		text(&b, cx, y0+34, 11, "middle", "normal", "#666", p.sub)
		base := y0 + plotBottom
		var top float64
		for _, br := range p.bars {
			top = max(top, br.v)
		}
		top = max(top, p.ref)
		n := len(p.bars)
		total := n*barW + (n-1)*barGap
		bx := cx - total/2
		if p.ref > 0 {
			y := float64(base) - p.ref/top*float64(plotBottom-plotTop)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c62828" stroke-width="1" stroke-dasharray="4 3"/>`+"\n",
				bx-10, y, bx+total+10, y)
			text(&b, bx-10, int(y)-4, 10, "start", "normal", "#c62828", p.refLabel)
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888" stroke-width="1"/>`+"\n",
			bx-10, base, bx+total+10, base)
		for _, br := range p.bars {
			h := 0.0
			if top > 0 {
				h = br.v / top * float64(plotBottom-plotTop)
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"/>`+"\n",
				bx, float64(base)-h, barW, h, br.color)
			text(&b, bx+barW/2, int(float64(base)-h)-5, 12, "middle", "normal", "#222", br.value)
			text(&b, bx+barW/2, base+15, 11, "middle", "normal", "#444", br.label)
			if br.note != "" {
				text(&b, bx+barW/2, base+30, 11, "middle", "bold", caseColor(VXSwitch), br.note)
			}
			bx += barW + barGap
		}
	}
	foot := "vxswitch ÷ kernel under vxswitch's bars"
	if w := r.Wakeup; w != nil && w.Median.CrossAvgUs > 0 {
		foot += " · dashed: a pipe round trip between threads on two CPUs"
	}
	if vx := r.Case(VXSwitch); vx != nil {
		if v, ok := vx.Summary[RSSPeak]; ok {
			foot = fmt.Sprintf("peak RSS of the larger vxswitch daemon: %.1f MiB · %s", v, foot)
		}
	}
	text(&b, 20, height-14, 12, "start", "normal", "#444", foot)
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// cpuBarLabel names a test under its bar in the CPU panel, short enough
// for the bar's width.
func cpuBarLabel(key string) string {
	switch key {
	case CPUTCP1:
		return "TCP ×1"
	case CPUTCP4:
		return "TCP ×4"
	case CPUUDP64:
		return "UDP 64 B"
	default:
		return "ping"
	}
}

func text(b *bytes.Buffer, x, y, size int, anchor, weight, color, s string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="%d" text-anchor="%s" font-weight="%s" fill="%s">`,
		x, y, size, anchor, weight, color)
	xml.EscapeText(b, []byte(s))
	b.WriteString("</text>\n")
}
