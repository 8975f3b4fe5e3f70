package store

import (
	"fmt"
	"math"
	"os"
	"testing"
)

func ent(h map[uint32]int) (float64, int) {
	n := 0
	for _, c := range h {
		n += c
	}
	var e float64
	for _, c := range h {
		p := float64(c) / float64(n)
		e -= p * math.Log2(p)
	}
	return e, n
}

func TestExpBytes(t *testing.T) {
	run := os.Getenv("ATTNAUDIT_STORAGE_RUN")
	if run == "" {
		t.Skip()
	}
	var vals []float32
	if err := ScanAttention(run, func(a Attention) error {
		q := make([]float32, len(a.Weights.Data))
		quantizeWithin(a.Weights.Data, q, a.Weights.Cols, CompactStep, FixedMaxError, CompactFine)
		vals = append(vals, q...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	layouts := map[string]func(v float32) uint32{
		"1+w":       func(v float32) uint32 { return math.Float32bits(1 + v) },
		"w":         func(v float32) uint32 { return math.Float32bits(v) },
		"2-w":       func(v float32) uint32 { return math.Float32bits(2 - v) },
		"idx17":     func(v float32) uint32 { return uint32(math.Round(float64(v) * (1 << 17))) },
	}
	for name, f := range layouts {
		var b [4]map[uint32]int
		for k := range b {
			b[k] = map[uint32]int{}
		}
		joint := map[uint32]int{}
		pair := map[uint32]int{}
		for _, v := range vals {
			u := f(v)
			joint[u]++
			for k := 0; k < 4; k++ {
				b[k][(u>>(8*k))&255]++
			}
			pair[u>>8]++
		}
		var sum float64
		s := ""
		for k := 0; k < 4; k++ {
			e, _ := ent(b[k])
			sum += e
			s += fmt.Sprintf(" b%d %.2f", k, e)
		}
		j, n := ent(joint)
		fmt.Printf("%s: %d values, joint %.3f bits, byte sum %.3f (%s), MB joint %.1f bytes %.1f\n", name, n, j, sum, s, j*float64(n)/8e6, sum*float64(n)/8e6)
	}
}
