package inference

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// TestGraphIO: reading the protobuf gives what ONNX Runtime reports.
func TestGraphIO(t *testing.T) {
	for dir, files := range map[string][]string{tinyDir: contractFiles[1][1:3], tinyDir2: contractFiles[2][1:4]} {
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			wantIn, wantOut, err := ort.GetInputOutputInfoWithONNXData(b)
			if err != nil {
				t.Fatal(err)
			}
			in, out, err := graphIO(b)
			if err != nil {
				t.Fatal(err)
			}
			same := func(a, b ort.InputOutputInfo) bool {
				return a.Name == b.Name && a.OrtValueType == b.OrtValueType && a.DataType == b.DataType && slices.Equal(a.Dimensions, b.Dimensions)
			}
			if !slices.EqualFunc(in, wantIn, same) || !slices.EqualFunc(out, wantOut, same) {
				t.Errorf("%s/%s: read %v → %v; ONNX Runtime reports %v → %v", filepath.Base(dir), f, in, out, wantIn, wantOut)
			}
		}
	}
	if _, _, err := graphIO([]byte("not a model")); err == nil {
		t.Error("graphIO read garbage")
	}
}
