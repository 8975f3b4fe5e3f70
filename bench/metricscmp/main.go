// Command metricscmp compares the head and sentence metrics of two run
// folders of the same checkpoint and dataset whose attention was stored at
// different precisions (bench/RESULTS.md, "attention storage"): for each
// head metric and sentence score, the largest absolute difference over the
// rows both runs hold (NaN in both counts as equal), the number of rows
// that differ by more than -tol, and the flags and reasons that changed.
// Exit status 1 when a metric listed in -bound moves by more than -tol.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	"attnaudit/metrics"
	"attnaudit/store"
)

func main() {
	tol := flag.Float64("tol", 1e-4, "largest allowed difference of the -bound metrics")
	bound := flag.String("bound", "entropy,entropy_norm,diagonality,head_diversity", "comma-separated metrics that must stay within -tol")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: metricscmp [-tol X] [-bound m1,m2] RUN_A RUN_B")
		os.Exit(2)
	}
	worst, err := compare(flag.Arg(0), flag.Arg(1), *tol)
	if err != nil {
		fmt.Fprintln(os.Stderr, "metricscmp:", err)
		os.Exit(2)
	}
	failed := false
	for _, m := range strings.Split(*bound, ",") {
		d, ok := worst[m]
		if !ok {
			fmt.Fprintf(os.Stderr, "metricscmp: no metric %q\n", m)
			os.Exit(2)
		}
		if d > *tol || math.IsNaN(d) {
			fmt.Printf("FAIL: %s moved by %.3g > %.3g\n", m, d, *tol)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("OK: %s within %.3g\n", *bound, *tol)
}

func diff(a, b float32) float64 {
	if math.IsNaN(float64(a)) && math.IsNaN(float64(b)) {
		return 0
	}
	if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) {
		return math.Inf(1)
	}
	return math.Abs(float64(a) - float64(b))
}

func compare(a, b string, tol float64) (map[string]float64, error) {
	worst := map[string]float64{}
	ha, err := store.ReadHeadMetrics(a)
	if err != nil {
		return nil, err
	}
	hb, err := store.ReadHeadMetrics(b)
	if err != nil {
		return nil, err
	}
	type hkey struct {
		id          int32
		pass, kind  string
		layer, head int16
	}
	byKey := map[hkey]store.HeadMetrics{}
	for _, r := range hb {
		byKey[hkey{r.ExampleID, r.Pass, r.Kind, r.Layer, r.Head}] = r
	}
	over := map[string]int{}
	common := 0
	for _, r := range ha {
		o, ok := byKey[hkey{r.ExampleID, r.Pass, r.Kind, r.Layer, r.Head}]
		if !ok || o.QLen != r.QLen || o.KLen != r.KLen {
			continue
		}
		common++
		for m := range metrics.NumHeadMetrics {
			name := metrics.HeadTable[m].Name
			d := diff(r.Values[m], o.Values[m])
			worst[name] = math.Max(worst[name], d)
			if d > tol {
				over[name]++
			}
		}
	}
	// head diversity is a sentence-level score per layer in some versions;
	// it is listed where the tables have it
	sa, err := store.ReadSentenceMetrics(a)
	if err != nil {
		return nil, err
	}
	sb, err := store.ReadSentenceMetrics(b)
	if err != nil {
		return nil, err
	}
	type skey struct {
		id   int32
		pass string
	}
	sByKey := map[skey]store.SentenceMetrics{}
	for _, r := range sb {
		sByKey[skey{r.ExampleID, r.Pass}] = r
	}
	flags, reasons, sents := 0, 0, 0
	for _, r := range sa {
		o, ok := sByKey[skey{r.ExampleID, r.Pass}]
		if !ok {
			continue
		}
		sents++
		for m := range metrics.NumSentenceMetrics {
			name := metrics.SentenceTable[m].Name
			d := diff(r.Values[m], o.Values[m])
			worst[name] = math.Max(worst[name], d)
			if d > tol {
				over[name]++
			}
		}
		if r.Flags != o.Flags {
			flags++
		}
		if r.Reasons != o.Reasons {
			reasons++
		}
	}
	fmt.Printf("%d head rows and %d sentence rows in both runs (%d and %d head rows, %d and %d sentence rows)\n\n", common, sents, len(ha), len(hb), len(sa), len(sb))
	fmt.Println("| metric | max abs difference | rows over tolerance |")
	fmt.Println("|---|---:|---:|")
	for m := range metrics.NumHeadMetrics {
		name := metrics.HeadTable[m].Name
		fmt.Printf("| head %s | %.2g | %d |\n", name, worst[name], over[name])
	}
	for m := range metrics.NumSentenceMetrics {
		name := metrics.SentenceTable[m].Name
		fmt.Printf("| sentence %s | %.2g | %d |\n", name, worst[name], over[name])
	}
	fmt.Printf("\nflags changed on %d sentence rows, reasons on %d\n", flags, reasons)
	return worst, nil
}
