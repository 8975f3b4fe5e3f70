package report

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series is one line of a line plot. NaN points are left out.
type series struct {
	name string
	x, y []float64
}

// linesFigure draws one line per series (one per layer in compare.html)
// against the runs' epochs or steps, with the points marked so a single run
// still shows. Ticks marks the x positions with run names when given.
func (th *theme) linesFigure(title, xTitle, yTitle string, ss []series, ticks []plot.Tick) (figure, error) {
	p := th.newPlot(title)
	p.X.Label.Text, p.Y.Label.Text = xTitle, yTitle
	// The legend goes in a strip right of the plot, where it cannot hide a
	// line; a single series needs none.
	legend := plot.NewLegend()
	legend.TextStyle = th.style(8)
	legend.Top, legend.Left = true, true
	legend.Padding = vg.Points(2)
	var legendW vg.Length
	p.Add(plotter.NewGrid())
	points := 0
	for i, s := range ss {
		if len(s.x) != len(s.y) {
			return figure{}, fmt.Errorf("%s: series %s has %d x and %d y values", title, s.name, len(s.x), len(s.y))
		}
		var xys plotter.XYs
		for k := range s.x {
			if !math.IsNaN(s.y[k]) && !math.IsInf(s.y[k], 0) {
				xys = append(xys, plotter.XY{X: s.x[k], Y: s.y[k]})
			}
		}
		if len(xys) == 0 {
			continue
		}
		points += len(xys)
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return figure{}, fmt.Errorf("%s: %w", title, err)
		}
		c := lineColor(i)
		line.Color = c
		line.Width = vg.Points(1.3)
		pts.Color = c
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(2)
		p.Add(line, pts)
		legend.Add(s.name, line, pts)
		legendW = max(legendW, th.textWidth(s.name, 8))
	}
	if points == 0 {
		p.Add(emptyNote{th: th, text: "no values"})
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	}
	if len(ticks) > 0 {
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
	}
	widenFlatRange(&p.Y)
	widenFlatRange(&p.X)
	if len(ss) < 2 {
		legendW = 0
	} else {
		legendW += legend.ThumbnailWidth + vg.Points(14)
	}
	return figure{w: 4.6*vg.Inch + legendW, h: 2.8 * vg.Inch, draw: func(dc draw.Canvas) {
		p.Draw(draw.Crop(dc, vg.Points(3), -legendW-vg.Points(6), vg.Points(3), -vg.Points(3)))
		if legendW > 0 {
			legend.Draw(draw.Crop(dc, dc.Size().X-legendW, 0, 0, -vg.Points(22)))
		}
	}}, nil
}

// widenFlatRange gives a constant series some room, so its line is drawn
// mid-plot instead of on the frame.
func widenFlatRange(a *plot.Axis) {
	if a.Max-a.Min < 1e-9 && !math.IsInf(a.Min, 0) {
		pad := math.Max(math.Abs(a.Min)*0.05, 0.05)
		a.Min, a.Max = a.Min-pad, a.Max+pad
	}
}

// emptyNote says in the middle of a plot that there is nothing to draw.
type emptyNote struct {
	th   *theme
	text string
}

func (e emptyNote) Plot(c draw.Canvas, _ *plot.Plot) {
	sty := e.th.style(9)
	sty.Color = color.Gray{Y: 0x70}
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	c.FillText(sty, c.Center(), e.text)
}
