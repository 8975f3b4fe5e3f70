//go:build attnaudit_fake_metric

package metrics

// extraHeadMetrics, built with the tag attnaudit_fake_metric: one made-up
// metric, the largest weight of the matrix, so that a test can find a
// metric added only here in head_metrics.parquet, the run summary and the
// report (cmd/attnaudit's TestAFakeMetricReachesEveryOutput).
var extraHeadMetrics = [1]HeadMetric{{
	Name: "fake_max_weight", Doc: "largest weight of the head (a test metric)", Lo: 0, Hi: 1, Plot: true, Compare: true,
	Compute: func(m Matrix) float64 {
		mx := 0.0
		for _, a := range m.Data {
			mx = max(mx, float64(a))
		}
		return mx
	},
}}
