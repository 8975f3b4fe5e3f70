// Package inference runs checkpoints of contract 1 (../shared/SPEC.md §2)
// and contract 2 (docs/contract2.md: Hugging Face Optimum's seq2seq layout
// with a key/value cache) in ONNX Runtime: it loads the library and picks
// the execution provider (Runtime), reads and checks checkpoint folders
// (Checkpoint), tokenises with SentencePiece (Tokenizer), and translates
// with greedy or beam search (Model), capturing every attention tensor:
// with a teacher-forced pass after the search (contract 1), or from the
// rows each cached step returns (contract 2, cached.go).
//
//	rt, err := inference.NewRuntime(inference.Options{Provider: "auto"})
//	ck, err := inference.OpenCheckpoint(os.DirFS(dir), ".")
//	m, err := rt.Load(ck)
//	res, err := m.TranslateBatch(reqs, inference.DecodeOptions{Beam: 4})
//
// Token conventions follow DEVELOPERS.md: sources end with EOS, the decoder
// reads BOS and the target, and row t of a pass's attention predicts its
// token t. Attention comes back as metrics.Matrix per layer and head with
// padding removed; an attention tensor the checkpoint does not export is
// nil, and Checkpoint.RequireAttention says so with the seed's "Attention
// weights not found" error.
//
// ONNX Runtime allows one environment per process, so there is one Runtime
// at a time. Errors name the file and tensor they concern; nothing panics
// on a malformed checkpoint.
package inference
