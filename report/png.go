package report

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"sort"
)

// encodePNG writes a rendered figure as an 8-bit palette PNG. A figure is
// flat colour cells, a colour bar and anti-aliased text on white: a few
// hundred colours. The palette is the colour scale (reserved, so no cell
// shifts colour however few pixels it covers), then the most used of the
// others; a pixel of any other colour (the rarest anti-aliasing shades)
// takes the nearest palette colour. One byte a pixel instead of four makes the PNG
// about a third the size and faster to compress, which is most of
// report.html's size and of the report stage's time.
func encodePNG(img *image.RGBA, reserved []color.NRGBA) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, toPaletted(img, reserved)); err != nil {
		return nil, fmt.Errorf("encoding PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// toPaletted maps an opaque RGBA image onto a palette of the reserved
// colours (at most 256) and its most frequent others.
func toPaletted(img *image.RGBA, reserved []color.NRGBA) *image.Paletted {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	counts := map[uint32]int{}
	var last uint32
	run := 0
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := 0; x < len(row); x += 4 {
			c := uint32(row[x])<<24 | uint32(row[x+1])<<16 | uint32(row[x+2])<<8 | uint32(row[x+3])
			if c == last && run > 0 {
				run++
				continue
			}
			if run > 0 {
				counts[last] += run
			}
			last, run = c, 1
		}
	}
	if run > 0 {
		counts[last] += run
	}
	key := func(c color.NRGBA) uint32 { return uint32(c.R)<<24 | uint32(c.G)<<16 | uint32(c.B)<<8 | uint32(c.A) }
	reserved = reserved[:min(len(reserved), 256)]
	isReserved := map[uint32]bool{}
	for _, c := range reserved {
		isReserved[key(c)] = true
	}
	colors := make([]uint32, 0, len(counts)+len(reserved))
	for c := range counts {
		if !isReserved[c] {
			colors = append(colors, c)
		}
	}
	sort.Slice(colors, func(i, j int) bool {
		if counts[colors[i]] != counts[colors[j]] {
			return counts[colors[i]] > counts[colors[j]]
		}
		return colors[i] < colors[j]
	})
	free := 256 - len(isReserved)
	var pal []uint32
	for c := range isReserved {
		pal = append(pal, c)
	}
	sort.Slice(pal, func(i, j int) bool { return pal[i] < pal[j] })
	pal = append(pal, colors[:min(free, len(colors))]...)
	colors = colors[min(free, len(colors)):]
	index := make(map[uint32]uint8, len(colors)+len(pal))
	p := make(color.Palette, len(pal))
	for i, c := range pal {
		index[c] = uint8(i)
		p[i] = color.RGBA{uint8(c >> 24), uint8(c >> 16), uint8(c >> 8), uint8(c)}
	}
	for _, c := range colors {
		index[c] = uint8(p.Index(color.RGBA{uint8(c >> 24), uint8(c >> 16), uint8(c >> 8), uint8(c)}))
	}
	out := image.NewPaletted(image.Rect(0, 0, w, h), p)
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		dst := out.Pix[y*out.Stride : y*out.Stride+w]
		var lastC uint32
		var lastI uint8
		for x := range w {
			o := 4 * x
			c := uint32(row[o])<<24 | uint32(row[o+1])<<16 | uint32(row[o+2])<<8 | uint32(row[o+3])
			if x == 0 || c != lastC {
				lastC, lastI = c, index[c]
			}
			dst[x] = lastI
		}
	}
	return out
}
