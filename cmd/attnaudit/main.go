// Command attnaudit audits the attention of encoder–decoder translation
// models exported to ONNX: it runs inference over a dataset, stores every
// attention tensor in Parquet, computes diagnostics and writes HTML reports.
// See README.md and ../shared/SPEC.md §1 for the commands.
//
// This file holds flags and wiring only; the work is in package pipeline.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "attnaudit:", err)
		os.Exit(exitCode(err))
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "attnaudit",
		Usage:   "audit the attention of encoder–decoder translation models exported to ONNX",
		Version: version,
		Commands: []*cli.Command{
			runCommand(),
			auditCommand(),
			inferCommand(),
			metricsCommand(),
			reportCommand(),
			compareCommand(),
			visualizeCommand(),
			inspectCommand(),
		},
	}
}
