// Command attnaudit audits the attention of encoder–decoder translation
// models exported to ONNX: it runs inference over a dataset, stores every
// attention tensor in Parquet, computes diagnostics and writes HTML reports.
// See README.md and ../shared/SPEC.md §1 for the commands.
//
// This file holds flags and wiring only; the work is in package pipeline.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	stop := startProfile(os.Getenv("ATTNAUDIT_CPUPROFILE"))
	// SIGTERM (what Kubernetes and Slurm send on preemption) and SIGINT
	// stop a run cleanly between chunks (pipeline.Env.Stop); a second one
	// kills at once.
	ctx, unnotify := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		unnotify()
	}()
	err := newApp().RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "attnaudit:", err)
		os.Exit(exitCode(err))
	}
}

// startProfile writes a CPU profile of the whole command to path (for `go
// tool pprof`; time inside ONNX Runtime shows as runtime.cgocall) when path
// is set. It returns the function that finishes it.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "attnaudit: ATTNAUDIT_CPUPROFILE:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "attnaudit",
		Usage:   "audit the attention of encoder–decoder translation models exported to ONNX",
		Version: version,
		// Bad flags, missing arguments and unknown commands exit with
		// exitUsage, as the README says.
		OnUsageError: onUsageError,
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(os.Stderr, "attnaudit: no command %q; see attnaudit --help\n", name)
			os.Exit(exitUsage)
		},
		Commands: []*cli.Command{
			runCommand(),
			auditCommand(),
			inferCommand(),
			metricsCommand(),
			reportCommand(),
			compareCommand(),
			visualizeCommand(),
			inspectCommand(),
			verifyCommand(),
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = onUsageError
	}
	return app
}

func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err} }
