package pipeline

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress reports examples/s and an ETA: rewritten in place on a terminal,
// as a plain log line every few seconds otherwise (CI logs, batch jobs).
type progress struct {
	w        io.Writer
	terminal bool
	label    string
	total    int
	done     int
	start    time.Time
	last     time.Time
}

func newProgress(w io.Writer, label string, total int) *progress {
	now := time.Now()
	return &progress{w: w, terminal: isTerminal(w), label: label, total: total, start: now, last: now}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// add records n more finished examples.
func (p *progress) add(n int) {
	p.done += n
	now := time.Now()
	interval := 10 * time.Second
	if p.terminal {
		interval = 200 * time.Millisecond
	}
	if now.Sub(p.last) < interval && p.done < p.total {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start).Seconds()
	rate := float64(p.done) / elapsed
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s: %d/%d examples, %.1f examples/s, ETA %s", p.label, p.done, p.total, rate, eta)
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if p.done >= p.total {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, line)
}
