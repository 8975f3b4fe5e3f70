package report

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"

	"attnaudit/metrics"
	"attnaudit/store"
)

func TestTokenLabels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pieces []string
		want   []string
	}{
		{"word starts and continuations", []string{"I", "▁go", "▁to", "▁scho", "ol", ".", "</s>"},
			[]string{"I", "go", "to", "scho", "·ol", "·.", "</s>"}},
		{"first piece without ▁ starts a word", []string{"나는", "▁학교", "에", "</s>"},
			[]string{"나는", "학교", "·에", "</s>"}},
		// 잌 is EC 9E 8C; é is C3 A9.
		{"byte fallback spells characters", []string{"▁", "<0xEC>", "<0x9E>", "<0x8C>", "<0xC3>", "<0xA9>", "▁a"},
			[]string{"▁", "잌[1/3]", "잌[2/3]", "잌[3/3]", "·é[1/2]", "·é[2/2]", "a"}},
		{"bytes after a word start continue it", []string{"▁x", "<0xEC>", "<0x9E>", "<0x8C>"},
			[]string{"x", "·잌[1/3]", "·잌[2/3]", "·잌[3/3]"}},
		{"a lone ASCII byte", []string{"<0x41>"}, []string{"A"}},
		{"bytes that spell nothing stay raw", []string{"<0xEC>", "<0x41>", "<0xFF>"},
			[]string{"<0xEC>", "A", "<0xFF>"}},
		{"special tokens end a word", []string{"<s>", "ab", "<unk>", "cd"}, []string{"<s>", "ab", "<unk>", "cd"}},
		{"control bytes by code point", []string{"<0x0A>"}, []string{"U+000A"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := labelTexts(tc.pieces)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("labels of %q = %q, want %q", tc.pieces, got, tc.want)
			}
		})
	}
	ls := tokenLabels([]string{"<0xEC>", "<0x9E>", "<0x8C>"})
	if want := `<0x9E>: byte 2 of 3 of "잌" (U+C78C)`; ls[1].Title != want {
		t.Errorf("title %q, want %q", ls[1].Title, want)
	}
}

// decodeBlob undoes encodeExplorer, as explorer.js does.
func decodeBlob(t *testing.T, data string) (explorerHeader, []byte) {
	t.Helper()
	z, err := base64.RawURLEncoding.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint32(raw)
	var h explorerHeader
	if err := json.Unmarshal(raw[4:4+n], &h); err != nil {
		t.Fatal(err)
	}
	return h, raw[4+n:]
}

func TestEncodeExplorer(t *testing.T) {
	vex := synthExample(3, 3, 4, true)
	ex := &store.Example{SrcPieces: vex.SrcPieces, TgtPieces: vex.TgtPieces}
	att := ExampleAttention{Cross: vex.Cross, DecoderSelf: vex.DecoderSelf, EncoderSelf: vex.EncoderSelf}
	data, note, err := encodeExplorer(ex, att)
	if err != nil || note != "" {
		t.Fatalf("encodeExplorer: %q, %v", note, err)
	}
	h, w := decodeBlob(t, data)
	if got := fmt.Sprint(h.Src); !strings.Contains(got, "학교에") {
		t.Errorf("source labels %s", got)
	}
	if len(h.Kinds) != 3 {
		t.Fatalf("%d kinds, want 3", len(h.Kinds))
	}
	for _, k := range h.Kinds {
		layers := map[string][][]metrics.Matrix{store.KindCross: att.Cross, store.KindDecoderSelf: att.DecoderSelf, store.KindEncoderSelf: att.EncoderSelf}[k.Kind]
		if k.Causal != (k.Kind == store.KindDecoderSelf) {
			t.Errorf("%s: causal = %v", k.Kind, k.Causal)
		}
		o := k.Offset
		for l := range k.Layers {
			for hd := range k.Heads {
				m := layers[l][hd]
				for r := range k.Rows {
					n := k.Cols
					if k.Causal {
						n = r + 1
					}
					for c := range n {
						got := float64(w[o]) / 255
						o++
						if d := math.Abs(got - float64(m.At(r, c))); d > QuantStep/2+1e-9 {
							t.Fatalf("%s L%d H%d (%d,%d): decoded %.5f, stored %.5f", k.Kind, l, hd, r, c, got, m.At(r, c))
						}
					}
				}
			}
		}
		if k.Kind == h.Kinds[len(h.Kinds)-1].Kind && o != len(w) {
			t.Errorf("weights end at %d, blob has %d", o, len(w))
		}
	}

	// A kind whose matrices do not match the tokens is left out, and said so.
	bad := att
	bad.EncoderSelf = [][]metrics.Matrix{{metrics.NewMatrix(2, 2)}}
	data, note, err = encodeExplorer(ex, bad)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := decodeBlob(t, data); len(h.Kinds) != 2 || !strings.Contains(note, "Encoder self-attention") {
		t.Errorf("kinds %d, note %q", len(h.Kinds), note)
	}
	if data, _, _ := encodeExplorer(ex, ExampleAttention{}); data != "" {
		t.Error("a blob for an example without attention")
	}
}

func TestQuantise(t *testing.T) {
	for _, tc := range []struct {
		w    float32
		want byte
	}{{0, 0}, {1, 255}, {0.5, 128}, {-0.1, 0}, {1.5, 255}, {float32(math.NaN()), 0}, {1.0 / 510, 1}, {0.0019, 0}} {
		if got := quantise(tc.w); got != tc.want {
			t.Errorf("quantise(%v) = %d, want %d", tc.w, got, tc.want)
		}
	}
}

// TestReportScriptPolicy checks report.html statically: one script, the
// one the CSP allows by hash, no inline handlers, nothing that evaluates
// strings, no address outside the page.
func TestReportScriptPolicy(t *testing.T) {
	var buf bytes.Buffer
	if err := Generate(&buf, synthRun(12, 2, 4), smallOptions()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	scripts := regexp.MustCompile(`(?s)<script[^>]*>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	if len(scripts) != 1 {
		t.Fatalf("%d scripts, want 1", len(scripts))
	}
	sum := sha256.Sum256([]byte(scripts[0][1]))
	hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	m := cspMeta.FindStringSubmatch(page)
	if m == nil || !strings.Contains(html.UnescapeString(m[1]), "script-src "+hash) {
		t.Errorf("CSP %q does not allow the page's script %s", m, hash)
	}
	if h := regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`).FindString(page); h != "" {
		t.Errorf("inline event handler: %.80s", h)
	}
	for _, bad := range []string{"eval(", "new Function", "setTimeout('", `setTimeout("`, "innerHTML", "http:", "https:", "fetch(", "XMLHttpRequest", "import("} {
		if strings.Contains(explorerJS, bad) {
			t.Errorf("explorer.js contains %q", bad)
		}
	}
	if strings.Contains(page, "on"+"click") {
		t.Error("page has an onclick")
	}
}
