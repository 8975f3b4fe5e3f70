import unittest

import torch

from model import ModelConfig, Transformer, sinusoidal_positions

PAD = 0


def small_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=50, d_model=16, ffn=32, heads=8, enc_layers=6, dec_layers=6, dropout=0.0)
    cfg.update(kw)
    return Transformer(ModelConfig(**cfg)).eval()


# Two sources (the second padded), two decoder inputs (the second padded).
SRC = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, PAD, PAD]])
TGT = torch.tensor([[2, 11, 12, 13], [2, 14, PAD, PAD]])


class ModelTest(unittest.TestCase):
    def setUp(self):
        self.model = small_model()

    def run_with_attention(self):
        self.model.set_store_attention(True)
        with torch.no_grad():
            logits = self.model(SRC, TGT)
        return logits, self.model.encoder_attention(), self.model.decoder_self_attention(), self.model.cross_attention()

    def test_shapes(self):
        logits, enc, dec, cross = self.run_with_attention()
        self.assertEqual(tuple(logits.shape), (2, 4, 50))
        self.assertEqual(tuple(self.model.encode(SRC).shape), (2, 5, 16))
        self.assertEqual(tuple(enc.shape), (6, 2, 8, 5, 5))
        self.assertEqual(tuple(dec.shape), (6, 2, 8, 4, 4))
        self.assertEqual(tuple(cross.shape), (6, 2, 8, 4, 5))

    def test_layer_and_head_counts(self):
        m = small_model(enc_layers=2, dec_layers=3, heads=4)
        m.set_store_attention(True)
        with torch.no_grad():
            m(SRC, TGT)
        self.assertEqual(tuple(m.encoder_attention().shape), (2, 2, 4, 5, 5))
        self.assertEqual(tuple(m.cross_attention().shape), (3, 2, 4, 4, 5))

    def test_rows_sum_to_one(self):
        for name, a in zip(("encoder", "decoder self", "cross"), self.run_with_attention()[1:]):
            with self.subTest(name):
                torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5, rtol=0)

    def test_masked_keys_are_zero(self):
        _, enc, dec, cross = self.run_with_attention()
        # Padded source keys of the second sentence.
        self.assertTrue(torch.all(enc[:, 1, :, :, 3:] == 0))
        self.assertTrue(torch.all(cross[:, 1, :, :, 3:] == 0))
        self.assertTrue(torch.all(enc[:, 0] > 0))
        # Causal: no query attends to a later step.
        future = torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1)
        self.assertTrue(torch.all(dec[..., future] == 0))
        # Padded target keys of the second sentence, from every query.
        self.assertTrue(torch.all(dec[:, 1, :, :, 2:] == 0))
        # The first step can only see itself.
        self.assertTrue(torch.all(dec[:, :, :, 0, 0] == 1))

    def test_padding_does_not_change_outputs(self):
        with torch.no_grad():
            alone = self.model(SRC[1:, :3], TGT[1:, :2])
            batched = self.model(SRC, TGT)[1:, :2]
        torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)

    def test_store_attention_off_stores_nothing(self):
        logits_on = self.run_with_attention()[0]
        self.model.set_store_attention(False)
        with torch.no_grad():
            logits_off = self.model(SRC, TGT)
        torch.testing.assert_close(logits_off, logits_on, atol=0, rtol=0)
        stored = [m.weights for m in self.model.modules() if hasattr(m, "store_attention")]
        self.assertEqual(len(stored), 6 + 2 * 6)
        self.assertTrue(all(w is None for w in stored))
        with self.assertRaisesRegex(RuntimeError, "set_store_attention"):
            self.model.cross_attention()

    def test_default_is_off(self):
        with torch.no_grad():
            self.model(SRC, TGT)
        with self.assertRaises(RuntimeError):
            self.model.encoder_attention()

    def test_embedding_is_shared_with_output(self):
        self.assertEqual(len([p for p in self.model.parameters() if p.dim() == 2 and p.shape[0] == 50]), 1)

    def test_sinusoidal_positions(self):
        pe = sinusoidal_positions(512, 16)
        self.assertEqual(tuple(pe.shape), (512, 16))
        torch.testing.assert_close(pe[0, 0::2], torch.zeros(8))
        torch.testing.assert_close(pe[0, 1::2], torch.ones(8))
        torch.testing.assert_close(pe[3, 0], torch.sin(torch.tensor(3.0)))

    def test_greedy_stops_at_eos(self):
        out = self.model.greedy(SRC, bos_id=2, eos_id=3, max_len=6)
        self.assertEqual(len(out), 2)
        for ids in out:
            self.assertLessEqual(len(ids), 6)
            self.assertNotIn(3, ids)


if __name__ == "__main__":
    unittest.main()
