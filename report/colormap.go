package report

import (
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
)

// colormaps maps each --colormap name to a constructor. Viridis and magma
// are perceptually uniform and read in grey print; blues and greys are
// ColorBrewer's sequential ramps; kindlmann and blackbody are Moreland's,
// from gonum.
var colormaps = map[string]func() palette.ColorMap{
	"viridis":   func() palette.ColorMap { return newLUT(viridis) },
	"magma":     func() palette.ColorMap { return newLUT(magma) },
	"blues":     func() palette.ColorMap { return newLUT(blues) },
	"greys":     func() palette.ColorMap { return newLUT(greys) },
	"kindlmann": moreland.Kindlmann,
	"blackbody": moreland.BlackBody,
}

// Colormaps returns the colormap names, sorted.
func Colormaps() []string {
	names := make([]string, 0, len(colormaps))
	for n := range colormaps {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Control points sampled evenly from matplotlib's viridis and magma
// (CC0) and ColorBrewer's Blues and Greys (Apache 2.0).
var (
	viridis = []uint32{0x440154, 0x482878, 0x3e4a89, 0x31688e, 0x26828e, 0x1f9e89, 0x35b779, 0x6ece58, 0xfde725}
	magma   = []uint32{0x000004, 0x1c1044, 0x4f127b, 0x812581, 0xb5367a, 0xe55064, 0xfb8761, 0xfec287, 0xfcfdbf}
	blues   = []uint32{0xf7fbff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6, 0x4292c6, 0x2171b5, 0x08519c, 0x08306b}
	greys   = []uint32{0xffffff, 0xf0f0f0, 0xd9d9d9, 0xbdbdbd, 0x969696, 0x737373, 0x525252, 0x252525, 0x000000}
)

// lut is a palette.ColorMap that interpolates linearly between evenly
// spaced control colours.
type lut struct {
	stops    []color.NRGBA
	min, max float64
	alpha    float64
}

func newLUT(hex []uint32) *lut {
	l := &lut{max: 1, alpha: 1}
	for _, h := range hex {
		l.stops = append(l.stops, color.NRGBA{R: uint8(h >> 16), G: uint8(h >> 8), B: uint8(h), A: 255})
	}
	return l
}

func (l *lut) At(v float64) (color.Color, error) {
	if math.IsNaN(v) || v < l.min || v > l.max {
		return nil, fmt.Errorf("colormap: value %g outside [%g, %g]", v, l.min, l.max)
	}
	f := 0.0
	if l.max > l.min {
		f = (v - l.min) / (l.max - l.min)
	}
	pos := f * float64(len(l.stops)-1)
	i := min(int(pos), len(l.stops)-2)
	t := pos - float64(i)
	a, b := l.stops[i], l.stops[i+1]
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x)*(1-t) + float64(y)*t)) }
	return color.NRGBA{R: mix(a.R, b.R), G: mix(a.G, b.G), B: mix(a.B, b.B), A: uint8(math.Round(255 * l.alpha))}, nil
}

func (l *lut) Max() float64     { return l.max }
func (l *lut) Min() float64     { return l.min }
func (l *lut) SetMax(v float64) { l.max = v }
func (l *lut) SetMin(v float64) { l.min = v }
func (l *lut) Alpha() float64   { return l.alpha }
func (l *lut) SetAlpha(a float64) {
	if a < 0 || a > 1 {
		panic(fmt.Sprintf("colormap: alpha %g outside [0, 1]", a))
	}
	l.alpha = a
}

func (l *lut) Palette(n int) palette.Palette {
	cs := make(colorList, n)
	for i := range cs {
		v := l.min
		if n > 1 {
			v += (l.max - l.min) * float64(i) / float64(n-1)
		}
		cs[i], _ = l.At(v)
	}
	return cs
}

type colorList []color.Color

func (c colorList) Colors() []color.Color { return c }

// colormap returns a fresh ColorMap spanning [lo, hi].
func colormap(name string, lo, hi float64) palette.ColorMap {
	cm := colormaps[name]()
	cm.SetMin(lo)
	cm.SetMax(hi)
	return cm
}

// lineColors are ColorBrewer's Dark2 then Set1, distinct on white, for one
// line per layer.
var lineColors = []color.NRGBA{
	{0x1b, 0x9e, 0x77, 255}, {0xd9, 0x5f, 0x02, 255}, {0x75, 0x70, 0xb3, 255}, {0xe7, 0x29, 0x8a, 255},
	{0x66, 0xa6, 0x1e, 255}, {0xe6, 0xab, 0x02, 255}, {0xa6, 0x76, 0x1d, 255}, {0x66, 0x66, 0x66, 255},
	{0xe4, 0x1a, 0x1c, 255}, {0x37, 0x7e, 0xb8, 255}, {0x4d, 0xaf, 0x4a, 255}, {0x98, 0x4e, 0xa3, 255},
}

func lineColor(i int) color.Color { return lineColors[i%len(lineColors)] }
