package metrics

import "math"

// Norm-based attention (Kobayashi et al. 2020, "Attention is Not Only a
// Weight: Analyzing Transformers with Vector Norms", EMNLP). A head's
// output for query t is Σ_j α_tj f(x_j), with f(x_j) the value vector of
// key j through the head's share of the output projection. Weighing each
// α_tj by ||f(x_j)|| says how much key j actually moves the output: a head
// parked on a key whose transformed value is short (often EOS or
// punctuation) attends to it without reading anything from it. The
// checkpoint exports ||f(x_j)|| per layer, head and source position
// (value-vector norms; docs/contract2.md).

// NormWeighted is the norm-based attention of one head, renormalised per
// row so that it reads like attention: A'_tj = α_tj ||f(x_j)|| /
// Σ_k α_tk ||f(x_k)||. A row with no weighted mass stays zero. It returns
// false when norms does not have one value per column of m.
func NormWeighted(m Matrix, norms []float32) (Matrix, bool) {
	if len(norms) != m.Cols || len(m.Data) != m.Rows*m.Cols {
		return Matrix{}, false
	}
	out := Matrix{Rows: m.Rows, Cols: m.Cols, Data: make([]float32, len(m.Data))}
	for t := range m.Rows {
		row, dst := m.Row(t), out.Data[t*m.Cols:(t+1)*m.Cols]
		var sum float64
		for j, a := range row {
			sum += float64(a) * float64(norms[j])
		}
		if sum <= 0 {
			continue
		}
		for j, a := range row {
			dst[j] = float32(float64(a) * float64(norms[j]) / sum)
		}
	}
	return out, true
}

// normWeightedLayers is NormWeighted for every head of every layer of one
// attention kind; nil when the norms do not match the attention's shape.
func normWeightedLayers(layers [][]Matrix, norms [][][]float32) [][]Matrix {
	if len(layers) == 0 || len(norms) != len(layers) {
		return nil
	}
	out := make([][]Matrix, len(layers))
	for l, heads := range layers {
		if len(heads) == 0 { // a layer the run did not store
			continue
		}
		if len(norms[l]) != len(heads) {
			return nil
		}
		out[l] = make([]Matrix, len(heads))
		for h, m := range heads {
			w, ok := NormWeighted(m, norms[l][h])
			if !ok {
				return nil
			}
			out[l][h] = w
		}
	}
	return out
}

// SourceContribution is a norm-based estimate of how much the decoder
// reads from the source: over every decoder layer, head and target step,
// the mean of Σ_j α_tj ||f(x_j)|| / mean_j ||f(x_j)||, the length of the
// value vectors the cross-attention step pulls in relative to what uniform
// attention over the same source would pull. 1 is "as much as uniform
// attention"; a step parked on short-valued keys scores below 1. Low values
// suggest an output that does not rest on the source.
//
// It stands in for ALTI+'s total source contribution (Ferrando et al. 2022,
// "Towards Opening the Black Box of Neural Machine Translation: Source and
// Target Contributions to the Model Predictions"), the strongest internal
// hallucination detector of Dale et al. 2023, with what the contract
// exports; its simplifications: a sum of norms, not the norm of the summed
// vectors (no cancellation between keys); no residual stream, LayerNorm or
// feed-forward, so no competing target-prefix contribution and no
// propagation through layers; and the comparison is with uniform
// attention over the same source rather than with the decoder's own
// state. NaN without cross-attention or matching norms.
func SourceContribution(cross [][]Matrix, norms [][][]float32) float64 {
	if len(cross) == 0 || len(norms) != len(cross) {
		return math.NaN()
	}
	var sum float64
	n := 0
	for l, heads := range cross {
		if len(norms[l]) != len(heads) {
			return math.NaN()
		}
		for h, m := range heads {
			nv := norms[l][h]
			if len(nv) != m.Cols || m.Cols == 0 {
				return math.NaN()
			}
			var mean float64
			for _, x := range nv {
				mean += float64(x)
			}
			mean /= float64(len(nv))
			if mean <= 0 {
				continue
			}
			for t := range m.Rows {
				var pulled float64
				for j, a := range m.Row(t) {
					pulled += float64(a) * float64(nv[j])
				}
				sum += pulled / mean
				n++
			}
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}
