// Command pageopen measures how fast report.html opens in headless
// Chromium (make bench's report section): the page's size, the times the
// browser reports for DOMContentLoaded and load, and how long the first
// attention explorer takes to decode its data and draw once scrolled to.
// It prints one JSON object; medians over -runs fresh tabs.
//
//	go run ./bench/pageopen -runs 3 runs/…/report.html
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/chromedp/chromedp"
)

type timing struct {
	DOMContentLoaded float64 `json:"dom_content_loaded_ms"`
	Load             float64 `json:"load_ms"`
	Explorer         float64 `json:"first_explorer_ms"` // -1: the page has none
}

type result struct {
	Page      string   `json:"page"`
	Bytes     int64    `json:"bytes"`
	Explorers int      `json:"explorers"`
	Images    int      `json:"images"`
	Runs      int      `json:"runs"`
	timing             // medians
	Errors    []string `json:"errors,omitempty"`
}

// firstExplorer scrolls the first explorer into view and resolves when it
// has drawn, with the milliseconds that took.
const firstExplorer = `new Promise((resolve, reject) => {
  const x = document.querySelector('.example .explorer[data-ex]');
  if (!x) { resolve(-1); return; }
  const t0 = performance.now();
  x.scrollIntoView();
  const poll = () => {
    if (x.dataset.state) resolve(performance.now() - t0);
    else if (performance.now() - t0 > 20000) reject(new Error('explorer did not draw in 20 s'));
    else requestAnimationFrame(poll);
  };
  poll();
})`

const navTimes = `(() => {
  const n = performance.getEntriesByType('navigation')[0];
  return {dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd, first_explorer_ms: 0};
})()`

func main() {
	runs := flag.Int("runs", 3, "fresh tabs to open the page in; medians are printed")
	bin := flag.String("chromium", "chromium", "the browser to drive")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: pageopen [-runs N] [-chromium PATH] report.html")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "pageopen:", err)
		os.Exit(1)
	}
}

func run(page, bin string, runs int) error {
	abs, err := filepath.Abs(page)
	if err != nil {
		return err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return err
	}
	if p, err := exec.LookPath(bin); err == nil {
		bin = p
	}
	dir, err := os.MkdirTemp("", "pageopen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(dir), chromedp.WindowSize(1300, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	browser, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // start the browser before timing
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	res := result{Page: page, Bytes: st.Size(), Runs: runs}
	var ts []timing
	for range runs {
		tab, cancelTab := chromedp.NewContext(browser)
		t, counts, err := open(tab, "file://"+abs)
		cancelTab()
		if err != nil {
			return err
		}
		res.Explorers, res.Images = counts[0], counts[1]
		ts = append(ts, t)
	}
	res.timing = timing{
		DOMContentLoaded: median(ts, func(t timing) float64 { return t.DOMContentLoaded }),
		Load:             median(ts, func(t timing) float64 { return t.Load }),
		Explorer:         median(ts, func(t timing) float64 { return t.Explorer }),
	}
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

func open(tab context.Context, url string) (timing, [2]int, error) {
	ctx, cancel := context.WithTimeout(tab, 120*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return timing{}, [2]int{}, fmt.Errorf("opening %s: %w", url, err)
	}
	t, err := chromedp.Run(ctx, chromedp.Evaluate[timing](navTimes))
	if err != nil {
		return t, [2]int{}, err
	}
	counts, err := chromedp.Run(ctx, chromedp.Evaluate[[2]int](`[document.querySelectorAll('.explorer[data-ex]').length, document.images.length]`))
	if err != nil {
		return t, counts, err
	}
	t.Explorer, err = chromedp.Run(ctx, chromedp.Evaluate[float64](firstExplorer, chromedp.EvalAwaitPromise))
	return t, counts, err
}

func median(ts []timing, f func(timing) float64) float64 {
	vs := make([]float64, len(ts))
	for i, t := range ts {
		vs[i] = f(t)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}
