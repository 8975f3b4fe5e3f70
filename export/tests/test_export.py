import json
import os
import tempfile
import unittest

import onnx
import sentencepiece as spm
import torch

import export_onnx
from model import ModelConfig, Transformer

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "..", "testdata", "checkpoints", "tiny")
TOKENIZER = os.path.join(TINY, "tokenizer.model")

REQUIRED_META = ("contract", "name", "epoch", "step", "bos_id", "eos_id", "pad_id", "src_lang", "tgt_lang",
                 "train_loss", "valid_loss", "d_model", "layers", "heads", "vocab_size", "max_positions")


def dims(value_info):
    """[int or symbolic name] of an ONNX graph input/output."""
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def tensor(doc):
    return torch.tensor(doc["data"]).reshape(doc["shape"])


def check_attention(test, name, a, q_ids, k_ids, causal):
    """Rows of real queries sum to 1; padded (and future) keys get 0."""
    layers, batch, heads, q_len, k_len = a.shape
    for b in range(batch):
        q_real = int((q_ids[b] != 0).sum())
        k_real = int((k_ids[b] != 0).sum())
        rows = a[:, b, :, :q_real]
        torch.testing.assert_close(rows.sum(-1), torch.ones(rows.shape[:-1]), atol=1e-5, rtol=0,
                                   msg=f"{name} rows of example {b}")
        test.assertTrue(torch.all(a[:, b, :, :, k_real:].abs() < 1e-6), f"{name}: padded keys of example {b}")
        if causal:
            future = torch.triu(torch.ones(q_len, k_len, dtype=torch.bool), diagonal=1)
            test.assertTrue(torch.all(a[:, b][..., future].abs() < 1e-6), f"{name}: future keys")


def _export_random(cls, seed, extra=None, contract=2):
    """Exports a small random model into a temporary folder and keeps the
    model, the folder and its parity fixture on the test class."""
    torch.manual_seed(seed)
    vocab = spm.SentencePieceProcessor(model_file=TOKENIZER).get_piece_size()
    cls.model = Transformer(ModelConfig(vocab_size=vocab, d_model=16, ffn=32, enc_layers=2, dec_layers=3))
    cls.model.eval()
    cls.tmp = tempfile.TemporaryDirectory()
    cls.dir = os.path.join(cls.tmp.name, "ckpt")
    meta = export_onnx.checkpoint_meta(cls.model.cfg, "round-trip", 4, 400, 3.5, 3.25, extra, contract=contract)
    export_onnx.export_checkpoint(cls.model, TOKENIZER, cls.dir, meta)
    with open(os.path.join(cls.dir, "parity.json"), encoding="utf-8") as f:
        cls.parity = json.load(f)


class ExportRoundTrip(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        _export_random(cls, seed=3, extra={"seed": 3}, contract=1)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_files(self):
        self.assertEqual(sorted(os.listdir(self.dir)),
                         ["checkpoint.json", "decoder.onnx", "encoder.onnx", "parity.json", "tokenizer.model"])
        with open(TOKENIZER, "rb") as a, open(os.path.join(self.dir, "tokenizer.model"), "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_checkpoint_json(self):
        with open(os.path.join(self.dir, "checkpoint.json"), encoding="utf-8") as f:
            meta = json.load(f)
        for key in REQUIRED_META:
            self.assertIn(key, meta)
        self.assertEqual(meta["contract"], 1)
        self.assertEqual((meta["bos_id"], meta["eos_id"], meta["pad_id"]), (2, 3, 0))
        self.assertEqual((meta["src_lang"], meta["tgt_lang"]), ("ko", "en"))
        self.assertEqual((meta["epoch"], meta["step"], meta["train_loss"], meta["valid_loss"]), (4, 400, 3.5, 3.25))
        self.assertEqual((meta["d_model"], meta["heads"], meta["enc_layers"], meta["dec_layers"]), (16, 8, 2, 3))
        self.assertEqual((meta["vocab_size"], meta["max_positions"]), (4000, 512))

    def test_encoder_graph(self):
        g = onnx.load(os.path.join(self.dir, "encoder.onnx"))
        onnx.checker.check_model(g)
        self.assertEqual([i.name for i in g.graph.input], ["src_ids"])
        self.assertEqual([o.name for o in g.graph.output], ["memory", "encoder_self_attn"])
        src, = g.graph.input
        memory, attn = g.graph.output
        self.assertEqual(src.type.tensor_type.elem_type, onnx.TensorProto.INT64)
        self.assertEqual(memory.type.tensor_type.elem_type, onnx.TensorProto.FLOAT)
        self.assertEqual(dims(src), ["batch", "src_len"])
        self.assertEqual(dims(memory), ["batch", "src_len", 16])
        self.assertEqual(dims(attn), [2, "batch", 8, "src_len", "src_len"])

    def test_decoder_graph(self):
        g = onnx.load(os.path.join(self.dir, "decoder.onnx"))
        onnx.checker.check_model(g)
        self.assertEqual([i.name for i in g.graph.input], ["tgt_ids", "memory", "src_ids"])
        self.assertEqual([o.name for o in g.graph.output], ["logits", "decoder_self_attn", "cross_attn"])
        tgt, memory, src = g.graph.input
        logits, self_attn, cross = g.graph.output
        self.assertEqual(dims(tgt), ["batch", "tgt_len"])
        self.assertEqual(dims(memory), ["batch", "src_len", 16])
        self.assertEqual(dims(src), ["batch", "src_len"])
        self.assertEqual(dims(logits), ["batch", "tgt_len", 4000])
        self.assertEqual(dims(self_attn), [3, "batch", 8, "tgt_len", "tgt_len"])
        self.assertEqual(dims(cross), [3, "batch", 8, "tgt_len", "src_len"])
        for o in g.graph.output:
            self.assertEqual(o.type.tensor_type.elem_type, onnx.TensorProto.FLOAT, o.name)

    def test_embedding_stored_once_per_graph(self):
        for name in ("encoder.onnx", "decoder.onnx"):
            g = onnx.load(os.path.join(self.dir, name))
            big = [t.name for t in g.graph.initializer if 4000 in t.dims]
            self.assertEqual(len(big), 1, f"{name}: {big}")

    def test_parity_matches_model(self):
        src, tgt = tensor(self.parity["inputs"]["src_ids"]), tensor(self.parity["inputs"]["tgt_ids"])
        want = export_onnx.run_pytorch(self.model, src, tgt)
        self.assertEqual(sorted(self.parity["outputs"]), sorted(want))
        for name, t in want.items():
            torch.testing.assert_close(tensor(self.parity["outputs"][name]), t, atol=1e-6, rtol=0, msg=name)
        self.assertFalse(any(getattr(m, "store_attention", False) for m in self.model.modules()),
                         "export left attention capture on")


class ExportContract2(unittest.TestCase):
    """Contract 2: Optimum's three graphs, names and cache shapes; PyTorch with its cache."""

    @classmethod
    def setUpClass(cls):
        _export_random(cls, seed=4)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def graph(self, name):
        g = onnx.load(os.path.join(self.dir, name))
        onnx.checker.check_model(g)
        return g.graph

    def test_files_and_meta(self):
        self.assertEqual(sorted(os.listdir(self.dir)),
                         ["checkpoint.json", "decoder_model.onnx", "decoder_with_past_model.onnx",
                          "encoder_model.onnx", "parity.json", "tokenizer.model"])
        with open(os.path.join(self.dir, "checkpoint.json"), encoding="utf-8") as f:
            meta = json.load(f)
        for key in REQUIRED_META:
            self.assertIn(key, meta)
        self.assertEqual(meta["contract"], 2)
        self.assertEqual(meta["decoder_start_token_id"], meta["bos_id"])
        self.assertIsNone(meta["forced_bos_token_id"])

    def test_encoder(self):
        g = self.graph("encoder_model.onnx")
        self.assertEqual([i.name for i in g.input], ["input_ids", "attention_mask"])
        self.assertEqual([o.name for o in g.output],
                         ["last_hidden_state", "encoder_self_attn", "encoder_value_norms", "cross_value_norms"])
        self.assertEqual(dims(g.output[0]), ["batch_size", "encoder_sequence_length", 16])
        self.assertEqual(dims(g.output[1]), [2, "batch_size", 8, "encoder_sequence_length", "encoder_sequence_length"])
        self.assertEqual(dims(g.output[2]), [2, "batch_size", 8, "encoder_sequence_length"])
        self.assertEqual(dims(g.output[3]), [3, "batch_size", 8, "encoder_sequence_length"])

    def test_value_norms_by_hand(self):
        """The exported norms are ||(x_j W_V + b_V)_h W_O,h||, recomputed here
        head by head and key by key from the parameters, with the layer's
        own input x (the pre-norm LayerNorm of the residual stream for
        encoder self-attention, the encoder output for cross-attention)."""
        src = tensor(self.parity["inputs"]["input_ids"])
        out = export_onnx.run_pytorch_cached(self.model, src, tensor(self.parity["inputs"]["decoder_input_ids"]))
        m, H = self.model, self.model.cfg.heads
        dh = m.cfg.d_model // H

        def naive(attn, x):
            w_v, b_v, w_o = attn.v.weight, attn.v.bias, attn.out.weight
            got = torch.zeros(x.shape[0], H, x.shape[1])
            for b in range(x.shape[0]):
                for j in range(x.shape[1]):
                    v = x[b, j] @ w_v.t() + b_v
                    for h in range(H):
                        f = sum(v[h * dh + k] * w_o[:, h * dh + k] for k in range(dh))
                        got[b, h, j] = f.norm()
            return got

        with torch.no_grad():
            mask = (src == 0).unsqueeze(1).unsqueeze(2)
            x = m._embed(src)
            for i, layer in enumerate(m.encoder):
                want = naive(layer.self_attn, layer.norm1(x))
                torch.testing.assert_close(out["encoder_value_norms"][i], want, atol=1e-5, rtol=1e-5, msg=f"encoder {i}")
                x = layer(x, mask)
            memory = m.enc_norm(x)
            for i, layer in enumerate(m.decoder):
                torch.testing.assert_close(out["cross_value_norms"][i], naive(layer.cross_attn, memory),
                                           atol=1e-5, rtol=1e-5, msg=f"cross {i}")

    def test_decoder(self):
        g = self.graph("decoder_model.onnx")
        self.assertEqual([i.name for i in g.input], ["input_ids", "encoder_attention_mask", "encoder_hidden_states"])
        want = ["logits"] + export_onnx.cache_names("present", 3) + ["decoder_self_attn", "cross_attn"]
        self.assertEqual([o.name for o in g.output], want)
        out = {o.name: dims(o) for o in g.output}
        self.assertEqual(out["present.2.decoder.value"], ["batch_size", 8, "decoder_sequence_length", 2])
        self.assertEqual(out["present.0.encoder.key"], ["batch_size", 8, "encoder_sequence_length", 2])
        self.assertEqual(out["logits"], ["batch_size", "decoder_sequence_length", 4000])

    def test_decoder_with_past(self):
        g = self.graph("decoder_with_past_model.onnx")
        self.assertEqual([i.name for i in g.input],
                         ["input_ids", "encoder_attention_mask"] + export_onnx.cache_names("past_key_values", 3))
        want = ["logits"] + export_onnx.cache_names("present", 3, ("decoder",)) + ["decoder_self_attn", "cross_attn"]
        self.assertEqual([o.name for o in g.output], want)
        ins = {i.name: dims(i) for i in g.input}
        self.assertEqual(ins["past_key_values.1.decoder.key"], ["batch_size", 8, "past_decoder_sequence_length", 2])
        self.assertEqual(ins["past_key_values.1.encoder.value"], ["batch_size", 8, "encoder_sequence_length", 2])
        out = {o.name: dims(o) for o in g.output}
        self.assertEqual(out["present.1.decoder.key"][1:], [8, "past_decoder_sequence_length + decoder_sequence_length", 2])

    def test_cached_equals_teacher_forced(self):
        """Decoding with the cache gives the teacher-forced pass's logits and attention rows."""
        src, tgt = tensor(self.parity["inputs"]["input_ids"]), tensor(self.parity["inputs"]["decoder_input_ids"])
        full = export_onnx.run_pytorch(self.model, src, tgt)
        cached = export_onnx.run_pytorch_cached(self.model, src, tgt)
        real = tgt != 0
        torch.testing.assert_close(cached["logits"][real], full["logits"][real], atol=1e-5, rtol=0)
        torch.testing.assert_close(cached["last_hidden_state"], full["memory"], atol=0, rtol=0)
        for name in ("decoder_self_attn", "cross_attn"):
            rows = lambda a: a.permute(1, 3, 0, 2, 4)[real]  # noqa: E731
            torch.testing.assert_close(rows(cached[name]), rows(full[name]), atol=1e-6, rtol=0, msg=name)

    def test_parity_is_pytorch_with_cache(self):
        src, tgt = tensor(self.parity["inputs"]["input_ids"]), tensor(self.parity["inputs"]["decoder_input_ids"])
        self.assertEqual(self.parity["contract"], 2)
        torch.testing.assert_close(tensor(self.parity["inputs"]["attention_mask"]), (src != 0).long())
        want = export_onnx.run_pytorch_cached(self.model, src, tgt)
        self.assertEqual(sorted(self.parity["outputs"]), sorted(want))
        for name, t in want.items():
            torch.testing.assert_close(tensor(self.parity["outputs"][name]), t, atol=1e-6, rtol=0, msg=name)

    def test_reshapes_are_constant(self):
        """Head splits and merges reshape to constant shapes (no Shape → Gather → Concat chains)."""
        for name in ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"):
            g = self.graph(name)
            self.assertEqual(export_onnx._constant_reshapes(g), 0, name)
            shapes = [n for n in g.node if n.op_type == "Shape"]
            self.assertLessEqual(len(shapes), 6, f"{name}: {[n.name for n in shapes]}")

    def test_weights_read_back(self):
        """onnx_weights maps every parameter of all three graphs back, bit for bit."""
        from onnx_weights import load_checkpoint
        model, meta, _ = load_checkpoint(self.dir)
        self.assertEqual(meta["contract"], 2)
        want = self.model.state_dict()
        for key, value in model.state_dict().items():
            self.assertTrue(torch.equal(value, want[key]), key)


class Convert(unittest.TestCase):
    """convert.py re-exports the tiny fixture in contract 2 with its weights."""

    def test_tiny_to_contract2_and_back(self):
        import convert
        from onnx_weights import load_checkpoint
        with tempfile.TemporaryDirectory() as tmp:
            c2, c1 = os.path.join(tmp, "c2"), os.path.join(tmp, "c1")
            convert.convert(TINY, c2, 2)
            convert.convert(c2, c1, 1)
            a, meta_a, _ = load_checkpoint(TINY)
            b, meta_b, _ = load_checkpoint(c2)
            c, _, _ = load_checkpoint(c1)
            for key, value in a.state_dict().items():
                self.assertTrue(torch.equal(value, b.state_dict()[key]), key)
                self.assertTrue(torch.equal(value, c.state_dict()[key]), key)
            self.assertEqual(meta_b["contract"], 2)
            self.assertEqual({k: v for k, v in meta_a.items() if k not in convert.REWRITTEN},
                             {k: v for k, v in meta_b.items() if k not in convert.REWRITTEN})
            self.assertFalse(os.path.exists(os.path.join(c1, "decoder_model.onnx")))


class ParityFixture(unittest.TestCase):
    """The committed tiny checkpoint's parity.json agrees with itself and its metadata."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(TINY, "parity.json"), encoding="utf-8") as f:
            cls.parity = json.load(f)
        with open(os.path.join(TINY, "checkpoint.json"), encoding="utf-8") as f:
            cls.meta = json.load(f)
        cls.src = tensor(cls.parity["inputs"]["src_ids"])
        cls.tgt = tensor(cls.parity["inputs"]["tgt_ids"])

    def test_inputs_follow_token_conventions(self):
        sp = spm.SentencePieceProcessor(model_file=TOKENIZER)
        sources, targets = self.parity["sources"], self.parity["targets"]
        self.assertGreaterEqual(len(sources), 2)
        self.assertEqual(len({len(sp.encode(s)) for s in sources}), len(sources), "lengths should differ")
        for b, (s, t) in enumerate(zip(sources, targets)):
            src = [i for i in self.src[b].tolist() if i != 0]
            tgt = [i for i in self.tgt[b].tolist() if i != 0]
            self.assertEqual(src, sp.encode(s) + [self.meta["eos_id"]])
            self.assertEqual(tgt, [self.meta["bos_id"]] + sp.encode(t))
            self.assertTrue(all(i == 0 for i in self.src[b, len(src):]), "source padding on the right")

    def test_shapes_agree_with_metadata(self):
        out = self.parity["outputs"]
        batch, s = self.src.shape
        t = self.tgt.shape[1]
        L, H = self.meta["layers"], self.meta["heads"]
        self.assertEqual(out["memory"]["shape"], [batch, s, self.meta["d_model"]])
        self.assertEqual(out["encoder_self_attn"]["shape"], [L, batch, H, s, s])
        self.assertEqual(out["logits"]["shape"], [batch, t, self.meta["vocab_size"]])
        self.assertEqual(out["decoder_self_attn"]["shape"], [L, batch, H, t, t])
        self.assertEqual(out["cross_attn"]["shape"], [L, batch, H, t, s])
        for name, doc in list(out.items()) + list(self.parity["inputs"].items()):
            n = 1
            for d in doc["shape"]:
                n *= d
            self.assertEqual(len(doc["data"]), n, name)

    def test_attention_is_masked_and_normalised(self):
        out = self.parity["outputs"]
        check_attention(self, "encoder_self_attn", tensor(out["encoder_self_attn"]), self.src, self.src, False)
        check_attention(self, "decoder_self_attn", tensor(out["decoder_self_attn"]), self.tgt, self.tgt, True)
        check_attention(self, "cross_attn", tensor(out["cross_attn"]), self.tgt, self.src, False)

    def test_regenerates_from_seed(self):
        """export_onnx.py --random --seed 0 --d-model 32 --ffn 64 made it; the code still gives it."""
        torch.manual_seed(self.meta["seed"])
        model = Transformer(ModelConfig(vocab_size=self.meta["vocab_size"], d_model=self.meta["d_model"],
                                        ffn=self.meta["ffn"])).eval()
        got = export_onnx.run_pytorch(model, self.src, self.tgt)
        for name, t in got.items():
            torch.testing.assert_close(tensor(self.parity["outputs"][name]), t, atol=1e-4, rtol=0, msg=name)


if __name__ == "__main__":
    unittest.main()
