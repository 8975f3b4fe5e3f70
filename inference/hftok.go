package inference

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"attnaudit/inference/hftokenizer"
)

// HFTokenizerSpec is checkpoint.json's "tokenizer" object for a Hugging
// Face checkpoint (export/export_hf.py writes it): which files hold the
// tokenizer, and the special ids the model's own tokenizer adds.
type HFTokenizerSpec struct {
	Kind   string `json:"kind"`   // "huggingface"
	Family string `json:"family"` // marian, m2m100, nllb, mbart50 (for messages)
	// Source and Target are tokenizer.json files (Target may be empty: the
	// source's). Their tokens are the model's pieces.
	Source string `json:"source"`
	Target string `json:"target"`
	// SourceSPM and TargetSPM, when set, are the SentencePiece unigram
	// models Source and Target were converted from (hftokenizer).
	SourceSPM string `json:"source_spm"`
	TargetSPM string `json:"target_spm"`
	// Vocab, when set, is a JSON object piece → model id: the tokenizer's
	// pieces are looked up there (an absent piece is UnkID), as
	// MarianTokenizer and M2M100Tokenizer do; otherwise the tokenizer's
	// ids are the model's.
	Vocab string `json:"vocab"`
	UnkID int32  `json:"unk_id"`
	// The model's own tokenizer's special tokens around a source
	// (M2M100/NLLB/mBART-50: the source language; EOS) and before a target
	// (the target language); the target's final EOS is the model's to predict.
	SourcePrefix []int32 `json:"source_prefix"`
	SourceSuffix []int32 `json:"source_suffix"`
	TargetPrefix []int32 `json:"target_prefix"`
	// Special ids are dropped when decoding (skip_special_tokens).
	Special []int32 `json:"special_ids"`
	// DecodeStrip strips the decoded text's leading and trailing white
	// space, as MarianTokenizer and M2M100Tokenizer do.
	DecodeStrip bool `json:"decode_strip"`
}

// tokenizerFiles are the files a spec names, in a fixed order.
func (s *HFTokenizerSpec) files() []string {
	var out []string
	for _, f := range []string{s.Source, s.Target, s.SourceSPM, s.TargetSPM, s.Vocab} {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func (s *HFTokenizerSpec) check() error {
	switch {
	case s.Kind != "huggingface":
		return fmt.Errorf("tokenizer.kind %q: attnaudit reads \"huggingface\" (or a SentencePiece tokenizer.model)", s.Kind)
	case s.Source == "":
		return errors.New("tokenizer.source (a tokenizer.json) missing")
	}
	return nil
}

// newHFTokenizer builds the Tokenizer of a Hugging Face checkpoint from the
// files its spec names (read into files).
func newHFTokenizer(spec *HFTokenizerSpec, files map[string][]byte) (*Tokenizer, error) {
	load := func(name, spm string) (*hftokenizer.Tokenizer, error) {
		t, err := hftokenizer.New(files[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if spm != "" {
			if err := t.WithSentencePiece(files[spm]); err != nil {
				return nil, fmt.Errorf("%s: %w", spm, err)
			}
		}
		return t, nil
	}
	src, err := load(spec.Source, spec.SourceSPM)
	if err != nil {
		return nil, err
	}
	tgt := src
	if spec.Target != "" && spec.Target != spec.Source {
		if tgt, err = load(spec.Target, spec.TargetSPM); err != nil {
			return nil, err
		}
	}
	h := &hfCodec{src: src, tgt: tgt, unk: spec.UnkID, strip: spec.DecodeStrip}
	if spec.Vocab != "" {
		if err := json.Unmarshal(files[spec.Vocab], &h.ids); err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Vocab, err)
		}
		n := 0
		for p, id := range h.ids {
			if id < 0 {
				return nil, fmt.Errorf("%s: piece %q has negative id %d", spec.Vocab, p, id)
			}
			n = max(n, int(id)+1)
		}
		h.pieces = make([]string, n)
		for p, id := range h.ids {
			h.pieces[id] = p
		}
	} else {
		n := src.VocabSize()
		h.pieces = make([]string, n)
		for id := range h.pieces {
			h.pieces[id], _ = src.Token(uint32(id))
		}
	}
	if spec.UnkID < 0 || int(spec.UnkID) >= len(h.pieces) {
		return nil, fmt.Errorf("tokenizer.unk_id %d is outside the %d pieces", spec.UnkID, len(h.pieces))
	}
	h.special = map[int32]bool{}
	for _, id := range spec.Special {
		h.special[id] = true
	}
	for _, ids := range [][]int32{spec.SourcePrefix, spec.SourceSuffix, spec.TargetPrefix, spec.Special} {
		for _, id := range ids {
			if id < 0 || int(id) >= len(h.pieces) {
				return nil, fmt.Errorf("special id %d is outside the %d pieces", id, len(h.pieces))
			}
		}
	}
	return &Tokenizer{
		encodeSrc: h.encodeSource, encodeTgt: h.encodeTarget, decode: h.decode, pieces: h.pieces,
		srcPrefix: spec.SourcePrefix, srcSuffix: spec.SourceSuffix, tgtPrefix: spec.TargetPrefix, hf: h,
	}, nil
}

// pythonSpace is Python's str.isspace: Go's unicode.IsSpace and the
// information separators U+001C to U+001F.
func pythonSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// hfCodec turns text into model ids through tokenizer.json files.
type hfCodec struct {
	src, tgt *hftokenizer.Tokenizer
	ids      map[string]int32 // piece → model id; nil: the tokenizer's ids are the model's
	pieces   []string         // model id → piece
	unk      int32
	special  map[int32]bool
	strip    bool
}

func (h *hfCodec) encode(t *hftokenizer.Tokenizer, s string) ([]int32, []string) {
	raw, pieces, err := t.Encode(strings.ToValidUTF8(s, "\uFFFD"))
	if err != nil {
		// Only invalid UTF-8 fails, and dataset readers reject it first.
		return []int32{h.unk}, []string{h.pieces[h.unk]}
	}
	ids := make([]int32, len(raw))
	for i, id := range raw {
		if h.ids == nil {
			ids[i] = int32(id)
			continue
		}
		m, ok := h.ids[pieces[i]]
		if !ok {
			m = h.unk
		}
		ids[i] = m
	}
	return ids, pieces
}

func (h *hfCodec) encodeSource(s string) ([]int32, []string) { return h.encode(h.src, s) }
func (h *hfCodec) encodeTarget(s string) ([]int32, []string) { return h.encode(h.tgt, s) }

// decode drops special ids and joins the pieces with the target
// tokenizer's decoder, as the model's tokenizer decodes with
// skip_special_tokens.
func (h *hfCodec) decode(ids []int32) string {
	pieces := make([]string, 0, len(ids))
	for _, id := range ids {
		switch {
		case h.special[id]:
		case id < 0 || int(id) >= len(h.pieces):
			pieces = append(pieces, "\uFFFD")
		default:
			pieces = append(pieces, h.pieces[id])
		}
	}
	s, err := h.tgt.DecodePieces(pieces)
	if err != nil {
		return "\uFFFD"
	}
	if h.strip {
		s = strings.TrimFunc(s, pythonSpace)
	}
	return s
}
