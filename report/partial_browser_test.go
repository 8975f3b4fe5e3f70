package report

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"attnaudit/metrics"
)

// TestPartialLayersInBrowser makes the report of a run that stored layers
// 0 and 5 of 6 only (the store setting: layers not stored have no heads)
// and drives it in headless Chromium: the page says what was not
// computed, the explorer offers layers 0 and 5 by those numbers, opens at
// the last and shows layer 0's weights after ↑; nothing logs an error.
func TestPartialLayersInBrowser(t *testing.T) {
	const layers, heads = 6, 8
	data := synthRun(20, layers, heads)
	for id, ea := range data.Attention {
		for _, kind := range []*[][]metrics.Matrix{&ea.Cross, &ea.DecoderSelf, &ea.EncoderSelf} {
			for l := 1; l < layers-1; l++ {
				(*kind)[l] = nil
			}
		}
		data.Attention[id] = ea
	}
	why := `not stored (store "layer=0,layer=-1")`
	data.Summary.NotComputed = []metrics.Omission{{What: "head metrics of cross attention, layers 1, 2, 3, 4", Passes: []string{"free"}, Why: why}}
	opts := DefaultOptions()
	id := Select(data, opts).Worst[0]
	var buf bytes.Buffer
	if err := Generate(&buf, data, opts); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.Contains(page, "<h3>Not computed</h3>") || !strings.Contains(page, "layers 1, 2, 3, 4") {
		t.Error("the page does not list what was not computed")
	}
	res := checkInBrowser(t, chromium(t), t.TempDir(), "partial.html", buf.Bytes())
	if len(res.Bad) > 0 || len(res.Errs) > 0 || res.Images == 0 {
		t.Errorf("in the browser: %d images, undecoded %v, errors %v", res.Images, res.Bad, res.Errs)
	}

	path := writePage(t, t.TempDir(), "partial_report.html", buf.Bytes())
	root := fmt.Sprintf("#ex-%d .explorer", id)
	ctx, events := openPage(t, path, 1300, 1100)
	do := pageSteps(t, ctx, events)
	type view struct {
		State, Caption string
		Layers         []string
	}
	read := func(want string) view {
		t.Helper()
		for try := 0; ; try++ {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[view](fmt.Sprintf(`(() => {
				const r = document.querySelector(%q);
				return {State: r.dataset.state || '', Caption: (r.querySelector('.x-caption') || {}).textContent || '',
					Layers: Array.from(r.querySelectorAll('button[data-set="layer"]')).map(b => b.textContent)};
			})()`, root)))
			if err != nil {
				t.Fatalf("reading the explorer: %v", err)
			}
			if v.State == want {
				return v
			}
			if try == 50 {
				t.Fatalf("explorer state %q, want %q", v.State, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	do("scrolling to the explorer", chromedp.ScrollIntoView(chromedp.CSS(root)), chromedp.WaitVisible(chromedp.CSS(root+" .x-canvas")))
	v := read("cross 1 -1 heat")
	if strings.Join(v.Layers, " ") != "0 5" || !strings.Contains(v.Caption, "layer 5,") {
		t.Errorf("layers offered %q, caption %q; want 0 and 5, at layer 5", v.Layers, v.Caption)
	}
	do("pressing ↑ and choosing head 2", chromedp.Focus(chromedp.CSS(root)), chromedp.KeyEvent(kb.ArrowUp),
		chromedp.Click(chromedp.CSS(root+` button[data-set="head"][data-v="2"]`)))
	if v = read("cross 0 2 heat"); !strings.Contains(v.Caption, "layer 0,") {
		t.Errorf("caption %q after ↑, want layer 0", v.Caption)
	}
	pt := locate(t, ctx, fmt.Sprintf(`(() => {
		const cv = document.querySelector(%q + ' .x-canvas'), g = JSON.parse(cv.dataset.grid), r = cv.getBoundingClientRect();
		return {X: r.left + g.x0 + 1.5 * g.cell, Y: r.top + g.y0 + 2.5 * g.cell};
	})()`, root))
	_, _, w := readTip(t, ctx, root, pt.X, pt.Y, "2,1")
	if want := float64(data.Attention[id].Cross[0][2].At(2, 1)); math.Abs(w-want) > explorerTol {
		t.Errorf("layer 0 head 2 (2,1): tooltip %.3f, stored %.5f", w, want)
	}
	events.check(t)
}
