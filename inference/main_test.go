package inference

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"google.golang.org/protobuf/encoding/protowire"
)

// tinyDir is the tiny random checkpoint the exporter writes for tests.
var tinyDir = filepath.Join("..", "testdata", "checkpoints", "tiny")

var testRuntime *Runtime

// TestMain opens ONNX Runtime once: a process has one environment. The
// library is found as the CLI finds it ($ATTNAUDIT_ORT_LIB, or
// third_party/ under the repository root, the test's parent folder).
func TestMain(m *testing.M) {
	rt, err := NewRuntime(Options{Provider: ProviderCPU, Threads: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, "inference tests:", err)
		os.Exit(1)
	}
	testRuntime = rt
	code := m.Run()
	if err := rt.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "closing runtime:", err)
		code = 1
	}
	os.Exit(code)
}

// tinyFiles reads the tiny checkpoint into a MapFS that tests can edit.
func tinyFiles(t testing.TB) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, f := range []string{MetaFile, EncoderFile, DecoderFile, TokenizerFile} {
		b, err := os.ReadFile(filepath.Join(tinyDir, f))
		if err != nil {
			t.Fatalf("tiny checkpoint (made by export/export_onnx.py, see testdata/checkpoints/README.md): %v", err)
		}
		fsys["ck/"+f] = &fstest.MapFile{Data: b}
	}
	return fsys
}

func openTiny(t testing.TB) *Checkpoint {
	t.Helper()
	ck, err := OpenCheckpoint(os.DirFS(tinyDir), ".")
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

var tinyModel, tinyModel2 *Model

// tinyDir2 is the same weights in contract 2 (export/convert.py).
var tinyDir2 = filepath.Join("..", "testdata", "checkpoints", "tiny-c2")

// loadTiny2 loads the tiny checkpoint's contract-2 twin once for all tests.
func loadTiny2(t testing.TB) *Model {
	t.Helper()
	if tinyModel2 == nil {
		ck, err := OpenCheckpoint(os.DirFS(tinyDir2), ".")
		if err != nil {
			t.Fatal(err)
		}
		if tinyModel2, err = testRuntime.Load(ck); err != nil {
			t.Fatal(err)
		}
	}
	return tinyModel2
}

// tinyModels are the tiny weights in both contracts, for tests that hold
// for each.
func tinyModels(t testing.TB) []*Model { return []*Model{loadTiny(t), loadTiny2(t)} }

// loadTiny loads the tiny checkpoint once for all tests.
func loadTiny(t testing.TB) *Model {
	t.Helper()
	if tinyModel == nil {
		m, err := testRuntime.Load(openTiny(t))
		if err != nil {
			t.Fatal(err)
		}
		tinyModel = m
	}
	return tinyModel
}

// ONNX protobuf field numbers (onnx.proto).
const (
	onnxModelGraph  = 7
	onnxGraphNode   = 1
	onnxGraphInput  = 11
	onnxGraphOutput = 12
	onnxGraphValue  = 13
	onnxNodeInput   = 1
	onnxNodeOutput  = 2
	onnxValueName   = 1
)

// editGraph rewrites an ONNX model: value names are renamed (in node
// inputs and outputs, graph inputs and outputs and value infos) and the graph outputs
// named in drop are removed, so the graph no longer exports them.
func editGraph(t testing.TB, model []byte, rename map[string]string, drop ...string) []byte {
	t.Helper()
	dropped := map[string]bool{}
	for _, d := range drop {
		dropped[d] = true
	}
	renameIn := func(msg []byte, fields ...protowire.Number) []byte {
		var out []byte
		err := walkProto(msg, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error {
			for _, f := range fields {
				if num == f && typ == protowire.BytesType {
					if n, ok := rename[string(v)]; ok {
						v = []byte(n)
					}
				}
			}
			out = appendField(out, num, typ, v, u)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var out []byte
	found := 0
	err := walkProto(model, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error {
		if num != onnxModelGraph {
			out = appendField(out, num, typ, v, u)
			return nil
		}
		var graph []byte
		err := walkProto(v, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error {
			switch num {
			case onnxGraphNode:
				v = renameIn(v, onnxNodeInput, onnxNodeOutput)
			case onnxGraphInput, onnxGraphOutput, onnxGraphValue:
				name := ""
				walkProto(v, func(n protowire.Number, _ protowire.Type, b []byte, _ uint64) error {
					if n == onnxValueName {
						name = string(b)
					}
					return nil
				})
				if num == onnxGraphOutput && dropped[name] {
					found++
					return nil
				}
				v = renameIn(v, onnxValueName)
			}
			graph = appendField(graph, num, typ, v, u)
			return nil
		})
		out = appendField(out, num, typ, graph, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != len(drop) {
		t.Fatalf("editGraph: dropped %d of the outputs %v", found, drop)
	}
	return out
}

func appendField(b []byte, num protowire.Number, typ protowire.Type, v []byte, u uint64) []byte {
	b = protowire.AppendTag(b, num, typ)
	switch typ {
	case protowire.VarintType:
		return protowire.AppendVarint(b, u)
	case protowire.Fixed32Type:
		return protowire.AppendFixed32(b, uint32(u))
	case protowire.Fixed64Type:
		return protowire.AppendFixed64(b, u)
	case protowire.BytesType:
		return protowire.AppendBytes(b, v)
	}
	panic(fmt.Sprintf("field %d: wire type %d not handled", num, typ))
}

func readFS(t testing.TB, fsys fs.FS, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
