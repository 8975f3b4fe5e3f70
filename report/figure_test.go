package report

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot/font/liberation"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"attnaudit/metrics"
)

// liberationTheme draws with gonum's embedded Liberation Sans, the same on
// every machine, so golden images do not depend on installed fonts.
func liberationTheme(t testing.TB) *theme {
	t.Helper()
	for _, f := range liberation.Collection() {
		if f.Font.Variant == "Sans" && f.Font.Weight == 0 && f.Font.Style == 0 {
			opts, err := PlotOptions{}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			return themeWith(opts, newFontSet(f.Face, ""))
		}
	}
	t.Fatal("no Liberation Sans in gonum's collection")
	return nil
}

// hangulTheme draws with the machine's Hangul font; CI installs fonts-nanum.
func hangulTheme(t testing.TB) *theme {
	t.Helper()
	th, err := newTheme(PlotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if th.fonts.path == "" {
		t.Fatalf("no Hangul font found: install fonts-nanum (apt) or set PlotOptions.Font")
	}
	return th
}

func renderImage(t testing.TB, th *theme, f figure) image.Image {
	t.Helper()
	data, err := th.render(f)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imagesClose compares two images as gonum's cmpimg.EqualApprox does: same
// bounds, and every pixel within delta in YIQ space (delta 0 exact, 1
// anything).
func imagesClose(a, b image.Image, delta float64) (bool, int) {
	if a.Bounds() != b.Bounds() {
		return false, -1
	}
	const maxYIQ = 35215.0 // the YIQ distance from black to white, squared
	bad := 0
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			if yiqDist2(a.At(x, y), b.At(x, y)) > delta*delta*maxYIQ {
				bad++
			}
		}
	}
	return bad == 0, bad
}

func yiqDist2(c1, c2 color.Color) float64 {
	r1, g1, b1, _ := c1.RGBA()
	r2, g2, b2, _ := c2.RGBA()
	f := func(v uint32) float64 { return float64(v >> 8) }
	dr, dg, db := f(r1)-f(r2), f(g1)-f(g2), f(b1)-f(b2)
	y := dr*0.29889531 + dg*0.58662247 + db*0.11448223
	i := dr*0.59597799 - dg*0.27417610 - db*0.32180189
	q := dr*0.21147017 - dg*0.52261711 + db*0.31114694
	return 0.5053*y*y + 0.299*i*i + 0.1957*q*q
}

func checkGolden(t *testing.T, name string, got image.Image) {
	t.Helper()
	path := filepath.Join("testdata", name)
	var buf bytes.Buffer
	if err := png.Encode(&buf, got); err != nil {
		t.Fatal(err)
	}
	keepFile(t, name, buf.Bytes())
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	want, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	// A small tolerance absorbs anti-aliasing differences between
	// platforms; a moved cell or label changes hundreds of pixels.
	if ok, bad := imagesClose(got, want, 0.05); !ok {
		t.Errorf("%s differs from the golden image (%d pixels differ, or -1: size %v, golden %v); look at it with -keep DIR, regenerate with -update",
			name, bad, got.Bounds(), want.Bounds())
	}
}

func goldenMatrix() metrics.Matrix {
	m := metrics.NewMatrix(4, 5)
	copy(m.Data, []float32{
		0.7, 0.1, 0.1, 0.05, 0.05,
		0.1, 0.6, 0.2, 0.05, 0.05,
		0.0, 0.1, 0.2, 0.6, 0.1,
		0.0, 0.0, 0.1, float32(math.NaN()), 0.5,
	})
	return m
}

func TestHeatmapGolden(t *testing.T) {
	th := liberationTheme(t)
	f, err := th.attentionFigure(goldenMatrix(), []string{"na", "_hak", "gyo", ".", "</s>"}, []string{"I", "_go", "_home", "</s>"},
		"Cross-attention, layer 0", srcAxis, tgtAxis)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "heatmap_golden.png", renderImage(t, th, f))
}

func TestMetricGridGolden(t *testing.T) {
	th := liberationTheme(t)
	m := metrics.NewMatrix(2, 4)
	copy(m.Data, []float32{0.1, 0.5, 0.9, 0.3, 0.7, float32(math.NaN()), 0.2, 1})
	f, err := th.metricGridFigure(m, "diagonality", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "metric_grid_golden.png", renderImage(t, th, f))
}

// TestRowsTopToBottom puts all of query row 0's mass on key 0 and checks
// that the brightest cell is drawn top left: gonum draws grid row 0 at the
// bottom, so a missing flip would put it bottom left.
func TestRowsTopToBottom(t *testing.T) {
	th := liberationTheme(t)
	m := metrics.NewMatrix(4, 4)
	m.Data[0] = 1 // row 0, column 0; the rest stays 0
	f, err := th.attentionFigure(m, []string{"a", "b", "c", "d"}, []string{"w", "x", "y", "z"}, "t", "keys", "queries")
	if err != nil {
		t.Fatal(err)
	}
	img := renderImage(t, th, f)
	bright := color.NRGBA{0xfd, 0xe7, 0x25, 255} // viridis at 1
	dark := color.NRGBA{0x44, 0x01, 0x54, 255}   // viridis at 0
	// Only the heatmap: the colour bar on the right holds both colours too.
	limit := img.Bounds().Dx() - cssPixelsAt(colorbarWidth, th.opts.DPI)
	bb, db := image.Rectangle{}, image.Rectangle{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < limit; x++ {
			c := img.At(x, y)
			pt := image.Rect(x, y, x+1, y+1)
			if yiqDist2(c, bright) < 50 {
				bb = bb.Union(pt)
			}
			if yiqDist2(c, dark) < 50 {
				db = db.Union(pt)
			}
		}
	}
	if bb.Empty() || db.Empty() {
		t.Fatalf("no bright (%v) or dark (%v) cells found", bb, db)
	}
	all := bb.Union(db)
	cell := all.Dx() / 4
	if bb.Min.Y-all.Min.Y > 2 || bb.Max.Y-all.Min.Y > cell+3 {
		t.Errorf("bright cell spans rows %d..%d of the heatmap's %d..%d; want the top row", bb.Min.Y, bb.Max.Y, all.Min.Y, all.Max.Y)
	}
	if bb.Min.X-all.Min.X > 2 || bb.Max.X-all.Min.X > cell+3 {
		t.Errorf("bright cell spans columns %d..%d of %d..%d; want the first column", bb.Min.X, bb.Max.X, all.Min.X, all.Max.X)
	}
}

func cssPixelsAt(l vg.Length, dpi int) int { return int(float64(l/vg.Inch) * float64(dpi)) }

// glyphImage draws s alone, large, and returns its dark pixels.
func glyphImage(t *testing.T, th *theme, s string) (image.Image, int) {
	t.Helper()
	f := figure{w: 0.8 * vg.Inch, h: 0.6 * vg.Inch, draw: func(dc draw.Canvas) {
		sty := th.style(28)
		sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
		dc.FillText(sty, dc.Center(), s)
	}}
	img := renderImage(t, th, f)
	dark := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if luminance(img.At(x, y)) < 0.5 {
				dark++
			}
		}
	}
	return img, dark
}

// TestHangulGlyphs checks that 한, 국 and 어 are drawn as three different
// glyphs with ink, where a font without Hangul draws the same empty box for
// each, and that the fallback escapes what it cannot draw.
func TestHangulGlyphs(t *testing.T) {
	th := hangulTheme(t)
	var imgs []image.Image
	for _, r := range "한국어" {
		img, dark := glyphImage(t, th, string(r))
		if dark < 40 {
			t.Errorf("%c: only %d dark pixels", r, dark)
		}
		imgs = append(imgs, img)
		var buf bytes.Buffer
		png.Encode(&buf, img)
		keepFile(t, fmt.Sprintf("glyph_%04X.png", r), buf.Bytes())
	}
	for i := range imgs {
		for j := i + 1; j < len(imgs); j++ {
			if same, _ := imagesClose(imgs[i], imgs[j], 0.1); same {
				t.Errorf("glyphs %d and %d are drawn alike: boxes, not Hangul", i, j)
			}
		}
	}
	// The control: Liberation Sans has no Hangul, so raw runes give
	// identical boxes (what the test above rules out) and label() escapes.
	lib := liberationTheme(t)
	boxA, _ := glyphImage(t, lib, "한")
	boxB, _ := glyphImage(t, lib, "국")
	if same, _ := imagesClose(boxA, boxB, 0.1); !same {
		t.Errorf("the control font draws 한 and 국 differently; the box comparison proves nothing")
	}
	if got, want := lib.fonts.label("▁한국어"), `_\uD55C\uAD6D\uC5B4`; got != want {
		t.Errorf("fallback label = %q, want %q", got, want)
	}
	if got := th.fonts.label("▁한국어"); got != "_한국어" && got != "▁한국어" {
		t.Errorf("Hangul font label = %q, want the Hangul kept", got)
	}
}

func TestScaleRange(t *testing.T) {
	for _, tc := range []struct {
		data   []float32
		lo, hi float64
	}{
		{[]float32{0, 0.25, 0.5}, 0, 0.5},
		{[]float32{0, 0, 0}, 0, 1}, // broken mask: all zero
		{[]float32{float32(math.NaN()), float32(math.Inf(1)), 0.3}, 0, float64(float32(0.3))},
	} {
		m := metrics.Matrix{Rows: 1, Cols: len(tc.data), Data: tc.data}
		if lo, hi := scaleRange(m); lo != tc.lo || hi != tc.hi {
			t.Errorf("scaleRange(%v) = %g, %g, want %g, %g", tc.data, lo, hi, tc.lo, tc.hi)
		}
	}
}

func TestColormaps(t *testing.T) {
	for _, name := range Colormaps() {
		cm := colormap(name, 0, 2)
		lo, err1 := cm.At(0)
		hi, err2 := cm.At(2)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", name, err1, err2)
		}
		if math.Abs(luminance(lo)-luminance(hi)) < 0.3 {
			t.Errorf("%s: ends too alike in lightness (%v, %v)", name, lo, hi)
		}
		if _, err := cm.At(2.5); err == nil {
			t.Errorf("%s: At out of range gave no error", name)
		}
	}
	v := colormap("viridis", 0, 1)
	c, _ := v.At(0.5)
	if got := color.NRGBAModel.Convert(c).(color.NRGBA); got != (color.NRGBA{0x26, 0x82, 0x8e, 255}) {
		t.Errorf("viridis(0.5) = %v, want #26828e", got)
	}
}

func TestPlotOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		o    PlotOptions
		want string
	}{
		{PlotOptions{DPI: 5}, "dpi 5"},
		{PlotOptions{DPI: 10000}, "dpi 10000"},
		{PlotOptions{PlotWidth: -1}, "plot size"},
		{PlotOptions{Colormap: "rainbow"}, `colormap "rainbow"`},
	} {
		if _, err := tc.o.withDefaults(); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
	}
	if err := (Options{WorstExamples: -1}).check(); err == nil {
		t.Error("negative worst_examples accepted")
	}
}
