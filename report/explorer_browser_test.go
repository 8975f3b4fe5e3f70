package report

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"attnaudit/metrics"
)

// browserEvents is what a page did that a test must see: console errors,
// uncaught exceptions, error log entries (CSP violations among them), and
// every request other than the page itself and data: URLs.
type browserEvents struct {
	mu       sync.Mutex
	page     string
	errs     []string
	requests []string
}

func (ev *browserEvents) listen(e any) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	switch e := e.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			ev.errs = append(ev.errs, "console: "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		msg := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
		ev.errs = append(ev.errs, "exception: "+msg)
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError {
			ev.errs = append(ev.errs, fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		u := e.Request.URL
		if u != ev.page && !strings.HasPrefix(u, "data:") {
			ev.requests = append(ev.requests, u)
		}
	}
}

func (ev *browserEvents) check(t *testing.T) {
	t.Helper()
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.errs) > 0 {
		t.Errorf("errors in the browser: %q", ev.errs)
	}
	if len(ev.requests) > 0 {
		t.Errorf("requests left the page: %q", ev.requests)
	}
}

// openPage starts headless Chromium through the DevTools protocol
// (chromedp), opens the file at path and records its events.
// writePage writes a page's html to dir/name and returns its absolute
// path, for openPage.
func writePage(t *testing.T, dir, name string, html []byte) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, html, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// pageSteps returns a function that runs actions on the page of ctx as
// one named step. A step that waits for the page gives up long before the
// test's deadline, and fails the test with what the page logged.
func pageSteps(t *testing.T, ctx context.Context, events *browserEvents) func(what string, actions ...chromedp.Action[chromedp.Void]) {
	return func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			events.check(t)
			t.Fatalf("%s: %v", what, err)
		}
	}
}

func openPage(t *testing.T, path string, w, h int) (context.Context, *browserEvents) {
	t.Helper()
	bin := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(w, h))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ev := &browserEvents{page: "file://" + path}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(ev.listen))
	t.Cleanup(cancel)
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTime)
	// chromedp enables the runtime, log and network domains on the tab.
	if err := chromedp.Do(ctx, chromedp.Navigate(ev.page)); err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	return ctx, ev
}

// tipRe reads the weight out of the explorer's tooltip.
var tipRe = regexp.MustCompile(`^[01]\.\d{3}$`)

// explorerTol is how far a weight the tooltip shows may be from the
// stored one: half a quantisation step, plus the rounding to three
// decimals.
const explorerTol = QuantStep/2 + 0.0005

// TestExplorerInBrowser drives one example's explorer in headless
// Chromium as a user would: it switches layer, head and kind with the
// buttons and the keyboard, hovers heatmap cells and lines-view tokens,
// and checks what the tooltip says against the weights the page was made
// from; the page must log no error and make no request.
func TestExplorerInBrowser(t *testing.T) {
	const layers, heads = 6, 8
	data := synthRun(30, layers, heads)
	opts := DefaultOptions()
	id := Select(data, opts).Worst[0]
	var exIdx int
	for i, e := range data.Examples {
		if e.ExampleID == id {
			exIdx = i
		}
	}
	// Byte-fallback pieces spelling 나 (EB 82 98), to see labels survive the
	// trip through the blob.
	data.Examples[exIdx].SrcPieces = []string{"<0xEB>", "<0x82>", "<0x98>", "▁간", "다", "</s>"}
	var buf bytes.Buffer
	if err := Generate(&buf, data, opts); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if *keep != "" {
		dir = *keep
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := writePage(t, dir, "explorer_report.html", buf.Bytes())
	ex := data.Examples[exIdx]
	att := data.Attention[id]
	root := fmt.Sprintf("#ex-%d .explorer", id)

	ctx, events := openPage(t, path, 1300, 1100)
	run := pageSteps(t, ctx, events)
	sel := chromedp.CSS(root)
	state := func(want string) {
		t.Helper()
		// Read live (chromedp's copy of the DOM may lag behind a click),
		// a few times: the page may handle an input on its next frame.
		for try := 0; ; try++ {
			got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).dataset.state`, root)))
			if err != nil {
				t.Fatalf("reading the state: %v", err)
			}
			if got == want {
				return
			}
			if try == 50 {
				t.Fatalf("explorer state %q, want %q", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	key := func(keys string) {
		t.Helper()
		run("pressing "+keys, chromedp.Focus(sel), chromedp.KeyEvent(keys))
	}
	// hoverCell moves the mouse onto heatmap cell (row, col) and returns
	// the tooltip's query token, key token and weight.
	hoverCell := func(row, col int) (string, string, float64) {
		t.Helper()
		pt := locate(t, ctx, fmt.Sprintf(`(() => {
			const cv = document.querySelector(%q + ' .x-canvas'), g = JSON.parse(cv.dataset.grid), r = cv.getBoundingClientRect();
			return {X: r.left + g.x0 + (%d + 0.5) * g.cell, Y: r.top + g.y0 + (%d + 0.5) * g.cell};
		})()`, root, col, row))
		return readTip(t, ctx, root, pt.X, pt.Y, fmt.Sprintf("%d,%d", row, col))
	}
	checkWeight := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > explorerTol {
			t.Errorf("%s: tooltip says %.3f, stored weight %.5f (tolerance %.5f)", what, got, want, explorerTol)
		}
	}
	src, tgt := labelTexts(ex.SrcPieces), labelTexts(ex.TgtPieces)

	run("scrolling to the explorer", chromedp.ScrollIntoView(sel), chromedp.WaitVisible(chromedp.CSS(root+" .x-canvas")))
	state(fmt.Sprintf("cross %d -1 heat", layers-1))

	// Buttons: layer 2, head 5.
	run("clicking layer 2", chromedp.Click(chromedp.CSS(root+` button[data-set="layer"][data-v="2"]`)))
	run("clicking head 5", chromedp.Click(chromedp.CSS(root+` button[data-set="head"][data-v="5"]`)))
	state("cross 2 5 heat")
	q, k, w := hoverCell(3, 1)
	if q != tgt[3] || k != src[1] || k != "나[2/3]" {
		t.Errorf("tooltip names %q → %q, want %q → %q (나[2/3])", q, k, tgt[3], src[1])
	}
	checkWeight("cross L2 H5 (3,1)", w, float64(att.Cross[2][5].At(3, 1)))

	// Keyboard: → twice (heads 6, 7), ↓ once (layer 3), ↑ twice (layer 1).
	key(kb.ArrowRight + kb.ArrowRight + kb.ArrowDown + kb.ArrowUp + kb.ArrowUp)
	state("cross 1 7 heat")
	_, _, w = hoverCell(0, 4)
	checkWeight("cross L1 H7 (0,4)", w, float64(att.Cross[1][7].At(0, 4)))
	key(kb.ArrowRight) // past the last head: the mean
	state("cross 1 -1 heat")
	for _, c := range [][2]int{{2, 2}, {5, 0}, {4, 5}} {
		_, _, w = hoverCell(c[0], c[1])
		checkWeight(fmt.Sprintf("cross L1 mean (%d,%d)", c[0], c[1]), w, meanAt(att.Cross[1], c[0], c[1]))
	}

	// Kinds: D (decoder self, its causal triangle stored alone), E.
	key("d")
	state("decoder_self 1 -1 heat")
	_, _, w = hoverCell(4, 2)
	checkWeight("decoder self L1 mean (4,2)", w, meanAt(att.DecoderSelf[1], 4, 2))
	_, _, w = hoverCell(1, 4) // above the diagonal: zero
	checkWeight("decoder self L1 mean (1,4)", w, 0)
	key("m" + kb.ArrowRight + kb.ArrowRight) // head 1
	_, _, w = hoverCell(3, 2)
	checkWeight("decoder self L1 H1 (3,2)", w, float64(att.DecoderSelf[1][1].At(3, 2)))
	key("e")
	state("encoder_self 1 1 heat")
	q, k, w = hoverCell(2, 3)
	if q != src[2] || k != src[3] {
		t.Errorf("encoder tooltip names %q → %q, want %q → %q", q, k, src[2], src[3])
	}
	checkWeight("encoder self L1 H1 (2,3)", w, float64(att.EncoderSelf[1][1].At(2, 3)))

	// Lines view of cross-attention: hovering target token 3 names the
	// source token it attends to most.
	key("c")
	key("v")
	state("cross 1 1 lines")
	pt := locate(t, ctx, fmt.Sprintf(`(() => {
		const cv = document.querySelector(%q + ' .x-canvas'), g = JSON.parse(cv.dataset.lines), r = cv.getBoundingClientRect();
		return {X: r.left + g.xl - 10, Y: r.top + g.y0 + 3.5 * g.step};
	})()`, root))
	q, k, w = readTip(t, ctx, root, pt.X, pt.Y, "q3")
	m := att.Cross[1][1]
	best := 0
	for j := range m.Cols {
		if m.At(3, j) > m.At(3, best) {
			best = j
		}
	}
	if q != tgt[3] {
		t.Errorf("lines tooltip names target %q, want %q", q, tgt[3])
	}
	if k != src[best] {
		// Two weights within a quantisation step may swap places.
		if math.Abs(float64(m.At(3, best))-w) > explorerTol {
			t.Errorf("lines tooltip names source %q, want %q", k, src[best])
		}
	}
	checkWeight("lines cross L1 H1 row 3 max", w, float64(m.At(3, best)))

	// A gallery card's explorer starts when its <details> is opened.
	card := ".card details"
	run("opening a gallery explorer", chromedp.ScrollIntoView(chromedp.CSS(card)), chromedp.Click(chromedp.CSS(card+" summary")),
		chromedp.WaitVisible(chromedp.CSS(card+" .explorer .x-canvas")))

	if *keep != "" {
		// A picture of the explorer in use, for the docs: the heatmap
		// with a hovered cell.
		key("v")
		hoverCell(3, 2)
		png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(fmt.Sprintf("#ex-%d", id))))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		keepFile(t, "explorer.png", png)
	}
	events.check(t)
}

func meanAt(heads []metrics.Matrix, r, c int) float64 {
	var s float64
	for _, m := range heads {
		s += float64(m.At(r, c))
	}
	return s / float64(len(heads))
}

type point struct{ X, Y float64 }

// locate evaluates a script that returns a point on the page.
func locate(t *testing.T, ctx context.Context, script string) point {
	t.Helper()
	pt, err := chromedp.Run(ctx, chromedp.Evaluate[point](script))
	if err != nil {
		t.Fatalf("locating: %v", err)
	}
	return pt
}

// readTip moves the mouse to (x, y) and reads the explorer's tooltip once
// it describes at ("row,col", or "q"/"k" and a token index in the lines
// view): the browser may handle a move on its next frame.
func readTip(t *testing.T, ctx context.Context, root string, x, y float64, at string) (string, string, float64) {
	t.Helper()
	type tipText struct {
		Hidden      bool
		At, Q, K, W string
	}
	if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y)); err != nil {
		t.Fatalf("hovering (%.0f, %.0f): %v", x, y, err)
	}
	var tip tipText
	for try := 0; ; try++ {
		var err error
		tip, err = chromedp.Run(ctx, chromedp.Evaluate[tipText](fmt.Sprintf(`(() => {
			const tip = document.querySelector(%q + ' .x-tip'), f = s => (tip.querySelector(s) || {}).textContent || '';
			return {Hidden: tip.hidden, At: tip.dataset.at || '', Q: f('.x-q'), K: f('.x-k'), W: f('.x-w')};
		})()`, root)))
		if err != nil {
			t.Fatalf("hovering (%.0f, %.0f): %v", x, y, err)
		}
		if !tip.Hidden && tip.At == at {
			break
		}
		if try == 100 {
			t.Fatalf("hovering (%.0f, %.0f): tooltip hidden=%v describes %q, want %q", x, y, tip.Hidden, tip.At, at)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !tipRe.MatchString(tip.W) {
		t.Fatalf("hovering (%.0f, %.0f): tooltip weight %q", x, y, tip.W)
	}
	w, err := strconv.ParseFloat(tip.W, 64)
	if err != nil {
		t.Fatal(err)
	}
	return tip.Q, tip.K, w
}
