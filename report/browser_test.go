package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// probe is injected into a copy of a page: it records errors, CSP
// violations (any attempted request) and console errors, then, on load,
// whether every image decoded, into a <pre> that --dump-dom prints.
const probe = `<script>` + probeJS + `</script>`

const probeJS = `
window.__errs = [];
window.addEventListener('error', e => __errs.push('error: ' + (e.message || (e.target && e.target.outerHTML || '').slice(0, 80))), true);
document.addEventListener('securitypolicyviolation', e => __errs.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
const __ce = console.error; console.error = (...a) => { __errs.push('console: ' + a.join(' ')); __ce.apply(console, a); };
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 60));
  const pre = document.createElement('pre');
  pre.id = '__probe';
  pre.textContent = JSON.stringify({images: imgs.length, bad: bad, errs: __errs});
  document.body.appendChild(pre);
});
`

type probeResult struct {
	Images int      `json:"images"`
	Bad    []string `json:"bad"`
	Errs   []string `json:"errs"`
}

// chromium finds the browser, or fails naming the package CI installs.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("ATTNAUDIT_SKIP_BROWSER") == "1" {
		t.Skip("ATTNAUDIT_SKIP_BROWSER=1")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium not found: install the chromium package (apt-get install chromium), or set ATTNAUDIT_SKIP_BROWSER=1")
	return ""
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

var (
	probeOut  = regexp.MustCompile(`(?s)<pre id="__probe">(.*?)</pre>`)
	cspMeta   = regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`)
	remoteURL = regexp.MustCompile(`(?i)(?:src|href|action)\s*=\s*["']?\s*(?:https?:|//)|url\(\s*["']?\s*(?:https?:|//)|@import`)
)

// checkInBrowser loads page in headless Chromium and reports what the probe
// saw.
func checkInBrowser(t *testing.T, bin, dir, name string, page []byte) probeResult {
	t.Helper()
	p := string(page)
	m := cspMeta.FindStringSubmatchIndex(p)
	if m == nil {
		t.Fatalf("%s lacks a CSP meta tag", name)
	}
	policy := html.UnescapeString(p[m[2]:m[3]])
	if !strings.HasPrefix(policy, noScriptCSP) {
		t.Fatalf("%s: CSP %q does not start with %q", name, policy, noScriptCSP)
	}
	// Let the probe run too, by its hash; everything else stays as the
	// page says, so a request still shows up as a CSP violation.
	sum := sha256.Sum256([]byte(probeJS))
	probeSrc := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if strings.Contains(policy, "script-src ") {
		policy = strings.Replace(policy, "script-src ", "script-src "+probeSrc+" ", 1)
	} else {
		policy += "; script-src " + probeSrc
	}
	p = p[:m[0]] + `<meta http-equiv="Content-Security-Policy" content="` + html.EscapeString(policy) + `">` + probe + p[m[1]:]
	path := filepath.Join(dir, "probe-"+name)
	if err := os.WriteFile(path, []byte(p), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := runChromium(t, bin, "--virtual-time-budget=20000", "--dump-dom", "file://"+path)
	out := probeOut.FindSubmatch(dom)
	if out == nil {
		t.Fatalf("%s: the probe did not report (page did not load?); DOM starts %.300s", name, dom)
	}
	var res probeResult
	if err := json.Unmarshal([]byte(html.UnescapeString(string(out[1]))), &res); err != nil {
		t.Fatalf("%s: probe output %q: %v", name, out[1], err)
	}
	return res
}

// TestPagesInBrowser writes report.html and compare.html from synthetic
// runs and opens them in headless Chromium: every image must decode, no
// request may leave the page, and nothing may log an error.
func TestPagesInBrowser(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	var rep, cmp bytes.Buffer
	if err := Generate(&rep, synthRun(30, 6, 8), DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	if err := GenerateCompare(&cmp, synthCompare(4, 12), DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	for _, pg := range []struct {
		name      string
		page      []byte
		minImages int
	}{{"report.html", rep.Bytes(), 40}, {"compare.html", cmp.Bytes(), 15}} {
		t.Run(pg.name, func(t *testing.T) {
			keepFile(t, pg.name, pg.page)
			if loc := remoteURL.FindIndex(pg.page); loc != nil {
				t.Errorf("page refers to the network: %q", pg.page[loc[0]:min(loc[1]+40, len(pg.page))])
			}
			res := checkInBrowser(t, bin, dir, pg.name, pg.page)
			if res.Images < pg.minImages {
				t.Errorf("%d images, want at least %d", res.Images, pg.minImages)
			}
			if len(res.Bad) > 0 {
				t.Errorf("%d images did not decode: %v", len(res.Bad), res.Bad)
			}
			if len(res.Errs) > 0 {
				t.Errorf("errors in the browser: %v", res.Errs)
			}
			if *keep != "" {
				runChromium(t, bin, "--window-size=1300,2200", "--screenshot="+filepath.Join(*keep, pg.name+".png"),
					"file://"+filepath.Join(*keep, pg.name))
			}
		})
	}
}

// TestBrowserProbeCatches makes sure the harness above can fail: a page
// with a remote image and a broken one must be reported.
func TestBrowserProbeCatches(t *testing.T) {
	bin := chromium(t)
	page := []byte(`<!DOCTYPE html><html><head><meta charset="utf-8">` +
		`<meta http-equiv="Content-Security-Policy" content="` + noScriptCSP + `"></head><body>` +
		`<img alt="remote" src="http://127.0.0.1:9/x.png"><img alt="broken" src="data:image/png;base64,AAAA"></body></html>`)
	if remoteURL.Find(page) == nil {
		t.Error("the static check misses a remote image")
	}
	res := checkInBrowser(t, bin, t.TempDir(), "bad.html", page)
	if len(res.Bad) != 2 {
		t.Errorf("bad images = %v, want both", res.Bad)
	}
	csp := false
	for _, e := range res.Errs {
		csp = csp || strings.HasPrefix(e, "csp: img-src")
	}
	if !csp {
		t.Errorf("no CSP violation recorded for the remote image: %v", res.Errs)
	}
}
