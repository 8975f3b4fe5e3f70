//go:build !attnaudit_fake_metric

package metrics

// extraHeadMetrics are head metrics defined by their table entry alone
// (HeadMetric.Compute). None ships; the end-to-end test builds attnaudit with
// the tag attnaudit_fake_metric, which adds one (table_fake.go), to show
// that a table entry reaches every output.
var extraHeadMetrics = [0]HeadMetric{}
