package report

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteVisualizeFigures(t *testing.T) {
	dir := t.TempDir()
	ex := synthExample(1, 6, 8, true)
	files, err := WriteVisualizeFigures(dir, ex, -1, PlotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cross_attention_layer5.png", "cross_attention_multihead_layer5.png", "self_attention_layer5.png"}
	if len(files) != len(want) {
		t.Fatalf("wrote %v, want %v", files, want)
	}
	for i, f := range files {
		if filepath.Base(f) != want[i] || filepath.Dir(f) != dir {
			t.Errorf("file %d = %s, want %s in %s", i, f, want[i], dir)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 150 {
			t.Errorf("%s is only %v", f, b)
		}
		keepFile(t, want[i], data)
	}
	// The multi-head grid is wider than tall for 8 heads in 2×4.
	if b := decodeFile(t, files[1]).Bounds(); b.Dx() <= b.Dy() {
		t.Errorf("multi-head grid is %v; want a 2×4 layout, wider than tall", b)
	}
}

func TestWriteVisualizeFiguresErrors(t *testing.T) {
	ex := synthExample(1, 2, 4, true)
	for _, tc := range []struct {
		name  string
		layer int
		opts  PlotOptions
		edit  func(*VisualizeExample)
		want  string
	}{
		{"layer out of range", 2, PlotOptions{}, nil, "layer 2: cross attention has 2 layers"},
		{"negative layer out of range", -3, PlotOptions{}, nil, "layer -3"},
		{"bad colormap", 0, PlotOptions{Colormap: "jet"}, nil, `colormap "jet"`},
		{"label mismatch", 0, PlotOptions{}, func(e *VisualizeExample) { e.SrcPieces = e.SrcPieces[1:] }, "key labels"},
		{"no decoder self", 0, PlotOptions{}, func(e *VisualizeExample) { e.DecoderSelf = nil }, "decoder self-attention"},
		{"missing font", 0, PlotOptions{Font: "/nonexistent/font.ttf"}, nil, "font /nonexistent/font.ttf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ex
			if tc.edit != nil {
				tc.edit(&e)
			}
			_, err := WriteVisualizeFigures(t.TempDir(), e, tc.layer, tc.opts)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func decodeFile(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// BenchmarkVisualize draws the three visualize figures for 20 examples, as
// `attnaudit visualize --num-examples 20` does after translating.
func BenchmarkVisualize(b *testing.B) {
	exs := make([]VisualizeExample, 20)
	for i := range exs {
		exs[i] = synthExample(uint64(i), 6, 8, i%2 == 0)
	}
	dir := b.TempDir()
	b.ResetTimer()
	for b.Loop() {
		for _, ex := range exs {
			if _, err := WriteVisualizeFigures(dir, ex, -1, PlotOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
