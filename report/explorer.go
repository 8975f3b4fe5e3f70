package report

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"attnaudit/metrics"
	"attnaudit/store"
)

// The attention explorer: report.html's interactive view of every layer
// and head of every example it shows (templates/explorer.html,
// explorer.js, explorer.css). Each example's attention travels once in
// the page as one compact blob; the script decodes a blob only when its
// explorer first scrolls into view, so the page opens as fast as without
// it however many examples it holds.
//
// Blob format (then zlib, then unpadded base64url, so html/template puts it
// in an attribute without escaping a character):
//
//	uint32 LE  n, the length of the header
//	n bytes    the header, JSON (explorerHeader)
//	the rest   the weights: per kind in header order, per layer, per head,
//	           the rows in order; a row is cols bytes, or t+1 bytes for
//	           row t of a causal kind (its upper triangle is zero)
//
// A weight w in [0, 1] is stored as the byte round(255·w), so a decoded
// weight is off by at most QuantStep/2; a head mean the explorer computes
// from decoded weights is off by no more than that either.

//go:embed templates/explorer.js
var explorerJS string

//go:embed templates/explorer.css
var explorerCSS string

// QuantStep is the explorer's quantisation step: weights are stored as
// multiples of 1/255, so a weight the explorer shows is within
// QuantStep/2 ≈ 0.00196 of the stored float (before the three decimals it
// prints).
const QuantStep = 1.0 / 255

// reportCSP is report.html's Content-Security-Policy: nothing may be
// fetched; images only from data: URLs; the one script only by its hash
// (so no other inline script, no inline handler and no eval can run).
var reportCSP = func() string {
	sum := sha256.Sum256([]byte(explorerJS))
	return "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// explorerHeader describes a blob's tokens and matrices. Field names are
// short: they are read by explorer.js only.
type explorerHeader struct {
	Src   [][2]string    `json:"src"` // source pieces: [label, title]
	Tgt   [][2]string    `json:"tgt"` // predicted target pieces
	In    [][2]string    `json:"in"`  // decoder input pieces
	Kinds []explorerKind `json:"kinds"`
}

// explorerKind is one attention kind of a blob.
type explorerKind struct {
	Kind   string `json:"kind"` // store.KindCross, …
	Title  string `json:"title"`
	Q      string `json:"q"` // which tokens the rows are: "src", "tgt" or "in"
	K      string `json:"k"` // which tokens the columns are
	QName  string `json:"qname"`
	KName  string `json:"kname"`
	Layers int    `json:"layers"`
	Heads  int    `json:"heads"`
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
	Causal bool   `json:"causal"` // rows hold only columns 0..t
	Offset int    `json:"offset"` // of the kind's first byte in the weights
	// Names are the model's numbers of the layers held, when the run
	// stored some layers only (the store setting); absent, layer i is i.
	Names []int `json:"names,omitempty"`
}

// explorerView is one explorer on the page: the example it shows, whose
// blob sits in the page's data block.
type explorerView struct {
	ID    int32
	Layer int    // the layer it opens at (Options.Layer, may count from the end)
	Has   bool   // there is attention to explore
	Note  string // kinds left out, and why
}

// explorerBlob is one example's data for the page.
type explorerBlob struct {
	ID   int32
	Data string // base64url of the zlib'd blob
}

// quantise stores w as a byte: round(255·w), clamped to [0, 1]; NaN as 0.
func quantise(w float32) byte {
	f := float64(w)
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f >= 1 {
		return 255
	}
	return byte(math.Round(f * 255))
}

// encodeExplorer packs one example's attention into a blob. Kinds whose
// matrices disagree with the tokens or with each other are left out and
// named in the returned note.
func encodeExplorer(ex *store.Example, att ExampleAttention) (string, string, error) {
	vex := VisualizeExample{SrcPieces: ex.SrcPieces, TgtPieces: ex.TgtPieces}
	src, tgt, in := tokenLabels(ex.SrcPieces), tokenLabels(ex.TgtPieces), tokenLabels(vex.inputPieces())
	pair := func(ls []tokenLabel) [][2]string {
		out := make([][2]string, len(ls))
		for i, l := range ls {
			out[i] = [2]string{l.Text, l.Title}
		}
		return out
	}
	h := explorerHeader{Src: pair(src), Tgt: pair(tgt), In: pair(in)}
	var weights []byte
	var skipped []string
	for _, k := range []struct {
		kind, q, k, qname, kname string
		layers                   [][]metrics.Matrix
		nq, nk                   int
	}{
		{store.KindCross, "tgt", "src", "target", "source", att.Cross, len(tgt), len(src)},
		{store.KindDecoderSelf, "tgt", "in", "target", "decoder input", att.DecoderSelf, len(tgt), len(in)},
		{store.KindEncoderSelf, "src", "src", "source query", "source key", att.EncoderSelf, len(src), len(src)},
	} {
		var names []int
		if held := storedLayers(k.layers); len(held) < len(k.layers) {
			// The run stored some layers only: the explorer holds those.
			if len(held) == 0 {
				continue
			}
			compact := make([][]metrics.Matrix, len(held))
			for i, l := range held {
				compact[i] = k.layers[l]
			}
			k.layers, names = compact, held
			skipped = append(skipped, fmt.Sprintf("%s: layer%s %s stored", kindTitles[k.kind], plural(len(held)), joinInts(held)))
		}
		if len(k.layers) == 0 {
			continue
		}
		ek := explorerKind{Names: names, Kind: k.kind, Title: kindTitles[k.kind], Q: k.q, K: k.k, QName: k.qname, KName: k.kname,
			Layers: len(k.layers), Heads: len(k.layers[0]), Rows: k.nq, Cols: k.nk, Offset: len(weights)}
		if err := checkShapes(k.layers, k.nq, k.nk); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s attention left out: %v", kindTitles[k.kind], err))
			continue
		}
		ek.Causal = k.kind == store.KindDecoderSelf && upperZero(k.layers)
		for _, heads := range k.layers {
			for _, m := range heads {
				for t := range m.Rows {
					row := m.Row(t)
					if ek.Causal {
						row = row[:t+1]
					}
					for _, w := range row {
						weights = append(weights, quantise(w))
					}
				}
			}
		}
		h.Kinds = append(h.Kinds, ek)
	}
	note := strings.Join(skipped, "; ")
	if len(h.Kinds) == 0 {
		return "", note, nil
	}
	head, err := json.Marshal(h)
	if err != nil {
		return "", "", fmt.Errorf("explorer header: %w", err)
	}
	var raw bytes.Buffer
	raw.Grow(4 + len(head) + len(weights))
	if err := binary.Write(&raw, binary.LittleEndian, uint32(len(head))); err != nil {
		return "", "", err
	}
	raw.Write(head)
	raw.Write(weights)
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestCompression)
	if err != nil {
		return "", "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return "", "", fmt.Errorf("compressing explorer data: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", "", fmt.Errorf("compressing explorer data: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(z.Bytes()), note, nil
}

// checkShapes wants every head of every layer to be rows × cols.
// storedLayers are the layers that have heads; a run that stored some
// layers only (the store setting) leaves the others empty.
func storedLayers(layers [][]metrics.Matrix) []int {
	var out []int
	for l, hs := range layers {
		if len(hs) > 0 {
			out = append(out, l)
		}
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func checkShapes(layers [][]metrics.Matrix, rows, cols int) error {
	heads := len(layers[0])
	for l, hs := range layers {
		if len(hs) != heads || heads == 0 {
			return fmt.Errorf("layer %d has %d heads, layer 0 has %d", l, len(hs), heads)
		}
		for h, m := range hs {
			if m.Rows != rows || m.Cols != cols || len(m.Data) != rows*cols {
				return fmt.Errorf("layer %d head %d is %d×%d, the tokens make it %d×%d", l, h, m.Rows, m.Cols, rows, cols)
			}
		}
	}
	return nil
}

// upperZero reports whether every square matrix is zero above its
// diagonal once quantised (causal decoder self-attention), so only the
// lower triangle need be stored.
func upperZero(layers [][]metrics.Matrix) bool {
	for _, hs := range layers {
		for _, m := range hs {
			if m.Rows != m.Cols {
				return false
			}
			for t := range m.Rows {
				for _, w := range m.Row(t)[t+1:] {
					if quantise(w) != 0 {
						return false
					}
				}
			}
		}
	}
	return true
}

// paletteHex is a colour scale as "rrggbb" strings joined by commas, for
// explorer.js to paint heatmaps in the figures' colours.
func (th *theme) paletteHex() string {
	var b strings.Builder
	for i, c := range th.scale {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%02x%02x%02x", c.R, c.G, c.B)
	}
	return b.String()
}

// explorerScript is the explorer's script, marked for html/template to
// insert unchanged: its hash is in reportCSP.
func explorerScript() template.JS { return template.JS(explorerJS) }

// explorerStyle is the explorer's CSS.
func explorerStyle() template.CSS { return template.CSS(explorerCSS) }

// headView is what the pages' shared <head> needs.
type headView struct {
	Title    string
	CSPMeta  template.HTML
	Explorer bool
}

// pageHead is the <head> of a page; only report.html runs a script.
func pageHead(title string, explorer bool) headView {
	csp := noScriptCSP
	if explorer {
		csp = reportCSP
	}
	// The policy is ours (no user data, only quotes, letters and base64),
	// so it is written as is rather than with its quotes escaped.
	meta := template.HTML(`<meta http-equiv="Content-Security-Policy" content="` + csp + `">`)
	return headView{Title: title, CSPMeta: meta, Explorer: explorer}
}

// noScriptCSP is the policy of a page without script (compare.html).
const noScriptCSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

// explorerData is the page's data block: one blob per explored example,
// the colour scale, and the script.
type explorerData struct {
	Blobs   []explorerBlob
	Palette string
	Quant   string
	Script  template.JS
}

// explorer returns the explorer of example id, shared by every section
// that shows the example (its blob is written once).
func (ev *exampleViews) explorer(id int32) *explorerView {
	if x, ok := ev.explore[id]; ok {
		return x
	}
	x := &explorerView{ID: id, Layer: ev.layer}
	ev.explore[id] = x
	return x
}

// explorerData encodes the blobs of every explorer the page shows,
// GOMAXPROCS at a time (compression is most of the cost).
func (ev *exampleViews) explorerData(th *theme) (explorerData, error) {
	ids := make([]int32, 0, len(ev.explore))
	for id := range ev.explore {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	blobs := make([]explorerBlob, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id := ids[i]
				x := ev.explore[id]
				data, note, err := encodeExplorer(ev.examples[id], ev.data.Attention[id])
				if err != nil {
					errs[i] = fmt.Errorf("example %d: %w", id, err)
					continue
				}
				x.Note, x.Has = note, data != ""
				blobs[i] = explorerBlob{ID: id, Data: data}
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return explorerData{}, err
	}
	out := explorerData{Palette: th.paletteHex(), Quant: strconv.FormatFloat(QuantStep, 'g', 6, 64), Script: explorerScript()}
	for _, b := range blobs {
		if b.Data != "" {
			out.Blobs = append(out.Blobs, b)
		}
	}
	return out, nil
}
