package pipeline

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"attnaudit/dataset"
	"attnaudit/inference"
	"attnaudit/metrics"
	"attnaudit/report"
)

// VisualizeInputs are the seed guide's `visualize` options.
type VisualizeInputs struct {
	Checkpoint  string // empty: the shipped final checkpoint
	Input       string // one sentence
	File        string // one sentence per line
	Layer       int    // negative counts from the end
	NumExamples int    // validation examples when neither Input nor File
	OutputDir   string
	Show        bool
	Plot        report.PlotOptions
	Decode      inference.DecodeOptions
}

// Visualize translates the chosen sentences and writes the seed's three
// figures for each: in OutputDir for one sentence, in OutputDir/example_N
// for several. It returns the files written.
func Visualize(env Env, in VisualizeInputs) ([]string, error) {
	ckpt, _, err := OpenCheckpoint(in.Checkpoint)
	if err != nil {
		return nil, err
	}
	sources, err := visualizeSources(in)
	if err != nil {
		return nil, err
	}
	_, layers := ckpt.Layers()
	layer, err := metrics.ResolveLayer(in.Layer, layers, "cross")
	if err != nil {
		return nil, fmt.Errorf("--layer: %w", err)
	}
	model, err := env.Runtime.Load(ckpt)
	if err != nil {
		return nil, err
	}
	defer model.Close()
	reqs := make([]inference.Request, len(sources))
	for i, s := range sources {
		reqs[i] = inference.Request{Source: s}
	}
	results, err := model.TranslateBatch(reqs, in.Decode)
	if err != nil {
		return nil, err
	}
	var written []string
	for i, res := range results {
		dir := in.OutputDir
		if len(results) > 1 {
			dir = filepath.Join(dir, fmt.Sprintf("example_%d", i+1))
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		ex := report.VisualizeExample{
			Source:         sources[i],
			Hypothesis:     res.Hypothesis,
			SrcPieces:      res.SrcPieces,
			TgtPieces:      res.Free.Pieces,
			TgtInputPieces: decoderInputPieces(ckpt.Tokenizer().Piece(ckpt.Meta().BosID), res.Free.Pieces),
			Cross:          res.Free.Cross,
			DecoderSelf:    res.Free.DecoderSelf,
			EncoderSelf:    res.EncoderSelf,
		}
		files, err := report.WriteVisualizeFigures(dir, ex, layer, in.Plot)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(env.Log, "%s\n  → %s\n", sources[i], res.Hypothesis)
		written = append(written, files...)
	}
	if in.Show {
		show(env, written)
	}
	return written, nil
}

// decoderInputPieces labels the decoder's input positions: BOS, then every
// predicted token but the last (EOS).
func decoderInputPieces(bos string, predicted []string) []string {
	return append([]string{bos}, predicted[:max(len(predicted)-1, 0)]...)
}

func visualizeSources(in VisualizeInputs) ([]string, error) {
	switch {
	case in.Input != "" && in.File != "":
		return nil, fmt.Errorf("give --input or --file, not both")
	case in.Input != "":
		return []string{in.Input}, nil
	}
	data, _, err := readDataset(in.File, dataset.Options{})
	if err != nil {
		return nil, err
	}
	n := len(data.Examples)
	if in.File == "" {
		if in.NumExamples < 1 {
			return nil, fmt.Errorf("--num-examples %d: want ≥ 1", in.NumExamples)
		}
		n = min(n, in.NumExamples)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = data.Examples[i].Source
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no sentences", in.File)
	}
	return out, nil
}

// show opens the figures where a display exists, and says where they are
// otherwise.
func show(env Env, files []string) {
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	}
	_, err := exec.LookPath(opener)
	if (os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" && runtime.GOOS != "darwin") || err != nil {
		fmt.Fprintf(env.Log, "no display to show the figures on; they are in %s\n", filepath.Dir(files[0]))
		return
	}
	for _, f := range files {
		if err := exec.Command(opener, f).Start(); err != nil {
			fmt.Fprintf(env.Log, "opening %s: %v\n", f, err)
		}
	}
}
