package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

var (
	colorQueries = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorErrors  = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorWindow  = color.NRGBA{R: 0xff, G: 0xd7, B: 0x6e, A: 0x70}
	colorMark    = color.Gray{Y: 0x50}
	colorAPI     = color.NRGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colorThrottl = color.NRGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colorLogins  = color.NRGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	colorQuota   = color.Black
)

// Layout of the picture, in inches and points.
const (
	svgWidth       = 11
	svgPanelHeight = 3.4
	svgLegend      = 0.95
	// svgPlotWidth is about the width of a panel's data area, in points,
	// for placing the step labels.
	svgPlotWidth = (svgWidth - 1.1) * 72
	svgLabelSize = 8.5
)

// svgFont is Liberation Sans, which has the metrics of Arial and
// Helvetica: a viewer without it draws the fallback at the same widths.
var svgFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// stepWords is how a step is named on the picture: what happened, then
// the step of the rotation function. The window (shaded) and the time
// after the rotation need no label.
var stepWords = map[string]string{
	stepCreateSecret: "AWSPENDING created (createSecret)",
	stepSetSecret:    "password changed (setSecret)",
	stepTestSecret:   "new password tested (testSecret)",
	stepFinishSecret: "AWSCURRENT moved (finishSecret)",
	stepRequested:    "rotation requested (RotateSecret)",
	stepPending:      "AWSPENDING appeared (createSecret)",
}

// drawn is the part of a report the picture draws: the buckets before the
// drill's shutdown, the marks and fleet seconds within them.
type drawn struct {
	buckets int     // drawn from the start
	xmax    float64 // seconds: the end of the last bucket drawn
	marks   []Mark
	seconds []FleetSecond
}

// drawnPart cuts the report at the last full bucket before the drill
// began stopping its workers: the shutdown cuts queries short, which
// would read as a dip of the drivers'.
func drawnPart(r *Report) drawn {
	n := 0
	for _, s := range r.Timeline.Series {
		n = max(n, len(s.Queries))
	}
	if r.ShutdownMS > 0 && r.Timeline.BucketMS > 0 {
		n = min(n, int(r.ShutdownMS/r.Timeline.BucketMS))
	}
	n = max(n, 1)
	d := drawn{buckets: n, xmax: float64(n) * r.Timeline.BucketMS / 1000}
	for _, m := range r.Marks {
		if m.AtMS/1000 <= d.xmax {
			d.marks = append(d.marks, m)
		}
	}
	if r.Fleet != nil {
		for _, s := range r.Fleet.Seconds {
			if s.AtS+1 <= d.xmax+1e-9 {
				d.seconds = append(d.seconds, s)
			}
		}
	}
	return d
}

// writeSVG draws the report with gonum.org/v1/plot: a panel per driver
// with its successful queries and application errors per second stacked,
// its totals in the title, the window shaded and the steps marked and
// named; the fleet's panel below them; the legend at the bottom.
func writeSVG(path string, r *Report) error {
	plot.DefaultFont, plotter.DefaultFont = svgFont, svgFont
	d := drawnPart(r)
	labels := placeLabels(groupMarks(d.marks, d.xmax*0.02), r.Rotations > 1, d.xmax)
	labelsH := float64(labels.lines)*labels.lineHeight + 6 // points, from the top
	n := len(r.Timeline.Series)
	if r.Fleet != nil {
		n++
	}
	// Taller panels for more than a few lines of labels, so that they
	// take at most about half the first panel.
	panelH := svgPanelHeight*72 + math.Max(0, labelsH-svgPanelHeight*72/4)
	height := vg.Points(panelH*float64(n)) + svgLegend*vg.Inch
	top := 1.0
	for _, s := range r.Timeline.Series {
		for i := range d.buckets {
			top = math.Max(top, perSecond(r, s.Queries[i]+s.Errors[i]))
		}
	}

	var plots [][]*plot.Plot
	var legend []legendEntry
	for i, s := range r.Timeline.Series {
		p, entries, err := driverPanel(r, s, d, top, i == 0)
		if err != nil {
			return err
		}
		if i == 0 {
			legend = entries
		}
		plots = append(plots, []*plot.Plot{p})
	}
	if r.Fleet != nil {
		p, err := fleetPanel(r, d)
		if err != nil {
			return err
		}
		plots = append(plots, []*plot.Plot{p})
	}

	c := vgsvg.New(svgWidth*vg.Inch, height)
	dc := draw.New(c)
	legendH := vg.Length(svgLegend) * vg.Inch
	panels := draw.Crop(dc, 0, 0, legendH, 0)
	tiles := draw.Tiles{Rows: n, Cols: 1, PadTop: 0.1 * vg.Inch, PadLeft: 0.1 * vg.Inch, PadRight: 0.25 * vg.Inch, PadY: 0.25 * vg.Inch}
	// The first panel's data area (its height does not depend on the y
	// axis) sets the headroom above the highest bar for the labels; the
	// driver panels share the y axis.
	canvases := plot.Align(plots, tiles, panels)
	dataH := float64(plots[0][0].DataCanvas(canvases[0][0]).Rectangle.Size().Y.Points())
	ymax := top / (1 - math.Min(0.7, labelsH/dataH))
	for i := range r.Timeline.Series {
		plots[i][0].Y.Max = ymax
	}
	if err := addLabels(plots[0][0], labels, ymax, dataH); err != nil {
		return err
	}
	canvases = plot.Align(plots, tiles, panels)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	l := plot.NewLegend()
	l.Left, l.Top = true, true
	l.TextStyle.Font.Size = vg.Points(10)
	l.Padding = vg.Points(4)
	for _, e := range legend {
		l.Add(e.text, e.thumb)
	}
	if len(r.Timeline.Series) > 1 {
		// Both groups of workers share one machine: when it pauses, both
		// panels dip together.
		l.Add("      a dip in both panels at the same moment is the machine pausing, not a driver")
	}
	l.Draw(draw.Crop(dc, 0.8*vg.Inch, 0, 0.05*vg.Inch, -(height - legendH + 0.05*vg.Inch)))

	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return err
	}
	// A viewer without Liberation Sans falls back to its metric twins.
	out := bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"), []byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"))
	return os.WriteFile(path, out, 0o644)
}

// legendEntry is a line of the legend.
type legendEntry struct {
	text  string
	thumb plot.Thumbnailer
}

// perSecond turns a count per bucket into a rate per second.
func perSecond(r *Report, n int) float64 { return float64(n) * 1000 / r.Timeline.BucketMS }

// panelTitle is a driver panel's title: the driver and its totals.
func panelTitle(r *Report, driver string) string {
	name := driver
	if driver == driverPlain {
		name = "go-sql-driver/mysql, password read once at start"
	}
	if t := r.driver(driver); t != nil {
		return name + " — " + totalsText(*t)
	}
	return name
}

// driverPanel draws one driver's series: successful queries and, stacked
// on them, application errors, per second; the top edge is all queries.
// The first panel carries the picture's title and returns the legend's
// entries.
func driverPanel(r *Report, s Series, d drawn, top float64, first bool) (*plot.Plot, []legendEntry, error) {
	// writeSVG sets Y.Max once it knows the headroom the labels need;
	// the band and the dashed lines reach past any Y.Max (the canvas clips
	// them).
	ymax := top * 100
	p := plot.New()
	p.Title.Text = panelTitle(r, s.Driver)
	if first {
		what := "one rotation"
		if r.Rotations > 1 {
			what = fmt.Sprintf("%d rotations", r.Rotations)
		}
		p.Title.Text = fmt.Sprintf("rotation-drill: %s under load, %s\n%s\n\n%s", what, strategyText(r.Strategy), r.Target, p.Title.Text)
	}
	p.Title.TextStyle.Font.Size = vg.Points(12)
	p.X.Label.Text = "seconds since the start"
	p.Y.Label.Text = fmt.Sprintf("queries per second (%.0f ms bins)", r.Timeline.BucketMS)
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, d.xmax, 0, top
	p.Y.Tick.Marker = wholeTicks{}
	grid := plotter.NewGrid()
	grid.Vertical.Width = 0
	p.Add(grid)

	var legend []legendEntry
	// The window: each step in which the old password no longer works.
	var band *plotter.Polygon
	for i, m := range d.marks {
		if !brokenSteps[m.Step] {
			continue
		}
		start, end := m.AtMS/1000, d.xmax
		if i+1 < len(d.marks) {
			end = math.Min(d.marks[i+1].AtMS/1000, d.xmax)
		}
		poly, err := plotter.NewPolygon(plotter.XYs{{X: start, Y: 0}, {X: end, Y: 0}, {X: end, Y: ymax}, {X: start, Y: ymax}})
		if err != nil {
			return nil, nil, err
		}
		poly.Color, poly.LineStyle.Width = colorWindow, 0
		p.Add(poly)
		band = poly
	}

	// The areas, in steps of a bucket.
	ok := make([]float64, d.buckets)
	all := make([]float64, d.buckets)
	for i := range d.buckets {
		ok[i] = perSecond(r, s.Queries[i])
		all[i] = perSecond(r, s.Queries[i]+s.Errors[i])
	}
	zero := make([]float64, d.buckets)
	for _, a := range []struct {
		label        string
		lower, upper []float64
		col          color.Color
	}{
		{"successful queries per second", zero, ok, colorQueries},
		{"application errors per second, stacked on top (the top edge is all queries)", ok, all, colorErrors},
	} {
		poly, err := plotter.NewPolygon(stepArea(r.Timeline.BucketMS/1000, a.lower, a.upper))
		if err != nil {
			return nil, nil, err
		}
		poly.Color, poly.LineStyle.Width = a.col, 0
		p.Add(poly)
		legend = append(legend, legendEntry{a.label, poly})
	}
	if band != nil {
		text := "the window: the database has the new password, AWSCURRENT still the old one"
		if r.Strategy == "multi" {
			text = "the window: the new user has its new password; the previous user still logs in"
		}
		legend = append(legend, legendEntry{text, band})
	}

	// A dashed line per group of steps; the first panel names them.
	for _, g := range groupMarks(d.marks, d.xmax*0.02) {
		x := g[0].AtMS / 1000
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: ymax}})
		if err != nil {
			return nil, nil, err
		}
		l.LineStyle.Color, l.LineStyle.Width, l.LineStyle.Dashes = colorMark, vg.Points(1), []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		if len(legend) < 4 {
			legend = append(legend, legendEntry{"a step of the rotation (named at the top)", l})
		}
	}
	return p, legend, nil
}

// addLabels puts the step labels at the top of p, whose data area is
// dataH points high and reaches ymax.
func addLabels(p *plot.Plot, labels stepLabels, ymax, dataH float64) error {
	if len(labels.labels) == 0 {
		return nil
	}
	var xy plotter.XYLabels
	for _, l := range labels.labels {
		y := ymax * (1 - (float64(l.line)*labels.lineHeight+3)/dataH)
		xy.XYs = append(xy.XYs, plotter.XY{X: l.x, Y: y})
		xy.Labels = append(xy.Labels, l.text)
	}
	lb, err := plotter.NewLabels(xy)
	if err != nil {
		return err
	}
	for i, l := range labels.labels {
		lb.TextStyle[i].XAlign, lb.TextStyle[i].YAlign = draw.XLeft, draw.YTop
		if l.right {
			lb.TextStyle[i].XAlign = draw.XRight
		}
		lb.TextStyle[i].Font.Size = vg.Points(svgLabelSize)
	}
	p.Add(lb)
	return nil
}

// stepArea is the outline of the area between lower and upper, each a
// value per bucket of width seconds, drawn in steps.
func stepArea(width float64, lower, upper []float64) plotter.XYs {
	xys := make(plotter.XYs, 0, 4*len(upper))
	for i, v := range upper {
		xys = append(xys, plotter.XY{X: float64(i) * width, Y: v}, plotter.XY{X: float64(i+1) * width, Y: v})
	}
	for i := len(lower) - 1; i >= 0; i-- {
		xys = append(xys, plotter.XY{X: float64(i+1) * width, Y: lower[i]}, plotter.XY{X: float64(i) * width, Y: lower[i]})
	}
	return xys
}

// stepLabel is a group of steps' name on the picture, at x (seconds),
// line lines of text below the top, left of x when right is set.
type stepLabel struct {
	text  string
	x     float64
	line  int
	right bool
}

// stepLabels are the labels placed, and how many lines of text they take
// from the top.
type stepLabels struct {
	labels     []stepLabel
	lines      int
	lineHeight float64 // points
}

// placeLabels names each group of marks beside its dashed line, right of
// it (left when it would run past the end), on the first lines from the
// top where it overlaps no label placed before.
func placeLabels(groups [][]Mark, numbered bool, xmax float64) stepLabels {
	style := plot.New().Title.TextStyle
	style.Font = font.From(svgFont, vg.Points(svgLabelSize))
	perPoint := xmax / svgPlotWidth // seconds per point
	pad := 4 * perPoint
	type box struct {
		x0, x1       float64
		line0, line1 int
	}
	var placed []box
	out := stepLabels{lineHeight: float64(style.FontExtents().Height.Points())}
	for _, g := range groups {
		text := markLabel(g, numbered)
		if text == "" {
			continue
		}
		n := strings.Count(text, "\n") + 1
		w := float64(style.Width(text).Points()) * perPoint
		x := g[0].AtMS / 1000
		b := box{x0: x + pad, x1: x + pad + w}
		right := b.x1 > xmax
		if right {
			b = box{x0: x - pad - w, x1: x - pad}
		}
		for line := 0; ; line++ {
			b.line0, b.line1 = line, line+n
			clash := false
			for _, o := range placed {
				if b.x0 < o.x1+pad && o.x0 < b.x1+pad && b.line0 < o.line1 && o.line0 < b.line1 {
					clash = true
					break
				}
			}
			if !clash {
				break
			}
		}
		placed = append(placed, b)
		lx := b.x0
		if right {
			lx = b.x1
		}
		out.labels = append(out.labels, stepLabel{text: text, x: lx, line: b.line0, right: right})
		out.lines = max(out.lines, b.line1)
	}
	return out
}

// markLabel names the steps of a group of marks, a line each, in words:
// "password changed (setSecret)". With several rotations each line starts
// with the rotation's number: "#2 password changed (setSecret)". The time
// after a rotation that -aws follows (no finishSecret seen) reads
// "AWSCURRENT moved".
func markLabel(g []Mark, numbered bool) string {
	var lines []string
	finished := map[int]bool{}
	for _, m := range g {
		if m.Step == stepFinishSecret {
			finished[m.Rotation] = true
		}
	}
	for _, m := range g {
		text := stepWords[m.Step]
		if m.Step == stepAfter && !finished[m.Rotation] {
			text = "AWSCURRENT moved"
		}
		if text == "" {
			continue
		}
		if numbered && m.Rotation > 0 {
			text = fmt.Sprintf("#%d %s", m.Rotation, text)
		}
		lines = append(lines, text)
	}
	return strings.Join(lines, "\n")
}

// groupMarks groups consecutive marks (before left out) that start less
// than gap seconds after their group's first.
func groupMarks(marks []Mark, gap float64) [][]Mark {
	var groups [][]Mark
	for _, m := range marks {
		if m.Step == stepBefore {
			continue
		}
		if n := len(groups); n > 0 && (m.AtMS-groups[n-1][0].AtMS)/1000 < gap {
			groups[n-1] = append(groups[n-1], m)
			continue
		}
		groups = append(groups, []Mark{m})
	}
	return groups
}

// wholeTicks are gonum's default ticks without the fractional labels that
// counts do not have.
type wholeTicks struct{}

func (wholeTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	out := ticks[:0]
	for _, t := range ticks {
		if t.Value != math.Trunc(t.Value) {
			continue // a fraction of a query
		}
		if t.Label != "" {
			t.Label = fmt.Sprintf("%.0f", t.Value)
		}
		out = append(out, t)
	}
	return out
}

// fleetPanel draws the fleet drill's seconds: API calls per second
// against the quota, throttled calls, failed logins absorbed and
// application errors, with the steps marked; its legend is its own.
func fleetPanel(r *Report, d drawn) (*plot.Plot, error) {
	f := r.Fleet
	// The totals are in the rotatingmysql panel's title; this one says
	// how close the fleet came to the quota.
	p := plot.New()
	p.Title.Text = fmt.Sprintf("fleet: %d processes, %s; GetSecretValue quota %s/s\npeak %s %s/s (%.0f%% of the quota), %s throttled",
		f.Processes, fleetBehind(f), quotaText(f.Quota), thousands(f.PeakAPIRate), wordAPICalls, 100*float64(f.PeakAPIRate)/f.Quota, thousands(f.Throttled))
	p.Title.TextStyle.Font.Size = vg.Points(12)
	p.X.Label.Text = "seconds since the start"
	p.Y.Label.Text = "per second"
	ymax := f.Quota
	for _, s := range d.seconds {
		ymax = math.Max(ymax, float64(max(s.APIRequests, s.AppErrors, int(s.FailedLogins))))
	}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, d.xmax, 0, ymax*1.15
	p.Y.Tick.Marker = wholeTicks{}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.TextStyle.Font.Size = vg.Points(9)

	q, err := plotter.NewLine(plotter.XYs{{X: 0, Y: f.Quota}, {X: d.xmax, Y: f.Quota}})
	if err != nil {
		return nil, err
	}
	q.LineStyle.Color, q.LineStyle.Width, q.LineStyle.Dashes = colorQuota, vg.Points(1), []vg.Length{vg.Points(6), vg.Points(3)}
	p.Add(q)
	p.Legend.Add("quota", q)
	for _, sr := range []struct {
		label string
		val   func(FleetSecond) float64
		col   color.Color
	}{
		{wordAPICalls + " per second", func(s FleetSecond) float64 { return float64(s.APIRequests) }, colorAPI},
		{"throttled per second", func(s FleetSecond) float64 { return float64(s.Throttled) }, colorThrottl},
		{wordAbsorbed + " per second", func(s FleetSecond) float64 { return float64(s.FailedLogins) }, colorLogins},
		{wordAppErrors + " per second", func(s FleetSecond) float64 { return float64(s.AppErrors) }, colorErrors},
	} {
		if len(d.seconds) == 0 {
			break
		}
		xys := make(plotter.XYs, 0, len(d.seconds)+1)
		for _, s := range d.seconds {
			xys = append(xys, plotter.XY{X: math.Max(s.AtS, 0), Y: sr.val(s)})
		}
		last := d.seconds[len(d.seconds)-1]
		xys = append(xys, plotter.XY{X: last.AtS + 1, Y: sr.val(last)})
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.StepStyle = plotter.PostStep
		l.LineStyle.Color, l.LineStyle.Width = sr.col, vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(sr.label, l)
	}
	for _, g := range groupMarks(d.marks, d.xmax*0.02) {
		x := g[0].AtMS / 1000
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: ymax * 1.15}})
		if err != nil {
			return nil, err
		}
		l.LineStyle.Color, l.LineStyle.Dashes = colorMark, []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
	}
	return p, nil
}
