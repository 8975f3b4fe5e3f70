package report

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/font/liberation"
	"gonum.org/v1/plot/text"
)

// knownHangulFonts are tried, in order, when neither PlotOptions.Font nor
// fontconfig names a Korean font: Debian/Ubuntu fonts-nanum, fonts-noto-cjk,
// fonts-unfonts-core, fonts-baekmuk, and Fedora's paths for the same.
var knownHangulFonts = []string{
	"/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
	"/usr/share/fonts/nanum/NanumGothic.ttf",
	"/usr/share/fonts/naver-nanum/NanumGothic.ttf",
	"/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
	"/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
	"/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
	"/usr/share/fonts/truetype/unfonts-core/UnDotum.ttf",
	"/usr/share/fonts/truetype/baekmuk/gulim.ttf",
	"/System/Library/Fonts/AppleSDGothicNeo.ttc",
}

// hangulProbe is a syllable every Hangul font has; a font without it is not
// one.
const hangulProbe = '한'

// fontSet is the text handler every figure uses, with the face's glyph
// coverage for turning labels into something drawable.
type fontSet struct {
	handler text.Handler
	face    *sfnt.Font
	path    string // the Hangul font used; empty when falling back
	warning string // why there is no Hangul font
}

var (
	fontsMu sync.Mutex
	fonts   = map[string]*fontSet{} // by PlotOptions.Font
	warned  = map[string]bool{}
)

// loadFonts returns the font set for a configured font path (empty: search),
// loading it once per process. A configured path that cannot be used is an
// error; a failed search falls back to Liberation Sans with a warning,
// logged once.
func loadFonts(configured string) (*fontSet, error) {
	fontsMu.Lock()
	defer fontsMu.Unlock()
	if fs, ok := fonts[configured]; ok {
		return fs, nil
	}
	var fs *fontSet
	if configured != "" {
		f, err := openHangulFont(configured)
		if err != nil {
			return nil, fmt.Errorf("font %s: %w", configured, err)
		}
		fs = newFontSet(f, configured)
	} else {
		fs = searchFonts()
	}
	if fs.warning != "" && !warned[fs.warning] {
		warned[fs.warning] = true
		log.Printf("report: %s", fs.warning)
	}
	fonts[configured] = fs
	return fs, nil
}

func searchFonts() *fontSet {
	var tried []string
	for _, path := range append(fcMatchKorean(), knownHangulFonts...) {
		if path == "" || slices.Contains(tried, path) {
			continue
		}
		tried = append(tried, path)
		if f, err := openHangulFont(path); err == nil {
			return newFontSet(f, path)
		}
	}
	coll := liberation.Collection()
	var face *sfnt.Font
	for _, f := range coll {
		if f.Font.Typeface == "Liberation" && f.Font.Variant == "Sans" && f.Font.Weight == 0 && f.Font.Style == 0 {
			face = f.Face
		}
	}
	fs := newFontSet(face, "")
	fs.warning = "no Hangul font found (set --font, or install fonts-nanum or fonts-noto-cjk); " +
		"Korean labels are drawn as \\uXXXX code points"
	return fs
}

// fcMatchKorean asks fontconfig for its Korean font; nothing when fc-match is
// missing or slow.
func fcMatchKorean() []string {
	if _, err := exec.LookPath("fc-match"); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "fc-match", "-f", "%{file}", ":lang=ko").Output()
	if err != nil {
		return nil
	}
	return []string{strings.TrimSpace(string(out))}
}

// openHangulFont parses a .ttf/.otf or the first face of a .ttc and checks
// that it has Hangul.
func openHangulFont(path string) (*sfnt.Font, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	coll, err := opentype.ParseCollection(data)
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	for i := range coll.NumFonts() {
		f, err := coll.Font(i)
		if err != nil {
			return nil, fmt.Errorf("parsing face %d: %w", i, err)
		}
		if hasGlyph(f, hangulProbe) {
			return f, nil
		}
	}
	return nil, fmt.Errorf("no Hangul glyphs (no %q)", hangulProbe)
}

func hasGlyph(f *sfnt.Font, r rune) bool {
	var buf sfnt.Buffer
	idx, err := f.GlyphIndex(&buf, r)
	return err == nil && idx != 0
}

// newFontSet makes a cache holding one face, which is thereby the default
// for every typeface, weight and style a plot asks for.
func newFontSet(f *sfnt.Font, path string) *fontSet {
	cache := font.NewCache(font.Collection{{Font: font.Font{Typeface: "attnaudit"}, Face: f}})
	return &fontSet{handler: text.Plain{Fonts: cache}, face: f, path: path}
}

// label makes a token drawable with the font: SentencePiece's word marker
// ▁ becomes _ where the font lacks it, and any other character the font
// lacks becomes an escaped code point, so a missing glyph never renders as
// an empty box. Control characters are escaped too.
func (fs *fontSet) label(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case hasGlyph(fs.face, r) || r == ' ':
			b.WriteRune(r)
		case r == '▁':
			b.WriteByte('_')
		case r > 0xffff:
			fmt.Fprintf(&b, "\\U%08X", r)
		default:
			fmt.Fprintf(&b, "\\u%04X", r)
		}
	}
	return b.String()
}
