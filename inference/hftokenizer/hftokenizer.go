// Package hftokenizer reads Hugging Face tokenizer.json files with the
// tokenizers crate (Rust), linked in as a static library built by
// `make tokenizers` from ffi/ (the crate pinned to the version inside the
// pinned Python tokenizers wheel, so this is the code the model's own fast
// tokenizer runs). Unigram models are the exception: SentencePiece, which
// the slow tokenizers (MarianTokenizer) run, sums piece scores in float32,
// and its ties then fall differently from the crate's float64 lattice
// ("000" as "00"+"0" against "0"+"00"), so Encode runs SentencePiece's
// Viterbi search itself (unigram.go) over the crate's normalised splits.
package hftokenizer

/*
#cgo LDFLAGS: ${SRCDIR}/../../third_party/tokenizers/target/release/libattnaudit_tokenizers.a -ldl -lm -lpthread
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct AttTokenizer AttTokenizer;
typedef struct {
	size_t len;
	uint32_t *ids;
	size_t *offsets;
	uint8_t *tokens;
	size_t tokens_len;
} AttEncoding;

AttTokenizer *att_tok_new(const uint8_t *json, size_t n, char **err);
void att_tok_free(AttTokenizer *t);
void att_tok_free_string(char *s);
bool att_tok_encode(const AttTokenizer *t, const uint8_t *text, size_t n, bool add_special, AttEncoding *out, char **err);
bool att_tok_pre_tokenize(const AttTokenizer *t, const uint8_t *text, size_t n, AttEncoding *out, char **err);
void att_tok_free_encoding(AttEncoding *e);
bool att_tok_decode_pieces(const AttTokenizer *t, const uint8_t *tokens, const size_t *offsets, size_t count, char **out, char **err);
size_t att_tok_vocab_size(const AttTokenizer *t);
char *att_tok_id_to_token(const AttTokenizer *t, uint32_t id);
int64_t att_tok_token_to_id(const AttTokenizer *t, const uint8_t *tok, size_t n);
*/
import "C"

import (
	"errors"
	"runtime"
	"unsafe"
)

// Tokenizer is one tokenizer.json. It is safe for concurrent use.
type Tokenizer struct {
	p       *C.AttTokenizer
	unigram *unigram // non-nil for a Unigram model
}

// New reads the bytes of a tokenizer.json.
func New(data []byte) (*Tokenizer, error) {
	if len(data) == 0 {
		return nil, errors.New("empty tokenizer.json")
	}
	var cerr *C.char
	p := C.att_tok_new((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)), &cerr)
	if p == nil {
		return nil, takeError(cerr)
	}
	t := &Tokenizer{p: p}
	runtime.SetFinalizer(t, func(t *Tokenizer) { C.att_tok_free(t.p) })
	return t, nil
}

// WithSentencePiece makes Encode split each normalised span with the
// SentencePiece unigram model spm (the .spm file the tokenizer.json was
// converted from), as the SentencePiece library does: its ids are the
// model's. The tokenizer.json's model must be that Unigram model.
func (t *Tokenizer) WithSentencePiece(spm []byte) error {
	u, err := readUnigram(spm)
	if err != nil {
		return err
	}
	t.unigram = u
	return nil
}

func takeError(cerr *C.char) error {
	if cerr == nil {
		return errors.New("tokenizers: unknown error")
	}
	defer C.att_tok_free_string(cerr)
	return errors.New(C.GoString(cerr))
}

// cText passes s to C without copying; the callee must not keep it.
func cText(s string) (*C.uint8_t, C.size_t) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))
}

// takeEncoding copies an AttEncoding into Go and frees it.
func takeEncoding(e *C.AttEncoding) (ids []uint32, toks []string) {
	defer C.att_tok_free_encoding(e)
	n := int(e.len)
	if n == 0 {
		return nil, nil
	}
	ids = append([]uint32(nil), unsafe.Slice((*uint32)(unsafe.Pointer(e.ids)), n)...)
	offs := unsafe.Slice((*uintptr)(unsafe.Pointer(e.offsets)), n+1)
	all := C.GoBytes(unsafe.Pointer(e.tokens), C.int(e.tokens_len))
	toks = make([]string, n)
	for i := range toks {
		toks[i] = string(all[offs[i]:offs[i+1]])
	}
	return ids, toks
}

// Encode splits text into tokens and their ids (the tokenizer's own ids),
// without the post-processor's special tokens.
func (t *Tokenizer) Encode(text string) (ids []uint32, tokens []string, err error) {
	p, n := cText(text)
	if t.unigram != nil {
		var e C.AttEncoding
		var cerr *C.char
		ok := C.att_tok_pre_tokenize(t.p, p, n, &e, &cerr)
		runtime.KeepAlive(text)
		runtime.KeepAlive(t)
		if !ok {
			return nil, nil, takeError(cerr)
		}
		splitIDs, splits := takeEncoding(&e)
		for i, s := range splits {
			if splitIDs[i] != noID {
				ids, tokens = append(ids, splitIDs[i]), append(tokens, s)
				continue
			}
			ids, tokens = t.unigram.encode(s, ids, tokens)
		}
		return ids, tokens, nil
	}
	var e C.AttEncoding
	var cerr *C.char
	ok := C.att_tok_encode(t.p, p, n, false, &e, &cerr)
	runtime.KeepAlive(text)
	runtime.KeepAlive(t)
	if !ok {
		return nil, nil, takeError(cerr)
	}
	ids, tokens = takeEncoding(&e)
	return ids, tokens, nil
}

// noID marks a pre-tokenizer split that is not an added token.
const noID = ^uint32(0)

// DecodePieces turns tokens into text with the tokenizer's decoder
// (▁ to spaces, byte pieces to UTF-8, …).
func (t *Tokenizer) DecodePieces(tokens []string) (string, error) {
	if len(tokens) == 0 {
		return "", nil
	}
	offs := make([]C.size_t, len(tokens)+1)
	var all []byte
	for i, s := range tokens {
		all = append(all, s...)
		offs[i+1] = C.size_t(len(all))
	}
	var p *C.uint8_t
	if len(all) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&all[0]))
	}
	var out, cerr *C.char
	ok := C.att_tok_decode_pieces(t.p, p, &offs[0], C.size_t(len(tokens)), &out, &cerr)
	runtime.KeepAlive(all)
	runtime.KeepAlive(offs)
	runtime.KeepAlive(t)
	if !ok {
		return "", takeError(cerr)
	}
	defer C.att_tok_free_string(out)
	return C.GoString(out), nil
}

// VocabSize is the number of ids, added tokens included.
func (t *Tokenizer) VocabSize() int {
	n := int(C.att_tok_vocab_size(t.p))
	runtime.KeepAlive(t)
	return n
}

// Token is the token of id; ok is false when the id is not in the vocabulary.
func (t *Tokenizer) Token(id uint32) (tok string, ok bool) {
	s := C.att_tok_id_to_token(t.p, C.uint32_t(id))
	runtime.KeepAlive(t)
	if s == nil {
		return "", false
	}
	defer C.att_tok_free_string(s)
	return C.GoString(s), true
}

// ID is the id of a token; ok is false when it has none.
func (t *Tokenizer) ID(token string) (id uint32, ok bool) {
	p, n := cText(token)
	r := C.att_tok_token_to_id(t.p, p, n)
	runtime.KeepAlive(token)
	runtime.KeepAlive(t)
	if r < 0 {
		return 0, false
	}
	return uint32(r), true
}
