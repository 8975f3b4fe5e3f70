// Command attncmp compares two run folders of the same checkpoint and
// dataset, made on different providers (CUDA and CPU): it prints the largest
// absolute differences of attention weights and token log-probabilities,
// and whether the translations agree, listing each translation that differs
// with its log-prob margin. Exit status 1 when attention differs by more
// than -tol.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"

	"attnaudit/store"
)

func main() {
	tol := flag.Float64("tol", 1e-3, "largest allowed attention difference")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: attncmp [-tol X] RUN_A RUN_B")
		os.Exit(2)
	}
	maxAttn, err := compare(flag.Arg(0), flag.Arg(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "attncmp:", err)
		os.Exit(2)
	}
	if maxAttn > *tol {
		fmt.Printf("FAIL: attention differs by %.3g > %.3g\n", maxAttn, *tol)
		os.Exit(1)
	}
	fmt.Printf("OK: attention equal to %.3g (tolerance %.3g)\n", maxAttn, *tol)
}

// compare reports on examples and attention; it returns the largest
// attention difference over rows whose shapes agree (a different
// hypothesis gives a different free pass, which is counted, not compared).
func compare(a, b string) (float64, error) {
	exA, err := store.ReadExamples(a)
	if err != nil {
		return 0, err
	}
	exB, err := store.ReadExamples(b)
	if err != nil {
		return 0, err
	}
	if len(exA) != len(exB) {
		return 0, fmt.Errorf("%d examples in %s, %d in %s", len(exA), a, len(exB), b)
	}
	same, maxLP := 0, 0.0
	for i := range exA {
		if exA[i].Hypothesis != exB[i].Hypothesis {
			printDifference(exA[i], exB[i])
			continue
		}
		same++
		for t := range exA[i].TokenLogprobs {
			maxLP = math.Max(maxLP, math.Abs(float64(exA[i].TokenLogprobs[t]-exB[i].TokenLogprobs[t])))
		}
	}
	fmt.Printf("examples: %d, same hypothesis: %d; largest token log-prob difference: %.3g\n", len(exA), same, maxLP)

	type key struct {
		id          int32
		pass, kind  string
		layer, head int16
	}
	rowsA := map[key][]float32{}
	if err := store.ScanAttention(a, func(r store.Attention) error {
		rowsA[key{r.ExampleID, r.Pass, r.Kind, r.Layer, r.Head}] = append([]float32(nil), r.Weights.Data...)
		return nil
	}); err != nil {
		return 0, err
	}
	maxAttn, compared, skipped := 0.0, 0, 0
	err = store.ScanAttention(b, func(r store.Attention) error {
		w, ok := rowsA[key{r.ExampleID, r.Pass, r.Kind, r.Layer, r.Head}]
		if !ok || len(w) != len(r.Weights.Data) {
			skipped++
			return nil
		}
		compared++
		for i, x := range r.Weights.Data {
			maxAttn = math.Max(maxAttn, math.Abs(float64(x-w[i])))
		}
		return nil
	})
	fmt.Printf("attention rows compared: %d (skipped, shapes differ: %d); largest weight difference: %.3g\n", compared, skipped, maxAttn)
	return maxAttn, err
}

// printDifference lists a translation that differs between the runs: the
// first token where the greedy choices part, each run's log-prob of its own
// choice there, and their gap. Greedy search takes the argmax, so a gap near
// zero means the two tokens were all but tied and rounding decided.
func printDifference(a, b store.Example) {
	t := 0
	for t < len(a.TgtIDs) && t < len(b.TgtIDs) && a.TgtIDs[t] == b.TgtIDs[t] {
		t++
	}
	lp := func(e store.Example) float64 {
		if t < len(e.TokenLogprobs) {
			return float64(e.TokenLogprobs[t])
		}
		return math.NaN()
	}
	piece := func(e store.Example) string {
		if t < len(e.TgtPieces) {
			return e.TgtPieces[t]
		}
		return "(end)"
	}
	fmt.Printf("differs: example %d (%s) at token %d: %q (log-prob %.4f) vs %q (log-prob %.4f), margin %.4f\n",
		a.ExampleID, a.ID, t, piece(a), lp(a), piece(b), lp(b), math.Abs(lp(a)-lp(b)))
}
