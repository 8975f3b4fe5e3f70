// Package examples holds small assets that ship inside the attnaudit binary,
// so that a demo run works with no files of its own.
package examples

import _ "embed"

// DemoDataName is the path of the embedded demo dataset inside the
// repository. Error messages about the embedded data cite it as a file name
// (for example "examples/data/demo.jsonl:12: ...").
const DemoDataName = "examples/data/demo.jsonl"

// DemoData is the demo dataset in JSONL form: one object per line with "id",
// "source" (Korean), "reference" (English) and, for some lines, "alignment"
// (gold Pharaoh word links over whitespace words, source index first).
// See examples/data/README.md. Treat it as read-only.
//
//go:embed data/demo.jsonl
var DemoData []byte
