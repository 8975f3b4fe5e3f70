package report

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// figure is a drawing of a known size, rendered once to PNG.
type figure struct {
	w, h vg.Length
	draw func(dc draw.Canvas)
}

// theme is what every figure is drawn with: the options and the fonts.
type theme struct {
	opts  PlotOptions
	fonts *fontSet
	scale []color.NRGBA // the colormap in scaleSteps steps, low to high
}

// scaleSteps is how many colours a heatmap's scale has: smooth to the eye,
// and few enough that the scale and the shades of anti-aliased text fit
// one 256-colour PNG palette (encodePNG).
const scaleSteps = 128

func newTheme(opts PlotOptions) (*theme, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fs, err := loadFonts(opts.Font)
	if err != nil {
		return nil, err
	}
	return themeWith(opts, fs), nil
}

// themeWith makes a theme of checked options and loaded fonts.
func themeWith(opts PlotOptions, fs *fontSet) *theme {
	th := &theme{opts: opts, fonts: fs}
	for _, c := range colormap(opts.Colormap, 0, 1).Palette(scaleSteps).Colors() {
		th.scale = append(th.scale, color.NRGBAModel.Convert(c).(color.NRGBA))
	}
	return th
}

// style returns a text style of the given size drawn with the theme's fonts.
func (th *theme) style(size vg.Length) text.Style {
	return text.Style{Color: color.Black, Font: font.Font{Typeface: "attnaudit", Size: size}, Handler: th.fonts.handler}
}

// textWidth is the drawn width of s at size.
func (th *theme) textWidth(s string, size vg.Length) vg.Length {
	w, _, _ := th.fonts.handler.Box(s, font.Font{Typeface: "attnaudit", Size: size})
	return w
}

// newPlot returns a gonum plot whose every text style uses the theme's
// fonts, so Hangul labels get real glyphs.
func (th *theme) newPlot(title string) *plot.Plot {
	p := plot.New()
	p.TextHandler = th.fonts.handler
	set := func(s *text.Style, size vg.Length) {
		s.Handler = th.fonts.handler
		s.Font = font.Font{Typeface: "attnaudit", Size: size}
	}
	set(&p.Title.TextStyle, 11)
	set(&p.X.Label.TextStyle, 9)
	set(&p.Y.Label.TextStyle, 9)
	set(&p.X.Tick.Label, 8)
	set(&p.Y.Tick.Label, 8)
	set(&p.Legend.TextStyle, 8)
	p.Title.Text = th.fonts.label(title)
	p.Title.Padding = vg.Points(4)
	return p
}

// render draws f into a PNG at the theme's DPI. gonum/plot reports some
// misuse by panicking; render turns that into an error, since the data
// behind a figure comes from the user's files.
func (th *theme) render(f figure) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing figure: %v", r)
		}
	}()
	c := vgimg.NewWith(vgimg.UseWH(f.w, f.h), vgimg.UseDPI(th.opts.DPI), vgimg.UseBackgroundColor(color.White))
	f.draw(draw.New(c))
	img, ok := c.Image().(*image.RGBA)
	if !ok {
		return nil, fmt.Errorf("drawing figure: canvas image is %T, want *image.RGBA", c.Image())
	}
	return encodePNG(img, slices.Concat(th.scale, []color.NRGBA{nanColor, overflowColor, underflowColor}))
}

// clampInches bounds an automatic size to something a viewer can open.
func clampInches(v, lo, hi float64) vg.Length {
	return vg.Length(math.Max(lo, math.Min(hi, v))) * vg.Inch
}
