package configs

import (
	"fmt"
	"slices"
	"strings"
)

// Regression gate names, as used by audit.fail_on and --fail-on.
const (
	GateChrFDrop        = "chrf_drop"
	GateSuspectRise     = "suspect_rise"
	GateDiagonalityDrop = "diagonality_drop"
	GateAERRise         = "aer_rise"
)

var gates = []string{GateChrFDrop, GateSuspectRise, GateDiagonalityDrop, GateAERRise}

// Gates are the gate names --fail-on accepts (besides "all").
func Gates() []string { return slices.Clone(gates) }

// AuditConfig holds the regression gates of `attnaudit audit`.
type AuditConfig struct {
	ChrFDrop        float64 `yaml:"chrf_drop" json:"chrf_drop"`
	SuspectRise     float64 `yaml:"suspect_rise" json:"suspect_rise"`
	DiagonalityDrop float64 `yaml:"diagonality_drop" json:"diagonality_drop"`
	AERRise         float64 `yaml:"aer_rise" json:"aer_rise"`
	FailOn          string  `yaml:"fail_on" json:"fail_on"`
}

// FailOnList returns the gates that make audit exit non-zero.
func (a AuditConfig) FailOnList() []string {
	if strings.TrimSpace(a.FailOn) == "all" {
		return slices.Clone(gates)
	}
	var out []string
	for _, g := range strings.Split(a.FailOn, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

// Fails reports whether a regression of gate makes audit exit non-zero.
func (a AuditConfig) Fails(gate string) bool { return slices.Contains(a.FailOnList(), gate) }

func (a AuditConfig) validate() []string {
	var errs []string
	for _, g := range a.FailOnList() {
		if !slices.Contains(gates, g) {
			errs = append(errs, fmt.Sprintf("fail_on: unknown gate %q (want all or some of %s)", g, strings.Join(gates, ", ")))
		}
	}
	for name, v := range map[string]float64{"chrf_drop": a.ChrFDrop, "suspect_rise": a.SuspectRise,
		"diagonality_drop": a.DiagonalityDrop, "aer_rise": a.AERRise} {
		if v < 0 {
			errs = append(errs, fmt.Sprintf("%s %g: want ≥ 0", name, v))
		}
	}
	return errs
}
