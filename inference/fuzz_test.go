package inference

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/encoding/protowire"
)

// FuzzOpenCheckpointMeta opens the tiny checkpoint (graphs without their
// weights) with arbitrary
// checkpoint.json contents: an error, or a checkpoint whose contract is one
// this package reads, whose special ids are pieces of its tokenizer, and
// which keeps checkpoint.json byte for byte.
func FuzzOpenCheckpointMeta(f *testing.F) {
	fsys := tinyFiles(f)
	for _, name := range []string{EncoderFile, DecoderFile} {
		fsys["ck/"+name].Data = ioOnly(f, fsys["ck/"+name].Data) // what is checked, without the weights
	}
	f.Add(fsys["ck/"+MetaFile].Data)
	f.Add([]byte(`{"contract": 1, "bos_id": 2, "eos_id": 3, "pad_id": 0, "decoder_start_token_id": 2, "max_positions": 64}`))
	f.Add([]byte(`{"contract": 1, "bos_id": 2, "eos_id": 99999, "pad_id": 0}`))
	f.Add([]byte(`{"contract": 2, "bos_id": 2, "eos_id": 3, "pad_id": 0}`))
	f.Add([]byte(`{"contract": 1, "bos_id": -1, "eos_id": 3, "pad_id": 0, "forced_bos_token_id": null}`))
	f.Fuzz(func(t *testing.T, meta []byte) {
		files := fstest.MapFS{}
		for name, file := range fsys {
			files[name] = file
		}
		files["ck/"+MetaFile] = &fstest.MapFile{Data: meta}
		ck, err := OpenCheckpoint(files, "ck")
		if err != nil {
			return
		}
		m := ck.Meta()
		if _, ok := contractFiles[m.Contract]; !ok {
			t.Fatalf("opened a checkpoint of contract %d", m.Contract)
		}
		for _, id := range []int32{m.BosID, m.EosID, m.PadID, ck.decoderStart()} {
			if id < 0 || int(id) >= ck.Tokenizer().VocabSize() {
				t.Fatalf("special id %d outside the %d pieces: %+v", id, ck.Tokenizer().VocabSize(), m)
			}
		}
		if !bytes.Equal(ck.MetaJSON(), meta) {
			t.Fatalf("MetaJSON %q, read %q", ck.MetaJSON(), meta)
		}
	})
}

// ioOnly keeps of an ONNX model only what graphIO reads: the graph's
// inputs, outputs and initializer names. The fuzzer then mutates a few
// hundred bytes of contract rather than megabytes of weights.
func ioOnly(t testing.TB, model []byte) []byte {
	t.Helper()
	var graph []byte
	err := walkProto(model, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != pbModelGraph || typ != protowire.BytesType {
			return nil
		}
		return walkProto(v, func(n protowire.Number, typ protowire.Type, b []byte, _ uint64) error {
			if (n == pbGraphInput || n == pbGraphOutput) && typ == protowire.BytesType {
				graph = protowire.AppendTag(graph, n, protowire.BytesType)
				graph = protowire.AppendBytes(graph, b)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, pbModelGraph, protowire.BytesType), graph)
}

// FuzzContractCheck checks arbitrary graphs (inputs and outputs, as
// protobuf) against contract 1 or 2, as Runtime.Load does before building
// sessions: an error, or a contract whose sizes are positive and whose
// attention outputs agree with its layers and heads. Seeds: the tiny
// checkpoints' graphs, weights left out.
func FuzzContractCheck(f *testing.F) {
	read := func(dir, name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		return ioOnly(f, b)
	}
	enc1, dec1 := read(tinyDir, EncoderFile), read(tinyDir, DecoderFile)
	enc2, dec2, past2 := read(tinyDir2, EncoderModelFile), read(tinyDir2, DecoderModelFile), read(tinyDir2, DecoderWithPastFile)
	for contract, g := range map[int][3][]byte{1: {enc1, dec1}, 2: {enc2, dec2, past2}} {
		if _, err := checkIO(contract, g[0], g[1], g[2]); err != nil {
			f.Fatalf("a tiny checkpoint's graphs, weights left out, fail the contract: %v", err)
		}
	}
	f.Add(uint8(1), enc1, dec1, []byte(nil))
	f.Add(uint8(2), enc2, dec2, past2)
	f.Add(uint8(2), enc2, dec2, dec2)
	f.Add(uint8(1), enc2, dec1, []byte(nil))
	f.Fuzz(func(t *testing.T, contract uint8, enc, dec, past []byte) {
		c, err := checkIO(1+int(contract)%2, enc, dec, past)
		if err != nil {
			return
		}
		if c.dModel <= 0 || c.vocab <= 0 {
			t.Fatalf("contract %d accepted with d_model %d, vocab %d", c.contract, c.dModel, c.vocab)
		}
		if c.contract == 2 && (c.cache.layers <= 0 || c.cache.heads <= 0 || c.cache.dim <= 0) {
			t.Fatalf("contract 2 accepted with cache %+v", c.cache)
		}
		for _, a := range []struct {
			name   string
			layers int
		}{{TensorEncoderSelf, c.encLayers}, {TensorDecoderSelf, c.decLayers}, {TensorCross, c.decLayers}} {
			if c.has[a.name] && (a.layers <= 0 || c.heads <= 0) {
				t.Fatalf("contract %d accepted %s with %d layers, %d heads", c.contract, a.name, a.layers, c.heads)
			}
		}
	})
}

// checkIO reads the graphs' inputs and outputs and checks them against
// contract (1: past is not read).
func checkIO(contract int, enc, dec, past []byte) (*contractIO, error) {
	c := &contractIO{contract: contract, has: map[string]bool{}}
	graphs := []struct {
		data    []byte
		in, out *[]ort.InputOutputInfo
	}{{enc, &c.encIn, &c.encOut}, {dec, &c.decIn, &c.decOut}, {past, &c.pastIn, &c.pastOut}}
	if contract == 1 {
		graphs = graphs[:2]
	}
	for _, g := range graphs {
		var err error
		if *g.in, *g.out, err = graphIO(g.data); err != nil {
			return nil, err
		}
	}
	if contract == 1 {
		return c, c.check()
	}
	return c, c.check2()
}

// FuzzTokenizerRoundTrip encodes arbitrary text with the tiny checkpoint's
// SentencePiece model and decodes it back: valid UTF-8 comes back as it
// went in (the model is byte-fallback BPE with identity normalisation, so
// nothing is lost; "▁" is SentencePiece's space and comes back as one), the
// ids are pieces of the model, and Count agrees with Encode.
func FuzzTokenizerRoundTrip(f *testing.F) {
	model, err := os.ReadFile(filepath.Join(tinyDir, TokenizerFile))
	if err != nil {
		f.Fatal(err)
	}
	tok, err := NewTokenizer(TokenizerFile, model)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "오늘 날씨가 좋습니다.", "The weather is nice today.", "  두 칸  ", "잌 🙂 \x00\t\n",
		"▁이미 ▁", "ǅ ﬁ Å Å", "\xff\xfe 깨진"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, pieces := tok.Encode(s)
		if len(pieces) != len(ids) || tok.Count(s) != len(ids) {
			t.Fatalf("%q: %d ids, %d pieces, Count %d", s, len(ids), len(pieces), tok.Count(s))
		}
		for i, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() || pieces[i] != tok.Piece(id) {
				t.Fatalf("%q: id %d piece %q (vocabulary of %d)", s, id, pieces[i], tok.VocabSize())
			}
		}
		got := tok.Decode(ids)
		if !utf8.ValidString(s) {
			return
		}
		if want := strings.ReplaceAll(s, "▁", " "); got != want {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v, pieces %q)", s, got, ids, pieces)
		}
	})
}
