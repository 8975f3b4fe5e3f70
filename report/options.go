package report

import (
	"fmt"
	"os"
)

// Options control report.html and compare.html. The zero value of a field
// means its default only where a zero could not be meant (DPI, colormap);
// DefaultOptions gives every documented default.
type Options struct {
	Plot PlotOptions `yaml:"plot" json:"plot"`
	// Layer is the layer whose attention the per-example sections show;
	// negative counts from the end (-1 = last), resolved per attention kind.
	Layer int `yaml:"report_layer" json:"report_layer"`
	// WorstExamples caps the per-example sections of flagged examples, the
	// most flagged first. It keeps report.html readable at any dataset size.
	WorstExamples int `yaml:"worst_examples" json:"worst_examples"`
	// SampleExamples adds this many unflagged examples, drawn at random
	// (with SampleSeed) so a report shows what normal looks like.
	SampleExamples int `yaml:"sample_examples" json:"sample_examples"`
	SampleSeed     int `yaml:"sample_seed" json:"sample_seed"`
	// GalleryExamples is how many examples each gallery category shows.
	GalleryExamples int `yaml:"gallery_examples" json:"gallery_examples"`
	// ChangedExamples caps, per pair of consecutive runs, the examples whose
	// flags changed that compare.html lists (the count is always given).
	ChangedExamples int `yaml:"changed_examples" json:"changed_examples"`
}

// PlotOptions control how every figure is drawn, in visualize and in the
// HTML pages.
type PlotOptions struct {
	// Colormap is one of Colormaps(): viridis (default), magma, blues,
	// greys, kindlmann, blackbody.
	Colormap string `yaml:"colormap" json:"colormap"`
	// DPI is the PNG resolution (default 100). Figures are sized in inches,
	// so a higher DPI gives sharper, larger files.
	DPI int `yaml:"dpi" json:"dpi"`
	// PlotWidth and PlotHeight fix a single heatmap's size in inches; zero
	// sizes it from the number of tokens (about a quarter inch per token).
	PlotWidth  float64 `yaml:"plot_width" json:"plot_width"`
	PlotHeight float64 `yaml:"plot_height" json:"plot_height"`
	// Font is a TrueType/OpenType file (or .ttc collection) with Hangul
	// glyphs; empty: fontconfig's choice for Korean, then known paths
	// (Nanum, Noto CJK, Un, Baekmuk).
	Font string `yaml:"font" json:"font"`
}

// DefaultOptions returns the defaults that configs/default.yaml documents.
func DefaultOptions() Options {
	return Options{
		Plot:            PlotOptions{Colormap: "viridis", DPI: 100},
		Layer:           -1,
		WorstExamples:   40,
		SampleExamples:  20,
		SampleSeed:      1,
		GalleryExamples: 3,
		ChangedExamples: 50,
	}
}

const (
	defaultDPI = 100
	maxDPI     = 600
	maxInches  = 40.0
)

// withDefaults fills in the defaults a zero value stands for and checks the
// rest.
func (o PlotOptions) withDefaults() (PlotOptions, error) {
	if o.Colormap == "" {
		o.Colormap = "viridis"
	}
	if _, ok := colormaps[o.Colormap]; !ok {
		return o, fmt.Errorf("colormap %q: want one of %v", o.Colormap, Colormaps())
	}
	if o.DPI == 0 {
		o.DPI = defaultDPI
	}
	if o.DPI < 10 || o.DPI > maxDPI {
		return o, fmt.Errorf("dpi %d: want 10..%d", o.DPI, maxDPI)
	}
	if o.PlotWidth < 0 || o.PlotWidth > maxInches || o.PlotHeight < 0 || o.PlotHeight > maxInches {
		return o, fmt.Errorf("plot size %g×%g in: want 0 (automatic) or up to %g inches", o.PlotWidth, o.PlotHeight, maxInches)
	}
	return o, nil
}

// Validate checks every option, so that a bad one fails a run before its
// first stage rather than at the report.
func (o Options) Validate() error {
	if _, err := o.Plot.withDefaults(); err != nil {
		return err
	}
	if o.Plot.Font != "" {
		if _, err := os.Stat(o.Plot.Font); err != nil {
			return fmt.Errorf("font: %w", err)
		}
	}
	return o.check()
}

func (o Options) check() error {
	for name, v := range map[string]int{"worst_examples": o.WorstExamples, "sample_examples": o.SampleExamples,
		"gallery_examples": o.GalleryExamples, "changed_examples": o.ChangedExamples} {
		if v < 0 {
			return fmt.Errorf("%s %d: want ≥ 0", name, v)
		}
	}
	return nil
}
