package hftokenizer

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// unigram is a SentencePiece unigram model, searched as SentencePiece's
// Model::EncodeOptimized does (float32 path scores, the first best path
// kept on ties, unknown characters scored min_score − 10), with the
// processor's post-processing: byte fallback, else runs of unknown
// characters merged into one unknown piece.
type unigram struct {
	pieces       []string
	score        []float32
	userDefined  []bool
	trie         map[string]uint32 // NORMAL and USER_DEFINED pieces
	maxLen       int               // the longest of them, in bytes
	minScore     float32
	maxScore     float32
	unkID        uint32
	byteFallback bool
	bytePiece    [256]uint32
}

// SentencePiece piece types (sentencepiece_model.proto).
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

func readUnigram(model []byte) (*unigram, error) {
	u := &unigram{trie: map[string]uint32{}, minScore: math.MaxFloat32, maxScore: -math.MaxFloat32}
	modelType := uint64(1)
	unk := -1
	var bytes int
	for b := model; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("not a SentencePiece model: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType { // pieces
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, fmt.Errorf("not a SentencePiece model: %w", protowire.ParseError(n))
			}
			b = b[n:]
			piece, score, ptype, err := readPiece(v)
			if err != nil {
				return nil, err
			}
			id := uint32(len(u.pieces))
			u.pieces = append(u.pieces, piece)
			u.score = append(u.score, score)
			u.userDefined = append(u.userDefined, ptype == typeUserDefined)
			switch ptype {
			case typeNormal, typeUserDefined:
				u.trie[piece] = id
				u.maxLen = max(u.maxLen, len(piece))
				if ptype == typeNormal {
					u.minScore, u.maxScore = min(u.minScore, score), max(u.maxScore, score)
				}
			case typeUnknown:
				unk = int(id)
			case typeByte:
				var x int
				if _, err := fmt.Sscanf(piece, "<0x%02X>", &x); err != nil || x > 255 {
					return nil, fmt.Errorf("byte piece %q", piece)
				}
				u.bytePiece[x] = id
				bytes++
			}
			continue
		}
		if num == 2 && typ == protowire.BytesType { // trainer_spec
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			b = b[n:]
			for w := v; len(w) > 0; {
				fnum, ftyp, k := protowire.ConsumeTag(w)
				if k < 0 {
					return nil, protowire.ParseError(k)
				}
				w = w[k:]
				if ftyp == protowire.VarintType && (fnum == 3 || fnum == 35) { // model_type, byte_fallback
					x, k := protowire.ConsumeVarint(w)
					if k < 0 {
						return nil, protowire.ParseError(k)
					}
					if fnum == 3 {
						modelType = x
					} else {
						u.byteFallback = x != 0
					}
					w = w[k:]
					continue
				}
				k = protowire.ConsumeFieldValue(fnum, ftyp, w)
				if k < 0 {
					return nil, protowire.ParseError(k)
				}
				w = w[k:]
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, fmt.Errorf("not a SentencePiece model: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	switch {
	case len(u.pieces) == 0:
		return nil, errors.New("not a SentencePiece model: no pieces")
	case modelType != 1:
		return nil, fmt.Errorf("SentencePiece model_type %d is not unigram (1)", modelType)
	case unk < 0:
		return nil, errors.New("SentencePiece model has no unknown piece")
	case u.byteFallback && bytes != 256:
		return nil, fmt.Errorf("byte_fallback is on but the model has %d byte pieces, not 256", bytes)
	}
	u.unkID = uint32(unk)
	return u, nil
}

func readPiece(v []byte) (piece string, score float32, ptype uint64, err error) {
	ptype = typeNormal
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return "", 0, 0, protowire.ParseError(n)
		}
		v = v[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			s, k := protowire.ConsumeBytes(v)
			if k < 0 {
				return "", 0, 0, protowire.ParseError(k)
			}
			piece, n = string(s), k
		case num == 2 && typ == protowire.Fixed32Type:
			x, k := protowire.ConsumeFixed32(v)
			if k < 0 {
				return "", 0, 0, protowire.ParseError(k)
			}
			score, n = math.Float32frombits(x), k
		case num == 3 && typ == protowire.VarintType:
			x, k := protowire.ConsumeVarint(v)
			if k < 0 {
				return "", 0, 0, protowire.ParseError(k)
			}
			ptype, n = x, k
		default:
			n = protowire.ConsumeFieldValue(num, typ, v)
			if n < 0 {
				return "", 0, 0, protowire.ParseError(n)
			}
		}
		v = v[n:]
	}
	return piece, score, ptype, nil
}

// encode appends the pieces of s (already normalised) and their ids.
func (u *unigram) encode(s string, ids []uint32, pieces []string) ([]uint32, []string) {
	type best struct {
		id       uint32
		score    float32
		startsAt int
	}
	size := len(s)
	if size == 0 {
		return ids, pieces
	}
	unkScore := u.minScore - 10
	ends := make([]best, size+1)
	for i := range ends {
		ends[i].startsAt = -1
	}
	for start := 0; start < size; {
		till := ends[start].score
		_, mblen := utf8.DecodeRuneInString(s[start:])
		mblen = min(max(mblen, 1), size-start)
		single := false
		for end := start + 1; end <= min(size, start+u.maxLen); end++ {
			id, ok := u.trie[s[start:end]]
			if !ok {
				continue
			}
			// SentencePiece's score here is a double (the user-defined
			// branch's "- 0.1" makes the conditional's type double), so
			// the candidate is summed and compared in float64 against the
			// float32 kept: near-ties go the way its rounding makes them.
			length := end - start
			score := float64(u.score[id])
			if u.userDefined[id] {
				score = float64(float32(length)*u.maxScore) - 0.1
			}
			cand := score + float64(till)
			if t := &ends[end]; t.startsAt == -1 || cand > float64(t.score) {
				*t = best{id: id, score: float32(cand), startsAt: start}
			}
			if length == mblen {
				single = true
			}
		}
		if !single {
			cand := unkScore + till
			if t := &ends[start+mblen]; t.startsAt == -1 || cand > t.score {
				*t = best{id: u.unkID, score: cand, startsAt: start}
			}
		}
		start += mblen
	}
	var path []best
	for end := size; end > 0; end = ends[end].startsAt {
		b := ends[end]
		b.score = 0
		path = append(path, best{id: b.id, startsAt: b.startsAt, score: float32(end)})
	}
	prevUnk := false
	for i := len(path) - 1; i >= 0; i-- {
		p := path[i]
		surface := s[p.startsAt:int(p.score)]
		unk := p.id == u.unkID
		switch {
		case unk && u.byteFallback:
			for j := 0; j < len(surface); j++ {
				id := u.bytePiece[surface[j]]
				ids, pieces = append(ids, id), append(pieces, u.pieces[id])
			}
		case unk && prevUnk:
			pieces[len(pieces)-1] += surface
		default:
			ids, pieces = append(ids, p.id), append(pieces, surface)
		}
		prevUnk = unk && !u.byteFallback
	}
	return ids, pieces
}
