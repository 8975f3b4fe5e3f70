package inference

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// Checkpoint contract files (SPEC §2; contract 2: docs/contract2.md).
const (
	MetaFile      = "checkpoint.json"
	TokenizerFile = "tokenizer.model"
	// Contract 1.
	EncoderFile = "encoder.onnx"
	DecoderFile = "decoder.onnx"
	// Contract 2: Hugging Face Optimum's seq2seq layout.
	EncoderModelFile    = "encoder_model.onnx"
	DecoderModelFile    = "decoder_model.onnx"
	DecoderWithPastFile = "decoder_with_past_model.onnx"
)

// ContractVersion is the newest checkpoint contract this package reads; it
// reads every contract from 1 to ContractVersion.
const ContractVersion = 2

// contractFiles are each contract's files, checkpoint.json first.
var contractFiles = map[int][]string{
	1: {MetaFile, EncoderFile, DecoderFile, TokenizerFile},
	2: {MetaFile, EncoderModelFile, DecoderModelFile, DecoderWithPastFile, TokenizerFile},
}

// Tensor names of the contract.
const (
	TensorSrcIDs      = "src_ids"
	TensorTgtIDs      = "tgt_ids"
	TensorMemory      = "memory"
	TensorLogits      = "logits"
	TensorEncoderSelf = "encoder_self_attn"
	TensorDecoderSelf = "decoder_self_attn"
	TensorCross       = "cross_attn"
)

// Meta is checkpoint.json. Fields other than those named here are kept in
// Extra, as they were written.
type Meta struct {
	Contract     int      `json:"contract"`
	Name         string   `json:"name"`
	Epoch        int      `json:"epoch"`
	Step         int64    `json:"step"`
	BosID        int32    `json:"bos_id"`
	EosID        int32    `json:"eos_id"`
	PadID        int32    `json:"pad_id"`
	SrcLang      string   `json:"src_lang"`
	TgtLang      string   `json:"tgt_lang"`
	TrainLoss    *float64 `json:"train_loss"` // nil when not recorded
	ValidLoss    *float64 `json:"valid_loss"`
	MaxPositions int      `json:"max_positions"` // 0 when not recorded
	// DecoderStartID is the decoder's first input (contract 2's
	// decoder_start_token_id; nil means bos_id).
	DecoderStartID *int32 `json:"decoder_start_token_id"`
	// ForcedBosID is a token forced as the first output (a language
	// token); nil when none. Contract 2 only.
	ForcedBosID *int32 `json:"forced_bos_token_id"`
	// SuppressIDs are never generated (Hugging Face's single-token
	// bad_words_ids and suppress_tokens); nil means pad_id and bos_id.
	SuppressIDs *[]int32                   `json:"suppress_token_ids"`
	Extra       map[string]json.RawMessage `json:"-"`
}

// MissingAttentionError is what asking for an attention tensor that the
// checkpoint does not export gives. The message keeps the seed's words.
type MissingAttentionError struct {
	File, Tensor string
}

func (e *MissingAttentionError) Error() string {
	return fmt.Sprintf("Attention weights not found: %s has no output %s (export the checkpoint with attention outputs)", e.File, e.Tensor)
}

// Checkpoint is a checkpoint folder held in memory (so an embed.FS works as
// well as a folder on disk).
type Checkpoint struct {
	name     string // the folder, for messages
	meta     Meta
	rawMeta  json.RawMessage
	encoder  []byte
	decoder  []byte // contract 2: decoder_model.onnx
	past     []byte // contract 2: decoder_with_past_model.onnx; nil in contract 1
	tok      *Tokenizer
	suppress []int32 // suppressed(), once
	hash     string
	sizes    map[string]int
	files    []string    // the contract's files, checkpoint.json first
	io       *contractIO // nil until inspected with ONNX Runtime
}

// contractIO is what ONNX Runtime reports about the graphs.
type contractIO struct {
	contract                     int
	encIn, encOut, decIn, decOut []ort.InputOutputInfo
	pastIn, pastOut              []ort.InputOutputInfo // contract 2's decoder with past
	encLayers, decLayers, heads  int
	dModel, vocab                int
	has                          map[string]bool // attention outputs present
	cache                        cacheLayout     // contract 2
}

// files names the contract's graphs: encoder, decoder (and, in contract 2,
// the decoder with past).
func (c *contractIO) files() (enc, dec, past string) {
	if c.contract == 1 {
		return EncoderFile, DecoderFile, ""
	}
	return EncoderModelFile, DecoderModelFile, DecoderWithPastFile
}

// OpenCheckpoint reads and checks the checkpoint in folder dir of fsys.
// When ONNX Runtime is open (NewRuntime) it also checks the graphs'
// inputs and outputs against the contract; otherwise Runtime.Load does.
func OpenCheckpoint(fsys fs.FS, dir string) (*Checkpoint, error) {
	ck := &Checkpoint{name: dir, sizes: map[string]int{}}
	files := map[string][]byte{}
	read := func(f string, names []string) error {
		b, err := fs.ReadFile(fsys, path.Join(dir, f))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s missing: a checkpoint holds %s and %s", f, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
			}
			return fmt.Errorf("reading %s: %w", f, err)
		}
		files[f] = b
		ck.sizes[f] = len(b)
		return nil
	}
	if err := read(MetaFile, contractFiles[ContractVersion]); err != nil {
		return nil, err
	}
	if err := ck.parseMeta(files[MetaFile]); err != nil {
		return nil, fmt.Errorf("%s: %w", MetaFile, err)
	}
	names := contractFiles[ck.meta.Contract]
	spec, err := hfTokenizerSpec(ck.meta.Extra["tokenizer"])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", MetaFile, err)
	}
	if spec != nil {
		if ck.meta.Contract != 2 {
			return nil, fmt.Errorf("%s: a Hugging Face tokenizer needs contract 2", MetaFile)
		}
		names = slices.Concat(slices.DeleteFunc(slices.Clone(names), func(f string) bool { return f == TokenizerFile }), spec.files())
	}
	for _, f := range names[1:] {
		if err := read(f, names); err != nil {
			return nil, fmt.Errorf("contract %d: %w", ck.meta.Contract, err)
		}
	}
	ck.files = names
	var tok *Tokenizer
	tokName := TokenizerFile
	if spec != nil {
		tokName = spec.Source
		tok, err = newHFTokenizer(spec, files)
	} else {
		tok, err = NewTokenizer(TokenizerFile, files[TokenizerFile])
		if err == nil {
			tok.srcSuffix = []int32{ck.meta.EosID}
		}
	}
	if err != nil {
		return nil, err
	}
	for _, s := range []struct {
		name string
		id   *int32
	}{{"bos_id", &ck.meta.BosID}, {"eos_id", &ck.meta.EosID}, {"pad_id", &ck.meta.PadID}, {"decoder_start_token_id", ck.meta.DecoderStartID}, {"forced_bos_token_id", ck.meta.ForcedBosID}} {
		if s.id != nil && int(*s.id) >= tok.VocabSize() {
			return nil, fmt.Errorf("%s: %s %d is outside %s's %d pieces", MetaFile, s.name, *s.id, tokName, tok.VocabSize())
		}
	}
	ck.suppress = ck.suppressed()
	for _, id := range ck.suppress {
		if int(id) >= tok.VocabSize() {
			return nil, fmt.Errorf("%s: suppress_token_ids: %d is outside %s's %d pieces", MetaFile, id, tokName, tok.VocabSize())
		}
	}
	ck.tok = tok
	if ck.meta.Contract == 1 {
		ck.encoder, ck.decoder = files[EncoderFile], files[DecoderFile]
	} else {
		ck.encoder, ck.decoder, ck.past = files[EncoderModelFile], files[DecoderModelFile], files[DecoderWithPastFile]
	}
	ck.hash = hashFiles(files)
	if ort.IsInitialized() {
		if err := ck.inspect(); err != nil {
			return nil, err
		}
	}
	return ck, nil
}

func (ck *Checkpoint) parseMeta(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, f := range []string{"contract", "bos_id", "eos_id", "pad_id"} {
		if _, ok := all[f]; !ok {
			return fmt.Errorf("field %q missing", f)
		}
	}
	if err := json.Unmarshal(b, &ck.meta); err != nil {
		return err
	}
	if _, ok := contractFiles[ck.meta.Contract]; !ok {
		return fmt.Errorf("contract %d: this attnaudit reads contracts 1 to %d", ck.meta.Contract, ContractVersion)
	}
	if ck.meta.ForcedBosID != nil && ck.meta.Contract == 1 {
		return fmt.Errorf("forced_bos_token_id %d: forcing the first output token needs contract 2 (set it to null)", *ck.meta.ForcedBosID)
	}
	if ck.meta.ForcedBosID != nil && *ck.meta.ForcedBosID < 0 {
		return fmt.Errorf("forced_bos_token_id %d is negative", *ck.meta.ForcedBosID)
	}
	if ck.meta.DecoderStartID != nil && *ck.meta.DecoderStartID < 0 {
		return fmt.Errorf("decoder_start_token_id %d is negative", *ck.meta.DecoderStartID)
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"bos_id", ck.meta.BosID}, {"eos_id", ck.meta.EosID}, {"pad_id", ck.meta.PadID}} {
		if s.id < 0 {
			return fmt.Errorf("%s %d is negative", s.name, s.id)
		}
	}
	if ck.meta.SuppressIDs != nil {
		for _, id := range *ck.meta.SuppressIDs {
			if id < 0 {
				return fmt.Errorf("suppress_token_ids: %d is negative", id)
			}
		}
	}
	if ck.meta.MaxPositions < 0 {
		return fmt.Errorf("max_positions %d is negative", ck.meta.MaxPositions)
	}
	known := map[string]bool{}
	for _, f := range []string{"contract", "name", "epoch", "step", "bos_id", "eos_id", "pad_id",
		"src_lang", "tgt_lang", "train_loss", "valid_loss", "max_positions",
		"decoder_start_token_id", "forced_bos_token_id", "suppress_token_ids"} {
		known[f] = true
	}
	ck.meta.Extra = map[string]json.RawMessage{}
	for k, v := range all {
		if !known[k] {
			ck.meta.Extra[k] = v
		}
	}
	ck.rawMeta = append(json.RawMessage(nil), b...)
	return nil
}

// hashFiles is the SHA-256 over the contract files in name order, each as
// its name, a NUL, its length (8 bytes, big-endian) and its bytes.
func hashFiles(files map[string][]byte) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	var n [8]byte
	for _, name := range names {
		io.WriteString(h, name+"\x00")
		binary.BigEndian.PutUint64(n[:], uint64(len(files[name])))
		h.Write(n[:])
		h.Write(files[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hfTokenizerSpec reads checkpoint.json's "tokenizer": nil for the
// SentencePiece tokenizer.model (absent, or a file name), the spec when it
// is an object.
func hfTokenizerSpec(raw json.RawMessage) (*HFTokenizerSpec, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, nil
	}
	var spec HFTokenizerSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if err := spec.check(); err != nil {
		return nil, err
	}
	return &spec, nil
}

// decoderStart is the decoder's first input: decoder_start_token_id, else
// bos_id.
func (ck *Checkpoint) decoderStart() int32 {
	if ck.meta.DecoderStartID != nil {
		return *ck.meta.DecoderStartID
	}
	return ck.meta.BosID
}

// suppressed are the ids search never picks (checkpoint.json's
// suppress_token_ids; by default padding and BOS). Opening a checkpoint
// keeps them in ck.suppress, which search reads for every row of every
// step.
func (ck *Checkpoint) suppressed() []int32 {
	if ck.meta.SuppressIDs != nil {
		return *ck.meta.SuppressIDs
	}
	return []int32{ck.meta.PadID, ck.meta.BosID}
}

// Contract is the checkpoint contract of the folder (checkpoint.json's
// "contract"): 1 or 2.
func (ck *Checkpoint) Contract() int { return ck.meta.Contract }

// Name is checkpoint.json's name.
func (ck *Checkpoint) Name() string { return ck.meta.Name }

// Meta is checkpoint.json.
func (ck *Checkpoint) Meta() Meta { return ck.meta }

// MetaJSON is checkpoint.json as written.
func (ck *Checkpoint) MetaJSON() json.RawMessage { return ck.rawMeta }

// Hash identifies the checkpoint's content: the SHA-256 (hex) of its
// contract files, the same wherever the folder lies.
func (ck *Checkpoint) Hash() string { return ck.hash }

// Tokenizer is the SentencePiece model of source and target.
func (ck *Checkpoint) Tokenizer() *Tokenizer { return ck.tok }

// MaxSourceTokens is the most source pieces the model takes (its positions
// less one for EOS), or 0 when checkpoint.json does not record max_positions.
func (ck *Checkpoint) MaxSourceTokens() int {
	if ck.meta.MaxPositions == 0 {
		return 0
	}
	return ck.meta.MaxPositions - 1
}

// Layers is the number of encoder and decoder layers, known once the graphs
// are inspected (OpenCheckpoint with ONNX Runtime open, or Runtime.Load);
// zero before. A count is zero too when its attention output is missing.
func (ck *Checkpoint) Layers() (encoder, decoder int) {
	if ck.io == nil {
		return 0, 0
	}
	return ck.io.encLayers, ck.io.decLayers
}

// Heads is the number of attention heads (the same in every attention
// tensor), known as Layers is.
func (ck *Checkpoint) Heads() int {
	if ck.io == nil {
		return 0
	}
	return ck.io.heads
}

// RequireAttention returns a *MissingAttentionError for the first of the
// named attention tensors (TensorEncoderSelf, TensorDecoderSelf,
// TensorCross) that the checkpoint does not export.
func (ck *Checkpoint) RequireAttention(tensors ...string) error {
	if err := ck.inspect(); err != nil {
		return err
	}
	encFile, decFile, _ := ck.io.files()
	for _, t := range tensors {
		file := decFile
		switch t {
		case TensorEncoderSelf:
			file = encFile
		case TensorDecoderSelf, TensorCross:
		default:
			return fmt.Errorf("%q is not an attention tensor", t)
		}
		if !ck.io.has[t] {
			return &MissingAttentionError{File: file, Tensor: t}
		}
	}
	return nil
}

// inspect checks the graphs' inputs and outputs against the contract.
func (ck *Checkpoint) inspect() error {
	if ck.io != nil {
		return nil
	}
	if !ort.IsInitialized() {
		return errors.New("inspecting the checkpoint's graphs needs ONNX Runtime: open a Runtime first")
	}
	c := &contractIO{contract: ck.meta.Contract, has: map[string]bool{}}
	encFile, decFile, pastFile := c.files()
	type graph struct {
		file    string
		data    []byte
		in, out *[]ort.InputOutputInfo
	}
	graphs := []graph{{encFile, ck.encoder, &c.encIn, &c.encOut}, {decFile, ck.decoder, &c.decIn, &c.decOut}}
	if c.contract == 2 {
		graphs = append(graphs, graph{pastFile, ck.past, &c.pastIn, &c.pastOut})
	}
	for _, g := range graphs {
		var err error
		if *g.in, *g.out, err = graphIO(g.data); err != nil {
			return fmt.Errorf("%s: %w", g.file, err)
		}
	}
	var err error
	if c.contract == 1 {
		err = c.check()
	} else {
		err = c.check2()
	}
	if err == nil {
		err = c.checkValueNorms()
	}
	if err != nil {
		return err
	}
	if c.vocab < ck.tok.VocabSize() {
		return fmt.Errorf("%s: output %s has %d classes but the tokenizer has %d pieces", decFile, TensorLogits, c.vocab, ck.tok.VocabSize())
	}
	ck.io = c
	return nil
}

// spec is one contract tensor: its element type, rank, and which axes must
// be static (layers, heads, d_model, vocab).
type spec struct {
	name     string
	typ      ort.TensorElementDataType
	rank     int
	static   []int
	optional bool
}

var (
	i64 = ort.TensorElementDataType(ort.TensorElementDataTypeInt64)
	f32 = ort.TensorElementDataType(ort.TensorElementDataTypeFloat)
)

var (
	encInputs  = []spec{{name: TensorSrcIDs, typ: i64, rank: 2}}
	encOutputs = []spec{
		{name: TensorMemory, typ: f32, rank: 3, static: []int{2}},
		{name: TensorEncoderSelf, typ: f32, rank: 5, static: []int{0, 2}, optional: true},
	}
	decInputs = []spec{
		{name: TensorTgtIDs, typ: i64, rank: 2},
		{name: TensorMemory, typ: f32, rank: 3, static: []int{2}},
		{name: TensorSrcIDs, typ: i64, rank: 2},
	}
	decOutputs = []spec{
		{name: TensorLogits, typ: f32, rank: 3, static: []int{2}},
		{name: TensorDecoderSelf, typ: f32, rank: 5, static: []int{0, 2}, optional: true},
		{name: TensorCross, typ: f32, rank: 5, static: []int{0, 2}, optional: true},
	}
)

func (c *contractIO) check() error {
	if err := checkTensors(EncoderFile, "input", c.encIn, encInputs, true); err != nil {
		return err
	}
	if err := checkTensors(EncoderFile, "output", c.encOut, encOutputs, false); err != nil {
		return err
	}
	if err := checkTensors(DecoderFile, "input", c.decIn, decInputs, true); err != nil {
		return err
	}
	if err := checkTensors(DecoderFile, "output", c.decOut, decOutputs, false); err != nil {
		return err
	}
	encMem, decMem := find(c.encOut, TensorMemory).Dimensions[2], find(c.decIn, TensorMemory).Dimensions[2]
	if encMem != decMem {
		return fmt.Errorf("%s: input %s has d_model %d but %s's output has %d", DecoderFile, TensorMemory, decMem, EncoderFile, encMem)
	}
	c.dModel = int(encMem)
	c.vocab = int(find(c.decOut, TensorLogits).Dimensions[2])
	type attn struct {
		file, name string
		layers     *int
	}
	first := ""
	for _, a := range []attn{
		{EncoderFile, TensorEncoderSelf, &c.encLayers},
		{DecoderFile, TensorDecoderSelf, &c.decLayers},
		{DecoderFile, TensorCross, &c.decLayers},
	} {
		outs := c.decOut
		if a.file == EncoderFile {
			outs = c.encOut
		}
		info := find(outs, a.name)
		if info == nil {
			continue
		}
		c.has[a.name] = true
		layers, heads := int(info.Dimensions[0]), int(info.Dimensions[2])
		if *a.layers != 0 && *a.layers != layers {
			return fmt.Errorf("%s: output %s has %d layers but %s has %d", a.file, a.name, layers, TensorDecoderSelf, *a.layers)
		}
		*a.layers = layers
		if c.heads != 0 && c.heads != heads {
			return fmt.Errorf("%s: output %s has %d heads but %s has %d", a.file, a.name, heads, first, c.heads)
		}
		c.heads, first = heads, a.name
	}
	return nil
}

func find(infos []ort.InputOutputInfo, name string) *ort.InputOutputInfo {
	for i := range infos {
		if infos[i].Name == name {
			return &infos[i]
		}
	}
	return nil
}

// checkTensors checks infos against want. Inputs must be exactly the
// contract's (we could not feed others); extra outputs are ignored.
func checkTensors(file, kind string, infos []ort.InputOutputInfo, want []spec, exact bool) error {
	for _, w := range want {
		info := find(infos, w.name)
		if info == nil {
			if w.optional {
				continue
			}
			return fmt.Errorf("%s: %s %s missing (the graph has %s)", file, kind, w.name, names(infos))
		}
		if info.OrtValueType != ort.ONNXTypeTensor {
			return fmt.Errorf("%s: %s %s is a %s, not a tensor", file, kind, w.name, info.OrtValueType)
		}
		if info.DataType != w.typ {
			return fmt.Errorf("%s: %s %s has element type %s, want %s", file, kind, w.name, info.DataType, w.typ)
		}
		if len(info.Dimensions) != w.rank {
			return fmt.Errorf("%s: %s %s has wrong rank %d (shape %s), want %d", file, kind, w.name, len(info.Dimensions), info.Dimensions, w.rank)
		}
		for _, ax := range w.static {
			if info.Dimensions[ax] <= 0 {
				return fmt.Errorf("%s: %s %s: axis %d is dynamic (shape %s); the contract needs it static", file, kind, w.name, ax, info.Dimensions)
			}
		}
	}
	if exact {
		for _, info := range infos {
			if !slices.ContainsFunc(want, func(s spec) bool { return s.name == info.Name }) {
				return fmt.Errorf("%s: unexpected %s %s: the contract's %ss are %s", file, kind, info.Name, kind, specNames(want))
			}
		}
	}
	return nil
}

func names(infos []ort.InputOutputInfo) string {
	var s []string
	for _, i := range infos {
		s = append(s, i.Name)
	}
	return strings.Join(s, ", ")
}

func specNames(specs []spec) string {
	var s []string
	for _, sp := range specs {
		s = append(s, sp.name)
	}
	return strings.Join(s, ", ")
}

// Describe writes the checkpoint's contract for `attnaudit inspect`: its
// files, the graphs' inputs and outputs, layers, heads, vocabulary, special
// ids and checkpoint.json.
func (ck *Checkpoint) Describe(w io.Writer) error {
	if err := ck.inspect(); err != nil {
		return err
	}
	c := ck.io
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoint  %s (contract %d)\n", ck.meta.Name, ck.meta.Contract)
	fmt.Fprintf(&b, "hash        %s\n", ck.hash)
	for _, f := range ck.files {
		fmt.Fprintf(&b, "file        %-30s %9d bytes\n", f, ck.sizes[f])
	}
	encFile, decFile, pastFile := c.files()
	describeGraph(&b, encFile, c.encIn, c.encOut)
	describeGraph(&b, decFile, c.decIn, c.decOut)
	if c.contract == 2 {
		describeGraph(&b, pastFile, c.pastIn, c.pastOut)
		fmt.Fprintf(&b, "cache       Optimum seq2seq: %d layers × {decoder, encoder} × {key, value}, [batch, %d heads, positions, %d]; %s returns all %d, %s reads them and returns the %d decoder ones\n",
			c.cache.layers, c.cache.heads, c.cache.dim, decFile, 4*c.cache.layers, pastFile, 2*c.cache.layers)
	} else {
		fmt.Fprintf(&b, "cache       none: the decoder re-reads the whole prefix each step\n")
	}
	for _, t := range []string{TensorEncoderSelf, TensorDecoderSelf, TensorCross} {
		if err := ck.RequireAttention(t); err != nil {
			fmt.Fprintf(&b, "missing     %v\n", err)
			continue
		}
		where := encFile
		switch {
		case t != TensorEncoderSelf && c.contract == 2:
			where = decFile + " and " + pastFile + ", one row per cached step"
		case t != TensorEncoderSelf:
			where = decFile + ", one teacher-forced pass"
		}
		fmt.Fprintf(&b, "attention   %-18s (%s)\n", t, where)
	}
	fmt.Fprintf(&b, "%s", c.describeValueNorms())
	fmt.Fprintf(&b, "layers      encoder %d, decoder %d\n", c.encLayers, c.decLayers)
	fmt.Fprintf(&b, "heads       %d\n", c.heads)
	fmt.Fprintf(&b, "d_model     %d\n", c.dModel)
	fmt.Fprintf(&b, "vocab       %d (tokenizer: %d pieces)\n", c.vocab, ck.tok.VocabSize())
	m := ck.meta
	fmt.Fprintf(&b, "special ids bos %d %s, eos %d %s, pad %d %s\n", m.BosID, ck.tok.Piece(m.BosID), m.EosID, ck.tok.Piece(m.EosID), m.PadID, ck.tok.Piece(m.PadID))
	if c.contract == 2 {
		forced := "none"
		if f := ck.meta.ForcedBosID; f != nil {
			forced = fmt.Sprintf("%d %s", *f, ck.tok.Piece(*f))
		}
		fmt.Fprintf(&b, "decoder start %d %s (forced first token: %s)\n", ck.decoderStart(), ck.tok.Piece(ck.decoderStart()), forced)
	}
	if n := ck.MaxSourceTokens(); n > 0 {
		fmt.Fprintf(&b, "max source  %d tokens\n", n)
	}
	var meta bytes.Buffer
	if err := json.Indent(&meta, ck.rawMeta, "  ", "  "); err != nil {
		return err
	}
	fmt.Fprintf(&b, "%s\n  %s\n", MetaFile, meta.String())
	_, err := io.WriteString(w, b.String())
	return err
}

// shapeString writes dynamic axes as "?".
func shapeString(s ort.Shape) string {
	parts := make([]string, len(s))
	for i, d := range s {
		if d < 0 {
			parts[i] = "?"
		} else {
			parts[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
