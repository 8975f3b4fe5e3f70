// Command gendefault writes configs/default.yaml's values from
// configs.Default(), keeping its comments: `go generate ./configs`.
package main

import (
	"fmt"
	"os"

	"attnaudit/configs"
)

func main() {
	const path = "default.yaml"
	doc, err := os.ReadFile(path)
	if err == nil {
		doc, err = configs.RenderDefaultYAML(doc)
	}
	if err == nil {
		err = os.WriteFile(path, doc, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendefault:", err)
		os.Exit(1)
	}
}
