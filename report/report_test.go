package report

import (
	"bytes"
	"testing"
)

func TestGenerateLook(t *testing.T) {
	var buf bytes.Buffer
	data := synthRun(60, 6, 8)
	if err := Generate(&buf, data, DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	keepFile(t, "report.html", buf.Bytes())
	t.Logf("%d bytes", buf.Len())
}
