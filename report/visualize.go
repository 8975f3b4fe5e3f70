package report

import (
	"fmt"
	"os"
	"path/filepath"

	"attnaudit/metrics"
)

// VisualizeExample is one translated sentence with its attention, as the
// `visualize` command and the report's per-example sections draw it. Token
// pieces follow the checkpoint contract (DEVELOPERS.md): SrcPieces end with
// EOS; TgtPieces are the predicted tokens ending with EOS, so cross- and
// decoder self-attention row t predicts TgtPieces[t]; TgtInputPieces are the
// decoder's inputs (BOS, then every predicted token but the last), the keys
// of decoder self-attention. Attention is [layer][head].
type VisualizeExample struct {
	Source, Hypothesis string
	SrcPieces          []string
	TgtPieces          []string
	TgtInputPieces     []string // empty: "<s>" then TgtPieces but the last
	Cross              [][]metrics.Matrix
	DecoderSelf        [][]metrics.Matrix
	EncoderSelf        [][]metrics.Matrix
}

// The seed guide's file names, per layer.
const (
	CrossFileFormat     = "cross_attention_layer%d.png"
	MultiheadFileFormat = "cross_attention_multihead_layer%d.png"
	SelfFileFormat      = "self_attention_layer%d.png"
)

func (ex VisualizeExample) inputPieces() []string {
	if len(ex.TgtInputPieces) > 0 || len(ex.TgtPieces) == 0 {
		return ex.TgtInputPieces
	}
	return append([]string{"<s>"}, ex.TgtPieces[:len(ex.TgtPieces)-1]...)
}

// resolveLayer is metrics.ResolveLayer: one rule and one message for
// every layer setting.
func resolveLayer(layer, n int, kind string) (int, error) {
	return metrics.ResolveLayer(layer, n, kind)
}

// headMean averages a layer's heads into one matrix (the seed's
// "head-averaged" view).
func headMean(heads []metrics.Matrix) (metrics.Matrix, error) {
	if len(heads) == 0 {
		return metrics.Matrix{}, fmt.Errorf("no heads")
	}
	out := metrics.NewMatrix(heads[0].Rows, heads[0].Cols)
	for h, m := range heads {
		if m.Rows != out.Rows || m.Cols != out.Cols || len(m.Data) != len(out.Data) {
			return metrics.Matrix{}, fmt.Errorf("head %d is %d×%d, head 0 is %d×%d", h, m.Rows, m.Cols, out.Rows, out.Cols)
		}
		for i, v := range m.Data {
			out.Data[i] += v
		}
	}
	for i := range out.Data {
		out.Data[i] /= float32(len(heads))
	}
	return out, nil
}

// Axis titles shared by the visualize files and the report.
const (
	srcAxis   = "source (keys)"
	tgtAxis   = "predicted target (queries)"
	encKeys   = "source (keys)"
	encQuery  = "source (queries)"
	decQuery  = "decoder input (queries)"
	decKeys   = "decoder input (keys)"
	crossName = "cross"
	decName   = "decoder self"
	encName   = "encoder self"
)

// exampleFigures are the drawings of one example at one layer; a kind the
// example lacks is left nil.
type exampleFigures struct {
	cross, multihead, decSelf, encSelf *figure
}

func (th *theme) exampleFigures(ex VisualizeExample, layer int, withEncoder bool) (exampleFigures, error) {
	var out exampleFigures
	src, tgt := labelTexts(ex.SrcPieces), labelTexts(ex.TgtPieces)
	l, err := resolveLayer(layer, len(ex.Cross), crossName)
	if err != nil {
		return out, err
	}
	heads := ex.Cross[l]
	avg, err := headMean(heads)
	if err != nil {
		return out, fmt.Errorf("cross-attention layer %d: %w", l, err)
	}
	f, err := th.attentionFigure(avg, src, tgt,
		fmt.Sprintf("Cross-attention, layer %d (mean of %d heads)", l, len(heads)), srcAxis, tgtAxis)
	if err != nil {
		return out, fmt.Errorf("cross-attention layer %d: %w", l, err)
	}
	out.cross = &f
	g, err := th.headGridFigure(heads, src, tgt,
		fmt.Sprintf("Cross-attention, layer %d, every head", l), srcAxis, tgtAxis)
	if err != nil {
		return out, fmt.Errorf("cross-attention layer %d: %w", l, err)
	}
	out.multihead = &g
	// A layer without heads was not stored (the store setting): no figure.
	if dl, err := resolveLayer(layer, len(ex.DecoderSelf), decName); len(ex.DecoderSelf) > 0 && (err != nil || len(ex.DecoderSelf[dl]) > 0) {
		if err != nil {
			return out, err
		}
		avg, err := headMean(ex.DecoderSelf[dl])
		if err != nil {
			return out, fmt.Errorf("decoder self-attention layer %d: %w", dl, err)
		}
		in := labelTexts(ex.inputPieces())
		f, err := th.attentionFigure(avg, in, in,
			fmt.Sprintf("Decoder self-attention, layer %d (mean of %d heads)", dl, len(ex.DecoderSelf[dl])), decKeys, decQuery)
		if err != nil {
			return out, fmt.Errorf("decoder self-attention layer %d: %w", dl, err)
		}
		out.decSelf = &f
	}
	if el, err := resolveLayer(layer, len(ex.EncoderSelf), encName); withEncoder && len(ex.EncoderSelf) > 0 && (err != nil || len(ex.EncoderSelf[el]) > 0) {
		if err != nil {
			return out, err
		}
		avg, err := headMean(ex.EncoderSelf[el])
		if err != nil {
			return out, fmt.Errorf("encoder self-attention layer %d: %w", el, err)
		}
		f, err := th.attentionFigure(avg, src, src,
			fmt.Sprintf("Encoder self-attention, layer %d (mean of %d heads)", el, len(ex.EncoderSelf[el])), encKeys, encQuery)
		if err != nil {
			return out, fmt.Errorf("encoder self-attention layer %d: %w", el, err)
		}
		out.encSelf = &f
	}
	return out, nil
}

// WriteVisualizeFigures writes the seed guide's three PNGs for one example
// into dir: cross_attention_layer{N}.png (head-averaged cross-attention,
// target tokens down, source tokens across), cross_attention_multihead_
// layer{N}.png (every head) and self_attention_layer{N}.png (head-averaged
// decoder self-attention). N is the layer drawn, resolved when layer counts
// from the end. It returns the paths written.
func WriteVisualizeFigures(dir string, ex VisualizeExample, layer int, opts PlotOptions) ([]string, error) {
	th, err := newTheme(opts)
	if err != nil {
		return nil, err
	}
	figs, err := th.exampleFigures(ex, layer, false)
	if err != nil {
		return nil, err
	}
	if figs.decSelf == nil {
		return nil, fmt.Errorf("decoder self-attention: not in this example (the checkpoint does not output decoder_self_attn)")
	}
	l, _ := resolveLayer(layer, len(ex.Cross), crossName)
	files := []struct {
		name string
		fig  *figure
	}{
		{fmt.Sprintf(CrossFileFormat, l), figs.cross},
		{fmt.Sprintf(MultiheadFileFormat, l), figs.multihead},
		{fmt.Sprintf(SelfFileFormat, l), figs.decSelf},
	}
	var written []string
	for _, f := range files {
		data, err := th.render(*f.fig)
		if err != nil {
			return written, fmt.Errorf("%s: %w", f.name, err)
		}
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return written, fmt.Errorf("writing figure: %w", err)
		}
		written = append(written, path)
	}
	return written, nil
}
