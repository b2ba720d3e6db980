package main

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

var (
	colorQueries = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorErrors  = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorWindow  = color.NRGBA{R: 0xff, G: 0xa5, B: 0x00, A: 0x40}
	colorMark    = color.Gray{Y: 0x70}
	colorAPI     = color.NRGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colorThrottl = color.NRGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colorLogins  = color.NRGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	colorQuota   = color.Black
)

// Layout of the timeline, in inches.
const (
	svgWidth       = 11
	svgPanelHeight = 3.2
	svgLegend      = 0.75
	// svgHeadroom is the share of each panel above the highest bar, where
	// the step labels go.
	svgHeadroom = 0.35
	// svgLabelRows is how many rows the step labels are staggered over.
	svgLabelRows = 3
)

// shortStep is how a step is labelled on the timeline.
var shortStep = map[string]string{
	stepCreateSecret: "create", stepSetSecret: "set", stepTestSecret: "test", stepWindow: "window",
	stepFinishSecret: "finish", stepAfter: "after", stepRequested: "RotateSecret", stepPending: "AWSPENDING",
}

// writeSVG draws the report's timeline with gonum.org/v1/plot: one panel
// per driver with successful queries and errors per bucket, the window
// shaded, the steps marked, and the legend in a strip at the bottom.
func writeSVG(path string, r *Report) error {
	n := len(r.Timeline.Series)
	if r.Fleet != nil {
		n++ // the fleet's panel, below the queries
	}
	height := vg.Length(svgPanelHeight*float64(n)+svgLegend) * vg.Inch
	ymax := 1.0
	for _, s := range r.Timeline.Series {
		for i := range s.Queries {
			ymax = math.Max(ymax, float64(max(s.Queries[i], s.Errors[i])))
		}
	}
	ymax /= 1 - svgHeadroom
	xmax := r.ElapsedMS / 1000

	legend := plot.NewLegend()
	legend.Left, legend.Top = true, true
	legend.TextStyle.Font.Size = vg.Points(10)
	legend.Padding = vg.Points(3)
	var plots [][]*plot.Plot
	for i, s := range r.Timeline.Series {
		p, err := panel(r, s, xmax, ymax, i == 0, &legend)
		if err != nil {
			return err
		}
		plots = append(plots, []*plot.Plot{p})
	}
	if r.Fleet != nil {
		p, err := fleetPanel(r, xmax)
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
	canvases := plot.Align(plots, tiles, panels)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	legend.Draw(draw.Crop(dc, 0.8*vg.Inch, 0, 0.05*vg.Inch, -(height - legendH + 0.05*vg.Inch)))

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	_, err = c.WriteTo(w)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// panel draws one driver's series; the first panel adds the legend's
// entries and carries the step labels.
func panel(r *Report, s Series, xmax, ymax float64, first bool, legend *plot.Legend) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = s.Driver
	if s.Driver == driverPlain {
		p.Title.Text = "go-sql-driver/mysql, password read once at start"
	}
	if first {
		p.Title.Text = fmt.Sprintf("rotation-drill: %s, %s\n\n%s", strategyText(r.Strategy), r.Target, p.Title.Text)
	}
	p.X.Label.Text = "seconds since the start"
	p.Y.Label.Text = fmt.Sprintf("per %.0f ms", r.Timeline.BucketMS)
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, xmax, 0, ymax
	p.Y.Tick.Marker = wholeTicks{}
	p.Add(plotter.NewGrid())

	// The window: each step in which the old password no longer works.
	shaded := false
	for i, m := range r.Marks {
		if !brokenSteps[m.Step] {
			continue
		}
		start, end := m.AtMS/1000, xmax
		if i+1 < len(r.Marks) {
			end = r.Marks[i+1].AtMS / 1000
		}
		poly, err := plotter.NewPolygon(plotter.XYs{{X: start, Y: 0}, {X: end, Y: 0}, {X: end, Y: ymax}, {X: start, Y: ymax}})
		if err != nil {
			return nil, err
		}
		poly.Color, poly.LineStyle.Width = colorWindow, 0
		p.Add(poly)
		if first && !shaded {
			text := "rotation window: the database has the new password, AWSCURRENT still the old one"
			if r.Strategy == "multi" {
				text = "rotation window: the new user has its password; the previous user still logs in"
			}
			legend.Add(text, poly)
		}
		shaded = true
	}

	for _, sr := range []struct {
		label string
		data  []int
		col   color.Color
	}{
		{"successful queries per bucket", s.Queries, colorQueries},
		{"errors per bucket", s.Errors, colorErrors},
	} {
		if len(sr.data) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(sr.data)+1)
		for i, v := range sr.data {
			xys[i] = plotter.XY{X: float64(i) * r.Timeline.BucketMS / 1000, Y: float64(v)}
		}
		xys[len(sr.data)] = plotter.XY{X: xmax, Y: xys[len(sr.data)-1].Y}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.StepStyle = plotter.PostStep
		l.LineStyle.Color, l.LineStyle.Width = sr.col, vg.Points(1.2)
		p.Add(l)
		if first {
			legend.Add(sr.label, l)
		}
	}

	// Step marks; marks closer than 2% of the axis share one label.
	var labels plotter.XYLabels
	for gi, g := range groupMarks(r.Marks, xmax*0.02) {
		x := g[0].AtMS / 1000
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: ymax}})
		if err != nil {
			return nil, err
		}
		l.LineStyle.Color, l.LineStyle.Dashes = colorMark, []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		text := markLabel(g, r.Rotations > 1)
		row := float64(gi % svgLabelRows)
		labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: ymax * (0.97 - row*svgHeadroom/(svgLabelRows+0.5))})
		labels.Labels = append(labels.Labels, text)
	}
	if first && len(labels.XYs) > 0 {
		lb, err := plotter.NewLabels(labels)
		if err != nil {
			return nil, err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign, lb.TextStyle[i].YAlign = draw.XLeft, draw.YTop
			lb.TextStyle[i].Font.Size = vg.Points(8)
		}
		lb.Offset = vg.Point{X: vg.Points(2)}
		p.Add(lb)
	}
	return p, nil
}

// markLabel names the steps of a group of marks, each rotation's steps
// after its number when there are several rotations: "#1 finish, #2
// create/set/test/window".
func markLabel(g []Mark, numbered bool) string {
	var parts []string
	var names []string
	rotation := g[0].Rotation
	flush := func() {
		text := strings.Join(names, "/")
		if numbered && rotation > 0 {
			text = fmt.Sprintf("#%d %s", rotation, text)
		}
		parts = append(parts, text)
		names = nil
	}
	for _, m := range g {
		if m.Rotation != rotation {
			flush()
			rotation = m.Rotation
		}
		names = append(names, shortStep[m.Step])
	}
	flush()
	return strings.Join(parts, ", ")
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

// fleetPanel draws the fleet drill's seconds: GetSecretValue requests per
// second against the quota, throttled requests, failed logins and
// application errors, with the steps marked; its legend is its own.
func fleetPanel(r *Report, xmax float64) (*plot.Plot, error) {
	f := r.Fleet
	p := plot.New()
	p.Title.Text = fmt.Sprintf("fleet: %d processes, %s; GetSecretValue quota %s/s", f.Processes, fleetBehind(f), quotaText(f.Quota))
	p.X.Label.Text = "seconds since the start"
	p.Y.Label.Text = "per second"
	ymax := f.Quota
	for _, s := range f.Seconds {
		ymax = math.Max(ymax, float64(max(s.APIRequests, s.AppErrors, int(s.FailedLogins))))
	}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, xmax, 0, ymax*1.15
	p.Y.Tick.Marker = wholeTicks{}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.TextStyle.Font.Size = vg.Points(9)

	q, err := plotter.NewLine(plotter.XYs{{X: 0, Y: f.Quota}, {X: xmax, Y: f.Quota}})
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
		{"API requests", func(s FleetSecond) float64 { return float64(s.APIRequests) }, colorAPI},
		{"throttled", func(s FleetSecond) float64 { return float64(s.Throttled) }, colorThrottl},
		{"failed logins", func(s FleetSecond) float64 { return float64(s.FailedLogins) }, colorLogins},
		{"application errors", func(s FleetSecond) float64 { return float64(s.AppErrors) }, colorErrors},
	} {
		if len(f.Seconds) == 0 {
			break
		}
		xys := make(plotter.XYs, 0, len(f.Seconds)+1)
		for _, s := range f.Seconds {
			xys = append(xys, plotter.XY{X: math.Max(s.AtS, 0), Y: sr.val(s)})
		}
		xys = append(xys, plotter.XY{X: xmax, Y: xys[len(xys)-1].Y})
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.StepStyle = plotter.PostStep
		l.LineStyle.Color, l.LineStyle.Width = sr.col, vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(sr.label, l)
	}
	for _, g := range groupMarks(r.Marks, xmax*0.02) {
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
