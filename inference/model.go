package inference

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Model is a checkpoint loaded into ONNX Runtime sessions. Its methods are
// safe for concurrent use; calls on one Model run one at a time, since they
// share its buffers. To decode batches at the same time, use the handles
// of Workers: one per worker of its Parallelism, each with its own buffers
// on the same sessions (ONNX Runtime runs a session from several threads).
type Model struct {
	mu       sync.Mutex
	ck       *Checkpoint
	tok      *Tokenizer
	io       *contractIO
	provider string
	par      Parallelism
	intraOp  int      // ONNX Runtime threads per call of this handle's sessions
	rowProcs int      // goroutines for per-row work in Go (log-softmax)
	handles  []*Model // Workers; handles[0] is the Model itself
	owner    bool     // Close destroys the sessions (false on the other handles)

	sessions
	wide            *sessions // the owner's: sessions of WideIntraOp threads for Parallelism().Wide handles
	encOut, fullOut []string
	attnOut         []string // the decoders' attention outputs (contract 2)

	buf buffers
}

// sessions are a model's ONNX Runtime sessions, of one intra-op thread
// count. enc runs the encoder; full runs the decoder for logits and the
// attention it exports (teacher-forced passes). Contract 1: step runs the
// decoder for logits only (search). Contract 2: first runs
// decoder_model.onnx for the first step and the cache, past
// decoder_with_past_model.onnx for the later steps.
type sessions struct {
	enc, step, full *ort.DynamicAdvancedSession
	first, past     *ort.DynamicAdvancedSession
}

// destroy releases the sessions and returns the first error.
func (s *sessions) destroy() error {
	var first error
	for _, p := range []**ort.DynamicAdvancedSession{&s.enc, &s.step, &s.full, &s.first, &s.past} {
		if *p != nil {
			if err := (*p).Destroy(); err != nil && first == nil {
				first = err
			}
			*p = nil
		}
	}
	return first
}

// buffers are reused across calls; they grow to the largest batch seen.
type buffers struct {
	src, tgt, rowSrc []int64
	mem, encAttn     []float32
	encNorms         []float32
	crossNorms       []float32
	rowMem           []float32
	logits           []float32
	dself, cross     []float32
	mask             []int64      // contract 2: encoder_attention_mask
	kvSelf, kvCross  [2][]float32 // contract 2: the cache, two buffers each (read one, write the other)
	raw              []float32    // a logits row before adjust
	lse              []float64    // each row's log-normaliser
	stamp            []uint32     // repetition penalty: token → step it was last penalised
	stampNow         uint32
}

func grow[T any](b *[]T, n int) []T {
	if cap(*b) < n {
		*b = make([]T, n)
	}
	*b = (*b)[:n]
	return *b
}

// Load checks the checkpoint against the contract and opens its sessions on
// the Runtime's provider. With provider auto, a CUDA session that fails to
// open falls back to the CPU, and the reason is logged.
func (r *Runtime) Load(ck *Checkpoint) (*Model, error) { return r.LoadFor(ck, nil) }

// LoadFor is Load for a job of batches of the given costs (any unit; nil:
// not known): on the CPU, with the workers left automatic, fewer batches
// than threads share the threads by cost, the costliest on wide workers of
// more intra-op threads (Parallelism.Wide).
func (r *Runtime) LoadFor(ck *Checkpoint, costs []int) (*Model, error) {
	if err := ck.inspect(); err != nil {
		return nil, err
	}
	m := &Model{ck: ck, tok: ck.tok, io: ck.io, owner: true}
	m.encOut = []string{TensorMemory}
	if ck.io.contract == 2 {
		m.encOut = []string{TensorLastHidden}
	}
	for _, t := range []string{TensorEncoderSelf, TensorEncoderValueNorms, TensorCrossValueNorms} {
		if ck.io.has[t] {
			m.encOut = append(m.encOut, t)
		}
	}
	for _, t := range []string{TensorDecoderSelf, TensorCross} {
		if ck.io.has[t] {
			m.attnOut = append(m.attnOut, t)
		}
	}
	m.fullOut = append([]string{TensorLogits}, m.attnOut...)
	useCUDA := r.cuda
	if useCUDA {
		err := m.open(r, true, nil)
		if err == nil {
			m.provider = ProviderCUDA
			m.share()
			return m, nil
		}
		m.Close()
		if r.opts.Provider == ProviderCUDA {
			return nil, fmt.Errorf("opening %s on CUDA: %w", ck.name, err)
		}
		r.noteFallback(fmt.Errorf("CUDA session failed: %w", err))
	}
	if err := m.open(r, false, costs); err != nil {
		m.Close()
		return nil, fmt.Errorf("opening %s: %w", ck.name, err)
	}
	m.provider = ProviderCPU
	m.share()
	return m, nil
}

func (m *Model) open(r *Runtime, cuda bool, costs []int) error {
	par, err := PlanParallelism(r.opts.Threads, r.opts.Workers, cuda)
	if err != nil {
		return err
	}
	m.par = par
	fit := par
	if !cuda && r.opts.Workers == 0 {
		fit = par.fitBatches(costs)
	}
	if err := m.openSessions(r, cuda, par.IntraOp, &m.sessions); err != nil || fit == par {
		return err
	}
	// Fewer batches than threads: slices of the costliest batches on
	// one-thread workers where the model's rows decode independently
	// (rows.go), wide workers otherwise.
	if os.Getenv(NoSlicesEnv) == "" {
		// A probe that fails (a model too short for its sentences, say)
		// only keeps batches whole: the run's own batches will tell.
		same, why, err := m.rowsIndependent()
		if err != nil {
			why = err.Error()
		}
		if same && err == nil {
			m.par.Slices = true
			return nil
		}
		fmt.Fprintf(r.log, "onnxruntime: batches are kept whole (wide workers take the costliest): %s\n", why)
	}
	m.par = fit
	if fit.IntraOp != par.IntraOp {
		err := m.sessions.destroy()
		m.sessions = sessions{}
		if err != nil {
			return err
		}
		if err := m.openSessions(r, cuda, fit.IntraOp, &m.sessions); err != nil {
			return err
		}
	}
	if fit.Wide > 0 {
		m.wide = &sessions{}
		return m.openSessions(r, cuda, fit.WideIntraOp, m.wide)
	}
	return nil
}

// NoSlicesEnv, when set, keeps batches whole on CPU (wide workers take the
// costliest of a job of fewer batches than threads): for comparing the
// two, or should a machine's kernels make rows depend on each other in
// ways the load-time check misses.
const NoSlicesEnv = "ATTNAUDIT_NO_SLICES"

// openSessions opens the checkpoint's sessions into s with intraOp threads
// per call.
func (m *Model) openSessions(r *Runtime, cuda bool, intraOp int, s *sessions) error {
	so, err := r.sessionOptions(cuda, intraOp)
	if err != nil {
		return err
	}
	defer so.Destroy()
	if m.io.contract == 2 {
		return m.open2(so, s)
	}
	decIn := []string{TensorTgtIDs, TensorMemory, TensorSrcIDs}
	if s.enc, err = ort.NewDynamicAdvancedSessionWithONNXData(m.ck.encoder, []string{TensorSrcIDs}, m.encOut, so); err != nil {
		return fmt.Errorf("%s: %w", EncoderFile, err)
	}
	if s.step, err = ort.NewDynamicAdvancedSessionWithONNXData(m.ck.decoder, decIn, []string{TensorLogits}, so); err != nil {
		return fmt.Errorf("%s: %w", DecoderFile, err)
	}
	if s.full, err = ort.NewDynamicAdvancedSessionWithONNXData(m.ck.decoder, decIn, m.fullOut, so); err != nil {
		return fmt.Errorf("%s: %w", DecoderFile, err)
	}
	return nil
}

// open2 opens contract 2's four sessions in parallel (each takes a tenth
// of a second to build): the encoder, decoder_model.onnx twice (first step
// with the cache outputs; teacher-forced passes without) and the decoder
// with past.
func (m *Model) open2(so *ort.SessionOptions, set *sessions) error {
	L := m.io.cache.layers
	decIn := []string{TensorInputIDs, TensorEncoderMask, TensorEncoderHidden}
	firstOut := append(append([]string{TensorLogits}, cacheNames(PresentName, L, cacheParts...)...), m.attnOut...)
	pastIn := append([]string{TensorInputIDs, TensorEncoderMask}, cacheNames(PastName, L, cacheParts...)...)
	pastOut := append(append([]string{TensorLogits}, cacheNames(PresentName, L, "decoder")...), m.attnOut...)
	sessions := []struct {
		s       **ort.DynamicAdvancedSession
		file    string
		data    []byte
		in, out []string
	}{
		{&set.enc, EncoderModelFile, m.ck.encoder, []string{TensorInputIDs, TensorAttentionMask}, m.encOut},
		{&set.full, DecoderModelFile, m.ck.decoder, decIn, m.fullOut},
		{&set.first, DecoderModelFile, m.ck.decoder, decIn, firstOut},
		{&set.past, DecoderWithPastFile, m.ck.past, pastIn, pastOut},
	}
	errs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if *s.s, err = ort.NewDynamicAdvancedSessionWithONNXData(s.data, s.in, s.out, so); err != nil {
				errs[i] = fmt.Errorf("%s: %w", s.file, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// share makes the handles of Workers, the wide ones (Parallelism.Wide)
// right after the model itself. The Go side of decoding (log-softmax over
// the vocabulary) splits its rows over the threads a worker has.
func (m *Model) share() {
	m.rowProcs = max(1, runtime.GOMAXPROCS(0)/m.par.Workers)
	m.intraOp = m.par.IntraOp
	m.handles = []*Model{m}
	for i := range m.par.Workers - 1 {
		h := m.handle()
		if i < m.par.Wide {
			h.sessions, h.intraOp = *m.wide, m.par.WideIntraOp
			h.rowProcs = max(1, m.rowProcs*m.par.WideIntraOp/m.par.IntraOp)
		}
		m.handles = append(m.handles, h)
	}
}

// handle is another handle on m's sessions, with buffers of its own.
func (m *Model) handle() *Model {
	return &Model{ck: m.ck, tok: m.tok, io: m.io, provider: m.provider, par: m.par, intraOp: m.intraOp, rowProcs: m.rowProcs,
		sessions: m.sessions, encOut: m.encOut, fullOut: m.fullOut, attnOut: m.attnOut}
}

// Workers returns Parallelism().Workers handles on the model's sessions,
// the model itself first. Each handle decodes one batch at a time with its
// own buffers; different handles run at the same time. Closing the model
// closes them all; closing another handle does nothing.
func (m *Model) Workers() []*Model { return m.handles }

// IntraOp is how many threads this handle's ONNX Runtime calls use.
func (m *Model) IntraOp() int { return m.intraOp }

// Parallelism is how the model's decoding spreads over the CPU.
func (m *Model) Parallelism() Parallelism { return m.par }

// Provider is the execution provider the sessions run on: "cuda" or "cpu".
func (m *Model) Provider() string { return m.provider }

// Checkpoint is the checkpoint the model was loaded from.
func (m *Model) Checkpoint() *Checkpoint { return m.ck }

// Close releases the sessions. Closing twice is harmless.
func (m *Model) Close() error {
	if !m.owner {
		return nil
	}
	for _, h := range m.handles {
		if h == m {
			continue
		}
		h.mu.Lock() // wait for a call in progress
		h.sessions = sessions{}
		h.mu.Unlock()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.sessions.destroy()
	if m.wide != nil {
		err = errors.Join(err, m.wide.destroy())
		m.wide = nil
	}
	return err
}

// tensors collects Go buffers wrapped as tensors for one session run:
// ONNX Runtime reads inputs from them and writes outputs into them in
// place, with no copy. The first wrapping error is kept for run.
type tensors struct {
	vals []ort.Value
	err  error
}

func add[T ort.TensorData](ts *tensors, data []T, shape ...int) {
	s := make(ort.Shape, len(shape))
	for i, d := range shape {
		s[i] = int64(d)
	}
	t, err := ort.NewTensor(s, data)
	if err != nil {
		if ts.err == nil {
			ts.err = fmt.Errorf("tensor of shape %v: %w", s, err)
		}
		return
	}
	ts.vals = append(ts.vals, t)
}

func (ts *tensors) destroy() {
	for _, v := range ts.vals {
		v.Destroy()
	}
}

// run runs a session and releases the tensor wrappers (not the buffers).
func run(s *ort.DynamicAdvancedSession, in, out *tensors) error {
	defer in.destroy()
	defer out.destroy()
	if in.err != nil {
		return in.err
	}
	if out.err != nil {
		return out.err
	}
	return s.Run(in.vals, out.vals)
}
