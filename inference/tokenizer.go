package inference

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	sentencepiece "github.com/eliben/go-sentencepiece"
	"google.golang.org/protobuf/encoding/protowire"
)

// Tokenizer turns source and target text into the model's ids and back.
// It is either the reference models' SentencePiece model (NewTokenizer;
// BPE, identity normalisation, no dummy prefix, no whitespace removal:
// DEVELOPERS.md), whose encoding equals the SentencePiece library's, or a
// Hugging Face checkpoint's own tokenizer (checkpoint.json's "tokenizer"
// object, hftok.go), equal to the model's transformers tokenizer.
type Tokenizer struct {
	encodeSrc, encodeTgt func(string) ([]int32, []string) // text only, no special ids
	decode               func([]int32) string
	pieces               []string // id → piece
	// Special ids the model's tokenizer puts around a source and before a
	// target (the target's EOS is predicted, not given).
	srcPrefix, srcSuffix, tgtPrefix []int32
	hf                              *hfCodec // nil for the SentencePiece model
}

// NewTokenizer reads a SentencePiece model; name is used in errors.
// Models with settings other than DEVELOPERS.md's are rejected, since they
// would tokenise differently from the way the model was trained.
func NewTokenizer(name string, model []byte) (*Tokenizer, error) {
	pieces, err := checkSentencePiece(model)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	proc, err := sentencepiece.NewProcessor(bytes.NewReader(withMergeBuffer(model, pieces)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	encode := func(s string) ([]int32, []string) {
		toks := proc.Encode(s)
		ids := make([]int32, len(toks))
		ps := make([]string, len(toks))
		for i, tok := range toks {
			ids[i] = int32(tok.ID)
			ps[i] = pieces[tok.ID]
		}
		return ids, ps
	}
	decode := func(ids []int32) string {
		in := make([]int, 0, len(ids))
		var sb strings.Builder
		for _, id := range ids {
			if id < 0 || int(id) >= len(pieces) {
				sb.WriteString(proc.Decode(in))
				sb.WriteRune('\uFFFD')
				in = in[:0]
				continue
			}
			in = append(in, int(id))
		}
		sb.WriteString(proc.Decode(in))
		return sb.String()
	}
	return &Tokenizer{encodeSrc: encode, encodeTgt: encode, decode: decode, pieces: pieces}, nil
}

// Encode splits source text s into pieces and their ids, without special
// ids (for the SentencePiece model: as spm_encode does).
func (t *Tokenizer) Encode(s string) (ids []int32, pieces []string) { return t.encodeSrc(s) }

// Count is the number of pieces of s (Encode's).
func (t *Tokenizer) Count(s string) int {
	ids, _ := t.encodeSrc(s)
	return len(ids)
}

// Source is what the encoder reads for s: the special prefix, s's pieces,
// the special suffix (EOS).
func (t *Tokenizer) Source(s string) (ids []int32, pieces []string) {
	ids, pieces = t.encodeSrc(s)
	ids = slices.Concat(t.srcPrefix, ids, t.srcSuffix)
	pieces = slices.Concat(t.Pieces(t.srcPrefix), pieces, t.Pieces(t.srcSuffix))
	return ids, pieces
}

// Target is the target tokens of s that the decoder is forced with: the
// special prefix (a language token) and s's pieces, without the final EOS.
func (t *Tokenizer) Target(s string) []int32 {
	ids, _ := t.encodeTgt(s)
	return slices.Concat(t.tgtPrefix, ids)
}

// SourceLen is the number of ids the encoder reads for s (Source's).
func (t *Tokenizer) SourceLen(s string) int {
	ids, _ := t.encodeSrc(s)
	return len(t.srcPrefix) + len(ids) + len(t.srcSuffix)
}

// TargetLen is the number of decoder positions target s takes: Target's
// tokens and the EOS they predict last.
func (t *Tokenizer) TargetLen(s string) int {
	ids, _ := t.encodeTgt(s)
	return len(t.tgtPrefix) + len(ids) + 1
}

// Decode turns ids back into text: special ids (BOS, EOS, padding, language
// tokens) give nothing, byte pieces are joined into UTF-8. Ids outside the
// vocabulary give U+FFFD.
func (t *Tokenizer) Decode(ids []int32) string { return t.decode(ids) }

// Piece is the piece of an id ("▁the", "<0xE3>", "</s>").
func (t *Tokenizer) Piece(id int32) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return fmt.Sprintf("<id %d>", id)
	}
	return t.pieces[id]
}

// Pieces maps ids to their pieces.
func (t *Tokenizer) Pieces(ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.Piece(id)
	}
	return out
}

// VocabSize is the number of pieces.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// withMergeBuffer works around a go-sentencepiece v0.6.0 bug: Encode
// concatenates two adjacent symbols into a buffer sized to the longest piece
// and panics (slice bounds out of range) when the pair is longer, which
// happens on ordinary Korean text. The buffer is sized from the pieces of
// the model, so we append one UNUSED piece longer than any two symbols
// together (symbols are pieces or single runes). No merge can produce it,
// since a merge result is at most as long as two symbols, and its id comes
// after every real one, so encoding is unchanged.
func withMergeBuffer(model []byte, pieces []string) []byte {
	longest := 4 // a single rune
	for _, p := range pieces {
		longest = max(longest, len(p))
	}
	var piece []byte
	piece = protowire.AppendTag(piece, spmPiece, protowire.BytesType)
	piece = protowire.AppendString(piece, strings.Repeat("\uFFFD", (2*longest)/3+2))
	piece = protowire.AppendTag(piece, spmPieceType, protowire.VarintType)
	piece = protowire.AppendVarint(piece, spmUnused)
	out := append([]byte(nil), model...)
	out = protowire.AppendTag(out, spmPieces, protowire.BytesType)
	return protowire.AppendBytes(out, piece)
}

// SentencePiece ModelProto field numbers (sentencepiece_model.proto).
const (
	spmPieces         = 1 // ModelProto.pieces
	spmTrainerSpec    = 2
	spmNormalizerSpec = 3
	spmDenormalizer   = 5
	spmPiece          = 1 // SentencePiece.piece
	spmPieceType      = 3 // SentencePiece.type
	spmUnused         = 5 // SentencePiece.Type UNUSED

	trainerModelType        = 3
	trainerWhitespaceSuffix = 24

	normName             = 1
	normCharsmap         = 2
	normAddDummyPrefix   = 3
	normRemoveWhitespace = 4
	normEscapeWhitespace = 5

	spmBPE = 2
)

var spmModelTypes = map[uint64]string{1: "UNIGRAM", 2: "BPE", 3: "WORD", 4: "CHAR"}

// checkSentencePiece reads the pieces of a ModelProto and rejects settings
// go-sentencepiece does not reproduce: it implements BPE only, applies no
// normalisation charsmap, always escapes spaces as ▁, and neither adds a
// dummy prefix nor removes extra whitespace.
func checkSentencePiece(model []byte) ([]string, error) {
	var pieces []string
	modelType := uint64(1) // proto defaults
	addDummy, removeWS, escapeWS, suffix := true, true, true, false
	var normalizer string
	var charsmap, denormCharsmap int
	err := walkProto(model, func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error {
		switch num {
		case spmPieces:
			piece := ""
			err := walkProto(v, func(n protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				if n == spmPiece {
					piece = string(v)
				}
				return nil
			})
			pieces = append(pieces, piece)
			return err
		case spmTrainerSpec:
			return walkProto(v, func(n protowire.Number, _ protowire.Type, _ []byte, u uint64) error {
				switch n {
				case trainerModelType:
					modelType = u
				case trainerWhitespaceSuffix:
					suffix = u != 0
				}
				return nil
			})
		case spmNormalizerSpec:
			return walkProto(v, func(n protowire.Number, _ protowire.Type, v []byte, u uint64) error {
				switch n {
				case normName:
					normalizer = string(v)
				case normCharsmap:
					charsmap = len(v)
				case normAddDummyPrefix:
					addDummy = u != 0
				case normRemoveWhitespace:
					removeWS = u != 0
				case normEscapeWhitespace:
					escapeWS = u != 0
				}
				return nil
			})
		case spmDenormalizer:
			return walkProto(v, func(n protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				if n == normCharsmap {
					denormCharsmap = len(v)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("not a SentencePiece model: %w", err)
	}
	const retrain = "; retrain it with the settings in DEVELOPERS.md"
	switch {
	case len(pieces) == 0:
		return nil, fmt.Errorf("not a SentencePiece model: no pieces")
	case modelType != spmBPE:
		name := spmModelTypes[modelType]
		if name == "" {
			name = fmt.Sprint(modelType)
		}
		return nil, fmt.Errorf("model_type %s is not supported: attnaudit's tokenizer implements BPE only%s", name, retrain)
	case addDummy:
		return nil, fmt.Errorf("add_dummy_prefix=true is not supported%s", retrain)
	case removeWS:
		return nil, fmt.Errorf("remove_extra_whitespaces=true is not supported%s", retrain)
	case !escapeWS:
		return nil, fmt.Errorf("escape_whitespaces=false is not supported%s", retrain)
	case suffix:
		return nil, fmt.Errorf("treat_whitespace_as_suffix=true is not supported%s", retrain)
	case charsmap > 0:
		return nil, fmt.Errorf("normalizer %q has a normalisation charsmap (%d bytes), which is not supported: use normalization_rule_name=identity%s", normalizer, charsmap, retrain)
	case denormCharsmap > 0:
		return nil, fmt.Errorf("the denormalizer has a charsmap (%d bytes), which is not supported%s", denormCharsmap, retrain)
	}
	return pieces, nil
}

// walkProto calls f for each field of a protobuf message: v holds the bytes
// of length-delimited fields, u the value of varint and fixed fields.
func walkProto(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, u uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var u uint64
		switch typ {
		case protowire.VarintType:
			u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			u = uint64(x)
		case protowire.Fixed64Type:
			u, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, u); err != nil {
			return err
		}
	}
	return nil
}
