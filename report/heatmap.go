package report

import (
	"fmt"
	"image"
	"image/color"
	imagedraw "image/draw"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"attnaudit/metrics"
)

// Colours for cells the colour scale does not cover.
var (
	nanColor       = color.NRGBA{0xb0, 0xb0, 0xb0, 255}
	overflowColor  = color.NRGBA{0xe0, 0x20, 0x20, 255}
	underflowColor = color.NRGBA{0x20, 0x40, 0xe0, 255}
)

// cellRaster draws a Matrix as a heatmap with query row 0 at the top. It
// paints the cells straight into the canvas's pixels, where gonum's vector
// HeatMap fills one path per cell: on a real run's long sentences that was
// most of the report stage's time, for the same picture. The data range is
// -0.5..Cols-0.5 by -0.5..Rows-0.5, a cell per integer, and labelTicks
// numbers the query rows from the top to match.
type cellRaster struct {
	m      metrics.Matrix
	scale  []color.NRGBA // the colour scale in steps, lo to hi
	lo, hi float64
}

func (cr cellRaster) DataRange() (xmin, xmax, ymin, ymax float64) {
	return -0.5, float64(cr.m.Cols) - 0.5, -0.5, float64(cr.m.Rows) - 0.5
}

// scaleColor is the colour of v on a scale of steps from lo to hi: NaN
// grey, out-of-range values in the under- and overflow colours.
func scaleColor(scale []color.NRGBA, lo, hi, v float64) color.NRGBA {
	switch {
	case math.IsNaN(v):
		return nanColor
	case v < lo:
		return underflowColor
	case v > hi:
		return overflowColor
	}
	return scale[int((v-lo)/(hi-lo)*float64(len(scale)-1)+0.5)]
}

// pixelCanvas is a raster canvas (vgimg's) whose pixels cellRaster can set
// directly: scaling an image onto it goes through a bilinear kernel, which
// costs more than every other part of a figure and blurs the cell edges.
type pixelCanvas interface {
	Image() imagedraw.Image
	DPI() float64
}

// rasterOf finds the raster canvas under c's layers of cropping.
func rasterOf(c draw.Canvas) (pixelCanvas, bool) {
	var cv vg.Canvas = c
	for {
		switch v := cv.(type) {
		case pixelCanvas:
			return v, true
		case draw.Canvas:
			cv = v.Canvas
		default:
			return nil, false
		}
	}
}

func (cr cellRaster) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	rect := vg.Rectangle{
		Min: vg.Point{X: tx(-0.5), Y: ty(-0.5)},
		Max: vg.Point{X: tx(float64(cr.m.Cols) - 0.5), Y: ty(float64(cr.m.Rows) - 0.5)},
	}
	colors := make([]color.NRGBA, len(cr.m.Data))
	for i, v := range cr.m.Data {
		colors[i] = scaleColor(cr.scale, cr.lo, cr.hi, float64(v))
	}
	paintCells(c, rect, colors, cr.m.Cols, cr.m.Rows)
}

// paintCells fills rect with a cols × rows grid of colours, row 0 at the
// top, pixel by pixel on a raster canvas and as an image elsewhere.
func paintCells(c draw.Canvas, rect vg.Rectangle, colors []color.NRGBA, cols, rows int) {
	pc, ok := rasterOf(c)
	if !ok {
		img := image.NewNRGBA(image.Rect(0, 0, cols, rows))
		for i, col := range colors {
			img.SetNRGBA(i%cols, i/cols, col)
		}
		c.DrawImage(rect, img)
		return
	}
	// vgimg's y axis points down from the top edge of the image.
	dst, dpi := pc.Image(), pc.DPI()
	top := dst.Bounds().Max.Y
	dots := func(l vg.Length) int { return int(math.Round(l.Dots(dpi))) }
	x0, x1 := dots(rect.Min.X), dots(rect.Max.X)
	y0, y1 := top-dots(rect.Max.Y), top-dots(rect.Min.Y)
	w, h := max(1, x1-x0), max(1, y1-y0)
	rgba, fast := dst.(*image.RGBA)
	fast = fast && image.Rect(x0, y0, x0+w, y0+h).In(rgba.Bounds())
	for y := range h {
		r := min(rows-1, y*rows/h)
		for x := range w {
			col := colors[r*cols+min(cols-1, x*cols/w)]
			if !fast {
				dst.Set(x0+x, y0+y, col)
				continue
			}
			// The scale's colours are opaque, so NRGBA is RGBA.
			o := rgba.PixOffset(x0+x, y0+y)
			rgba.Pix[o], rgba.Pix[o+1], rgba.Pix[o+2], rgba.Pix[o+3] = col.R, col.G, col.B, col.A
		}
	}
}

// scaleRange is the colour scale of matrices: from 0 (attention is a
// probability) to the largest finite weight, or 0..1 when there is none
// above 0 (an all-zero matrix from a broken mask).
func scaleRange(ms ...metrics.Matrix) (lo, hi float64) {
	for _, m := range ms {
		for _, v := range m.Data {
			f := float64(v)
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				lo, hi = math.Min(lo, f), math.Max(hi, f)
			}
		}
	}
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

// labelTicks puts one label per integer position, every step-th one when
// the cells are too small for all; flip numbers them from the top.
func labelTicks(labels []string, step int, flip bool) plot.ConstantTicks {
	n := len(labels)
	var ticks []plot.Tick
	for i, l := range labels {
		pos := i
		if flip {
			pos = n - 1 - i
		}
		if i%step != 0 {
			l = ""
		}
		ticks = append(ticks, plot.Tick{Value: float64(pos), Label: l})
	}
	return ticks
}

// heatmapPlot is one attention heatmap without a colour bar.
type heatmapPlot struct {
	m              metrics.Matrix
	xLabels        []string // keys
	yLabels        []string // queries
	title          string
	xTitle, yTitle string
	lo, hi         float64
	xTick, yTick   vg.Length // label font sizes
	cellW, cellH   vg.Length // drawn size of one cell, to thin labels; 0: keep all
	xRotation      float64   // of the key labels: 0, π/4 or π/2
}

func (th *theme) checkLabels(m metrics.Matrix, xLabels, yLabels []string) error {
	if m.Rows == 0 || m.Cols == 0 {
		return fmt.Errorf("empty attention matrix (%d×%d)", m.Rows, m.Cols)
	}
	if len(m.Data) != m.Rows*m.Cols {
		return fmt.Errorf("attention matrix %d×%d holds %d weights", m.Rows, m.Cols, len(m.Data))
	}
	if len(xLabels) != m.Cols || len(yLabels) != m.Rows {
		return fmt.Errorf("attention matrix is %d×%d but there are %d query and %d key labels", m.Rows, m.Cols, len(yLabels), len(xLabels))
	}
	return nil
}

func (th *theme) labels(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = th.fonts.label(l)
	}
	return out
}

// plot builds the gonum plot of h.
func (th *theme) heatmap(h heatmapPlot) *plot.Plot {
	p := th.newPlot(h.title)
	p.Add(cellRaster{m: h.m, scale: th.scale, lo: h.lo, hi: h.hi})
	p.X.Label.Text, p.Y.Label.Text = h.xTitle, h.yTitle
	p.X.Tick.Label.Font.Size, p.Y.Tick.Label.Font.Size = h.xTick, h.yTick
	step := func(cell, tick vg.Length) int {
		if cell > 0 && cell < tick*1.1 {
			return int(math.Ceil(float64(tick * 1.1 / cell)))
		}
		return 1
	}
	p.X.Tick.Marker = labelTicks(th.labels(h.xLabels), step(h.cellW, h.xTick), false)
	p.Y.Tick.Marker = labelTicks(th.labels(h.yLabels), step(h.cellH, h.yTick), true)
	p.X.Tick.Label.Rotation = h.xRotation
	if h.xRotation == 0 {
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XCenter, draw.YTop
	} else {
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	}
	p.X.Padding, p.Y.Padding = 0, 0
	p.X.Tick.Length, p.Y.Tick.Length = vg.Points(2), vg.Points(2)
	return p
}

// maxLabelWidth is the widest drawn label at size.
func (th *theme) maxLabelWidth(labels []string, size vg.Length) vg.Length {
	var w vg.Length
	for _, l := range labels {
		w = max(w, th.textWidth(th.fonts.label(l), size))
	}
	return w
}

const colorbarWidth = 0.85 * vg.Inch

// drawColorbar draws a vertical colour bar for [lo, hi] with labelled ticks
// beside the data area da, in the strip of dc to the right of it.
func (th *theme) drawColorbar(dc draw.Canvas, da vg.Rectangle, lo, hi float64) {
	x0 := da.Max.X + 0.12*vg.Inch
	bar := vg.Rectangle{Min: vg.Point{X: x0, Y: da.Min.Y}, Max: vg.Point{X: x0 + 0.14*vg.Inch, Y: da.Max.Y}}
	steps := make([]color.NRGBA, len(th.scale))
	for i, c := range th.scale {
		steps[len(steps)-1-i] = c
	}
	paintCells(dc, bar, steps, 1, len(steps))
	dc.SetLineWidth(vg.Points(0.5))
	dc.SetColor(color.Black)
	dc.Stroke(bar.Path())
	sty := th.style(7)
	sty.YAlign = draw.YCenter
	for _, t := range (plot.DefaultTicks{}).Ticks(lo, hi) {
		if t.Label == "" || t.Value < lo || t.Value > hi {
			continue
		}
		y := bar.Min.Y + vg.Length((t.Value-lo)/(hi-lo))*(bar.Max.Y-bar.Min.Y)
		dc.StrokeLine2(draw.LineStyle{Color: color.Black, Width: vg.Points(0.5)}, bar.Max.X, y, bar.Max.X+vg.Points(3), y)
		dc.FillText(sty, vg.Point{X: bar.Max.X + vg.Points(5), Y: y}, t.Label)
	}
}

// tokenLayout is how a heatmap's tokens are drawn: the size of a cell, of
// the tick labels, and the key labels' rotation, with the height they take.
type tokenLayout struct {
	cellW, cellH vg.Length
	xTick, yTick vg.Length
	rotation     float64
	xh, yw       vg.Length // key labels' drawn height, query labels' width
}

// layoutTokens sizes the cells of a cols × rows heatmap so its data area
// stays within maxData a side (long sentences get smaller cells, not larger
// figures), at most maxCell each; width and height are sized apart, so a
// short source keeps cells wide enough for its labels however long the
// translation. Labels shrink with the cells between minTick and maxTick,
// and every label is kept while it fits (labelTicks thins them past that).
// Key labels are written horizontally when the widest fits in a cell, else
// at 45° (which reads better than upright Hangul) when the cells leave a
// line's room between slanted labels, else upright.
func (th *theme) layoutTokens(cols, rows int, xLabels, yLabels []string, maxCell, maxData, minTick, maxTick vg.Length) tokenLayout {
	l := tokenLayout{cellW: min(maxCell, maxData/vg.Length(cols)), cellH: min(maxCell, maxData/vg.Length(rows))}
	l.xTick = max(minTick, min(maxTick, l.cellW*0.8))
	l.yTick = max(minTick, min(maxTick, l.cellH*0.8))
	xw := th.maxLabelWidth(xLabels, l.xTick)
	l.yw = th.maxLabelWidth(yLabels, l.yTick)
	if slanted := max(minTick, l.cellW*math.Sqrt2/2/1.2); xw > l.cellW*0.9 && slanted < l.xTick {
		// Slightly smaller labels that fit at 45° read better than upright ones.
		l.xTick, xw = slanted, th.maxLabelWidth(xLabels, slanted)
	}
	switch {
	case xw <= l.cellW*0.9:
		l.xh = l.xTick * 1.2
	case l.cellW*math.Sqrt2/2 >= l.xTick*1.2:
		// At 45° neighbouring labels are cell·sin 45° apart: room for a line.
		l.rotation = math.Pi / 4
		l.xh = (xw + l.xTick) * vg.Length(math.Sqrt2/2)
	default:
		l.rotation = math.Pi / 2
		l.xh = xw
	}
	return l
}

// attentionFigure is one heatmap with its colour bar, sized from the token
// counts unless PlotOptions fix the size.
func (th *theme) attentionFigure(m metrics.Matrix, xLabels, yLabels []string, title, xTitle, yTitle string) (figure, error) {
	if err := th.checkLabels(m, xLabels, yLabels); err != nil {
		return figure{}, err
	}
	lo, hi := scaleRange(m)
	lay := th.layoutTokens(m.Cols, m.Rows, xLabels, yLabels, 0.26*vg.Inch, 6*vg.Inch, 5.5, 8)
	yw, xh := lay.yw, lay.xh
	minW := float64(th.textWidth(th.fonts.label(title), 11))/vg.Inch.Points() + 0.4
	w := clampInches(max(minW, float64(yw+lay.cellW*vg.Length(m.Cols)+colorbarWidth)/vg.Inch.Points()+0.5), 3.5, maxInches)
	h := clampInches(float64(xh+lay.cellH*vg.Length(m.Rows))/vg.Inch.Points()+0.75, 2.5, maxInches)
	if th.opts.PlotWidth > 0 {
		w = vg.Length(th.opts.PlotWidth) * vg.Inch
	}
	if th.opts.PlotHeight > 0 {
		h = vg.Length(th.opts.PlotHeight) * vg.Inch
	}
	p := th.heatmap(heatmapPlot{m: m, xLabels: xLabels, yLabels: yLabels, title: title, xTitle: xTitle, yTitle: yTitle,
		lo: lo, hi: hi, xTick: lay.xTick, yTick: lay.yTick, xRotation: lay.rotation,
		cellW: (w - yw - colorbarWidth - 0.5*vg.Inch) / vg.Length(m.Cols), cellH: (h - xh - 0.75*vg.Inch) / vg.Length(m.Rows)})
	p.Title.Text = ""
	return figure{w: w, h: h, draw: func(dc draw.Canvas) {
		dc = th.drawTitle(dc, title, 11)
		main := draw.Crop(dc, vg.Points(4), -colorbarWidth, vg.Points(4), 0)
		p.Draw(main)
		th.drawColorbar(dc, p.DataCanvas(main).Rectangle, lo, hi)
	}}, nil
}

// headGridFigure draws every head of one layer in a grid of at most four
// columns (2×4 for 8 heads) on one shared colour scale.
func (th *theme) headGridFigure(heads []metrics.Matrix, xLabels, yLabels []string, title, xTitle, yTitle string) (figure, error) {
	if len(heads) == 0 {
		return figure{}, fmt.Errorf("no heads to draw")
	}
	for i, m := range heads {
		if err := th.checkLabels(m, xLabels, yLabels); err != nil {
			return figure{}, fmt.Errorf("head %d: %w", i, err)
		}
	}
	cols := min(4, len(heads))
	rows := (len(heads) + cols - 1) / cols
	lo, hi := scaleRange(heads...)
	m0 := heads[0]
	lay := th.layoutTokens(m0.Cols, m0.Rows, xLabels, yLabels, 0.14*vg.Inch, 2.4*vg.Inch, 4.5, 6)
	yw, xh := lay.yw, lay.xh
	tileW := lay.cellW*vg.Length(m0.Cols) + 0.15*vg.Inch
	tileH := lay.cellH*vg.Length(m0.Rows) + 0.3*vg.Inch
	const suptitle = 0.4 * vg.Inch
	minW := float64(th.textWidth(th.fonts.label(title), 11))/vg.Inch.Points() + 0.4
	w := clampInches(max(minW, float64(yw+tileW*vg.Length(cols)+colorbarWidth)/vg.Inch.Points()+0.6), 5, maxInches)
	h := clampInches(float64(xh+tileH*vg.Length(rows)+suptitle)/vg.Inch.Points()+0.6, 3, maxInches)
	if th.opts.PlotWidth > 0 {
		w = vg.Length(th.opts.PlotWidth) * vg.Inch * vg.Length(cols) / 2
	}
	if th.opts.PlotHeight > 0 {
		h = vg.Length(th.opts.PlotHeight) * vg.Inch * vg.Length(rows) / 2
	}
	cellW := (w - yw - colorbarWidth - 0.6*vg.Inch) / vg.Length(cols*m0.Cols)
	cellH := (h - xh - suptitle - 0.6*vg.Inch) / vg.Length(rows*m0.Rows)
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
		for c := range plots[r] {
			i := r*cols + c
			if i >= len(heads) {
				continue
			}
			hp := heatmapPlot{m: heads[i], xLabels: xLabels, yLabels: yLabels, title: "head " + strconv.Itoa(i),
				lo: lo, hi: hi, xTick: lay.xTick, yTick: lay.yTick, cellW: cellW, cellH: cellH, xRotation: lay.rotation}
			p := th.heatmap(hp)
			p.Title.TextStyle.Font.Size = 8
			if c != 0 {
				p.Y.Tick.Marker = labelTicks(make([]string, m0.Rows), 1, true)
			}
			if r != rows-1 && i+cols < len(heads) {
				p.X.Tick.Marker = labelTicks(make([]string, m0.Cols), 1, false)
			}
			plots[r][c] = p
		}
	}
	return figure{w: w, h: h, draw: func(dc draw.Canvas) {
		th.drawTitle(dc, title, 11)
		axisSty := th.style(9)
		axisSty.XAlign, axisSty.YAlign = draw.XCenter, draw.YBottom
		dc.FillText(axisSty, vg.Point{X: dc.Center().X, Y: dc.Min.Y + vg.Points(3)}, xTitle)
		axisSty.Rotation = math.Pi / 2
		axisSty.YAlign = draw.YTop // rotated a quarter turn, the text's top faces left
		dc.FillText(axisSty, vg.Point{X: dc.Min.X + vg.Points(3), Y: dc.Center().Y}, yTitle)
		pad := axisSty.Height(yTitle) + vg.Points(6)
		area := draw.Crop(dc, pad, -colorbarWidth, pad, -suptitle)
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: 0.12 * vg.Inch, PadY: 0.1 * vg.Inch}
		canvases := plot.Align(plots, tiles, area)
		var da vg.Rectangle
		for r := range plots {
			for c, p := range plots[r] {
				if p == nil {
					continue
				}
				p.Draw(canvases[r][c])
				d := p.DataCanvas(canvases[r][c]).Rectangle
				if r == 0 && c == 0 {
					da = d
				}
				da.Max.X = max(da.Max.X, d.Max.X)
				da.Min.Y = min(da.Min.Y, d.Min.Y)
			}
		}
		th.drawColorbar(dc, da, lo, hi)
	}}, nil
}

// cellValues writes each cell's value on a grid of small matrices (layer ×
// head metrics), black on light cells and white on dark ones.
type cellValues struct {
	th     *theme
	m      metrics.Matrix
	cm     palette.ColorMap
	format string
}

func (cv cellValues) Plot(c draw.Canvas, p *plot.Plot) {
	tx, ty := p.Transforms(&c)
	sty := cv.th.style(6.5)
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	for r := range cv.m.Rows {
		for col := range cv.m.Cols {
			v := float64(cv.m.At(r, col))
			if math.IsNaN(v) {
				continue
			}
			sty.Color = color.Black
			if bg, err := cv.cm.At(math.Max(cv.cm.Min(), math.Min(cv.cm.Max(), v))); err == nil && luminance(bg) < 0.45 {
				sty.Color = color.White
			}
			pt := vg.Point{X: tx(float64(col)), Y: ty(float64(cv.m.Rows - 1 - r))}
			c.FillText(sty, pt, fmt.Sprintf(cv.format, v))
		}
	}
}

func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	return (0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(b)) / 0xffff
}

// metricGridFigure draws a layer × head table of one metric, layers top to
// bottom, with values written in the cells. A [lo, hi] of NaN takes the
// data's range.
func (th *theme) metricGridFigure(m metrics.Matrix, title string, lo, hi float64) (figure, error) {
	if m.Rows == 0 || m.Cols == 0 {
		return figure{}, fmt.Errorf("%s: no layers or heads", title)
	}
	if math.IsNaN(lo) || math.IsNaN(hi) {
		lo, hi = math.Inf(1), math.Inf(-1)
		for _, v := range m.Data {
			f := float64(v)
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				lo, hi = math.Min(lo, f), math.Max(hi, f)
			}
		}
		if math.IsInf(lo, 0) {
			lo, hi = 0, 1
		}
		if hi <= lo {
			hi = lo + 1
		}
	}
	xl := make([]string, m.Cols)
	for i := range xl {
		xl[i] = "h" + strconv.Itoa(i)
	}
	yl := make([]string, m.Rows)
	for i := range yl {
		yl[i] = "L" + strconv.Itoa(i)
	}
	p := th.heatmap(heatmapPlot{m: m, xLabels: xl, yLabels: yl, title: title, lo: lo, hi: hi, xTick: 7, yTick: 7})
	p.Title.TextStyle.Font.Size = 9
	p.Add(cellValues{th: th, m: m, cm: colormap(th.opts.Colormap, lo, hi), format: "%.2f"})
	cell := 0.34 * vg.Inch
	w := 0.45*vg.Inch + cell*vg.Length(m.Cols) + colorbarWidth
	h := 0.55*vg.Inch + cell*vg.Length(m.Rows)
	p.Title.Text = ""
	return figure{w: max(w, th.textWidth(title, 9)+0.3*vg.Inch), h: h + 0.1*vg.Inch, draw: func(dc draw.Canvas) {
		dc = th.drawTitle(dc, title, 9)
		main := draw.Crop(dc, vg.Points(3), -colorbarWidth, vg.Points(3), 0)
		p.Draw(main)
		th.drawColorbar(dc, p.DataCanvas(main).Rectangle, lo, hi)
	}}, nil
}

// drawTitle writes title centred across the top of dc and returns the rest.
func (th *theme) drawTitle(dc draw.Canvas, title string, size vg.Length) draw.Canvas {
	sty := th.style(size)
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
	dc.FillText(sty, vg.Point{X: dc.Center().X, Y: dc.Max.Y - vg.Points(4)}, th.fonts.label(title))
	return draw.Crop(dc, 0, 0, 0, -(sty.Height(title) + vg.Points(8)))
}
