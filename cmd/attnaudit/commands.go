package main

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/urfave/cli/v2"

	"attnaudit/configs"
	"attnaudit/inference"
	"attnaudit/pipeline"
)

// Exit codes, documented in README.md.
const (
	exitError      = 1 // a stage failed or the input was bad
	exitUsage      = 2 // the command line itself was wrong
	exitRegression = 3 // audit: a regression gate named by --fail-on fired
	// exitInterrupted: SIGTERM or SIGINT stopped the run between chunks;
	// rerunning the command resumes it. 130 is what shells report for SIGINT.
	exitInterrupted = 130
)

// usageError marks errors in the command line, which exit with exitUsage.
type usageError struct{ error }

func exitCode(err error) int {
	var u usageError
	var r *pipeline.RegressionError
	switch {
	case errors.As(err, &u):
		return exitUsage
	case errors.As(err, &r):
		return exitRegression
	case errors.Is(err, pipeline.ErrInterrupted):
		return exitInterrupted
	}
	return exitError
}

// Flags shared by several commands.
var (
	configFileFlag = &cli.StringFlag{Name: "config", Usage: "YAML file layered over configs/default.yaml"}
	checkpointFlag = &cli.StringFlag{Name: "checkpoint", Usage: "checkpoint folder (contract 1 or 2); default: the shipped final checkpoint"}
	dataFlag       = &cli.StringFlag{Name: "data", Usage: "dataset (.tsv, .jsonl or .txt); default: the embedded demo set"}
	outputDirFlag  = &cli.StringFlag{Name: "output-dir", Value: "runs", Usage: "folder that holds run folders"}
	runFlag        = &cli.StringFlag{Name: "run", Usage: "run folder; default: the one --checkpoint, --data and --output-dir name"}
	shardFlag      = &cli.StringFlag{Name: "shard", Usage: "process slice I/N only; \"/N\" takes I from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID"}
)

// withConfigFlags appends --config and a flag for every configuration key
// of the given groups: each command carries only the settings it reads.
func withConfigFlags(groups []string, flags ...cli.Flag) []cli.Flag {
	var own []string
	for _, f := range flags {
		own = append(own, f.Names()...)
	}
	flags = append(flags, configFileFlag)
	for _, cf := range configFlags(own...) {
		if !slices.Contains(groups, cf.group()) {
			continue
		}
		configFlagOf[cf.flag] = cf
		flags = append(flags, cf.flag)
	}
	return flags
}

// The groups of settings each command reads. metrics and report find their
// run folder by the inference settings, which name it.
var (
	runGroups       = []string{groupRuntime, groupInference, groupMetrics, groupReport}
	inferGroups     = []string{groupRuntime, groupInference}
	metricsGroups   = []string{groupInference, groupMetrics}
	reportGroups    = []string{groupInference, groupReport}
	compareGroups   = []string{groupReport, groupAudit}
	auditGroups     = []string{groupRuntime, groupInference, groupMetrics, groupReport, groupAudit}
	inspectGroups   = []string{groupRuntime}
	visualizeGroups = []string{groupRuntime, groupInference, groupReport}
)

// setup loads the configuration and, when a stage runs a model, ONNX Runtime.
func setup(c *cli.Context, withRuntime bool) (pipeline.Env, configs.Config, error) {
	if c.Args().Len() > 0 {
		return pipeline.Env{}, configs.Config{}, usageError{fmt.Errorf("unexpected arguments %q", c.Args().Slice())}
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return pipeline.Env{}, configs.Config{}, usageError{err}
	}
	env := pipeline.Env{Log: os.Stderr, Progress: os.Stderr, Version: version, Stop: c.Context.Done()}
	if withRuntime {
		rt, err := inference.NewRuntime(inference.Options{
			LibPath: cfg.ORTLib, Provider: cfg.Provider, CUDADevice: cfg.CUDADevice, Threads: cfg.Threads, Workers: cfg.Workers,
		})
		if err != nil {
			return pipeline.Env{}, configs.Config{}, err
		}
		env.Runtime = rt
	}
	return env, cfg, nil
}

func inputs(c *cli.Context, cfg configs.Config) pipeline.Inputs {
	return pipeline.Inputs{
		Checkpoint: c.String("checkpoint"),
		Data:       c.String("data"),
		OutputDir:  c.String("output-dir"),
		Config:     cfg,
	}
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "all stages (infer, metrics, report) for one checkpoint and dataset into one run folder",
		Flags: withConfigFlags(runGroups, checkpointFlag, dataFlag, outputDirFlag),
		Action: func(c *cli.Context) error {
			env, cfg, err := setup(c, true)
			if err != nil {
				return err
			}
			dir, err := pipeline.Run(env, inputs(c, cfg))
			if err == nil {
				fmt.Println(dir)
			}
			return err
		},
	}
}

func inferCommand() *cli.Command {
	return &cli.Command{
		Name:  "infer",
		Usage: "the infer stage: translations, token log-probs and every attention tensor to Parquet",
		Flags: withConfigFlags(inferGroups, checkpointFlag, dataFlag, outputDirFlag, shardFlag),
		Action: func(c *cli.Context) error {
			shard, err := pipeline.ParseShard(c.String("shard"))
			if err != nil {
				return usageError{err}
			}
			env, cfg, err := setup(c, true)
			if err != nil {
				return err
			}
			dir, err := pipeline.Infer(env, inputs(c, cfg), shard)
			if err == nil {
				fmt.Println(dir)
			}
			return err
		},
	}
}

// stageCommand builds metrics and report: stages that read a run folder
// found by --run or by the inputs that made it.
func stageCommand(name, usage string, groups []string, do func(pipeline.Env, string, configs.Config, bool) error) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: withConfigFlags(groups, runFlag, checkpointFlag, dataFlag, outputDirFlag),
		Action: func(c *cli.Context) error {
			env, cfg, err := setup(c, false)
			if err != nil {
				return err
			}
			dir := c.String("run")
			if dir == "" {
				if dir, err = pipeline.RunDir(env, inputs(c, cfg)); err != nil {
					return err
				}
			}
			return do(env, dir, cfg, true) // asked for by name: run it again
		},
	}
}

func metricsCommand() *cli.Command {
	return stageCommand("metrics", "the metrics stage: head and sentence metrics, flags and the run summary", metricsGroups, pipeline.Metrics)
}

func reportCommand() *cli.Command {
	return stageCommand("report", "the report stage: a self-contained report.html", reportGroups, pipeline.Report)
}

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:  "compare",
		Usage: "compare.html across the finished runs of one model, in epoch/step order",
		Flags: withConfigFlags(compareGroups,
			&cli.StringSliceFlag{Name: "runs", Usage: "run folders, or a folder of run folders", Required: true},
			&cli.StringFlag{Name: "baseline", Usage: "run folder to compare against; default: each run's predecessor"},
			&cli.StringFlag{Name: "output", Value: "compare.html", Usage: "where to write the page"},
		),
		Action: func(c *cli.Context) error {
			_, cfg, err := setup(c, false)
			if err != nil {
				return err
			}
			dirs, err := pipeline.FindRuns(c.StringSlice("runs"))
			if err != nil {
				return err
			}
			_, err = pipeline.WriteCompare(dirs, c.String("baseline"), c.String("output"), cfg.Report, cfg.Audit)
			return err
		},
	}
}

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "nightly job: run every checkpoint not yet audited, compare them, gate regressions",
		Flags: withConfigFlags(auditGroups,
			&cli.StringFlag{Name: "checkpoints", Required: true, Usage: "a folder of checkpoint folders, a checkpoint folder, or a file listing one per line"},
			dataFlag, outputDirFlag,
			&cli.StringFlag{Name: "baseline", Usage: "run folder every checkpoint is gated against; default: the previous checkpoint"},
		),
		Action: func(c *cli.Context) error {
			env, cfg, err := setup(c, true)
			if err != nil {
				return err
			}
			ckpts, err := pipeline.FindCheckpoints(c.String("checkpoints"))
			if err != nil {
				return usageError{err}
			}
			sum, err := pipeline.Audit(env, pipeline.AuditInputs{
				Checkpoints: ckpts,
				Data:        c.String("data"),
				OutputDir:   c.String("output-dir"),
				Baseline:    c.String("baseline"),
				Config:      cfg,
			})
			if sum != nil {
				fmt.Println(sum.Path)
			}
			return err
		},
	}
}

// verifyCommand checks run folders' files against their manifests and
// fails naming every problem.
func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check run folders: parts present with their recorded sizes, sha256 and row counts, every chunk there, the manifest complete",
		ArgsUsage: "RUN...",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError{fmt.Errorf("verify: name one or more run folders")}
			}
			bad := 0
			for _, dir := range c.Args().Slice() {
				probs := pipeline.Verify(dir)
				for _, p := range probs {
					fmt.Fprintf(os.Stderr, "verify: %v\n", p)
				}
				if len(probs) > 0 {
					bad++
					continue
				}
				fmt.Printf("%s: ok\n", dir)
			}
			if bad > 0 {
				return fmt.Errorf("verify: %d of %d runs have problems; `attnaudit run` with the same flags writes damaged or missing chunks again", bad, c.NArg())
			}
			return nil
		},
	}
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "print a checkpoint's contract: inputs/outputs, layers, heads, vocab, special ids, metadata",
		Flags: withConfigFlags(inspectGroups, checkpointFlag),
		Action: func(c *cli.Context) error {
			if _, _, err := setup(c, true); err != nil {
				return err
			}
			ck, _, err := pipeline.OpenCheckpoint(c.String("checkpoint"))
			if err != nil {
				return err
			}
			return ck.Describe(os.Stdout)
		},
	}
}

// visualizeCommand keeps the seed guide's options and defaults exactly.
func visualizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "visualize",
		Usage: "the seed's attention PNGs for one sentence, a file, or validation examples",
		Flags: withConfigFlags(visualizeGroups,
			checkpointFlag,
			&cli.StringFlag{Name: "input", Usage: "a sentence to translate and plot"},
			&cli.StringFlag{Name: "file", Usage: "a file with one sentence per line"},
			&cli.IntFlag{Name: "layer", Value: -1, Usage: "decoder layer to plot; negative counts from the end"},
			&cli.IntFlag{Name: "num-examples", Value: 3, Usage: "validation examples to plot when neither --input nor --file is given"},
			&cli.StringFlag{Name: "output-dir", Value: "outputs/attention_plots", Usage: "where the PNGs go (a subfolder per example when several)"},
			&cli.BoolFlag{Name: "show", Usage: "open the figures where a display exists"},
		),
		Action: func(c *cli.Context) error {
			env, cfg, err := setup(c, true)
			if err != nil {
				return err
			}
			files, err := pipeline.Visualize(env, pipeline.VisualizeInputs{
				Checkpoint:  c.String("checkpoint"),
				Input:       c.String("input"),
				File:        c.String("file"),
				Layer:       c.Int("layer"),
				NumExamples: c.Int("num-examples"),
				OutputDir:   c.String("output-dir"),
				Show:        c.Bool("show"),
				Plot:        cfg.Report.Plot,
				Decode:      pipeline.DecodeOptions(cfg),
			})
			for _, f := range files {
				fmt.Println(f)
			}
			return err
		},
	}
}
