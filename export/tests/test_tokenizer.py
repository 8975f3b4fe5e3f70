import os
import random
import tempfile
import unittest

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

import tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED = os.path.join(HERE, "..", "..", "testdata", "checkpoints", "tiny", "tokenizer.model")


def synthetic_pairs(n=600):
    rng = random.Random(0)
    syllables = [chr(0xAC00 + i) for i in range(0, 11172, 211)]
    words = ["the", "cat", "school", "go", "morning", "news", "north", "korea", "said"]
    pairs = []
    for _ in range(n):
        ko = " ".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 6)))
        en = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8))).capitalize() + "."
        pairs.append((ko, en))
    return pairs


def proto(path):
    m = sentencepiece_model_pb2.ModelProto()
    with open(path, "rb") as f:
        m.ParseFromString(f.read())
    return m


class TokenizerTest(unittest.TestCase):
    def check_settings(self, path):
        m = proto(path)
        t, n = m.trainer_spec, m.normalizer_spec
        self.assertEqual(t.model_type, sentencepiece_model_pb2.TrainerSpec.BPE)
        self.assertEqual(n.name, "identity")
        self.assertFalse(n.add_dummy_prefix)
        self.assertFalse(n.remove_extra_whitespaces)
        self.assertTrue(t.byte_fallback)
        self.assertEqual((t.pad_id, t.unk_id, t.bos_id, t.eos_id), (0, 1, 2, 3))
        sp = spm.SentencePieceProcessor(model_file=path)
        self.assertEqual((sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()), (0, 1, 2, 3))
        # Identity normalisation keeps runs of spaces; byte fallback covers unseen characters.
        self.assertEqual(sp.decode(sp.encode("a  b")), "a  b")
        self.assertEqual(sp.decode(sp.encode("☃")), "☃")
        return m

    def test_trained_model_settings_and_determinism(self):
        pairs = synthetic_pairs()
        with tempfile.TemporaryDirectory() as tmp:
            a, b = os.path.join(tmp, "a.model"), os.path.join(tmp, "b.model")
            tokenizer.train_tokenizer(pairs, a, vocab_size=450)
            tokenizer.train_tokenizer(pairs, b, vocab_size=450)
            m = self.check_settings(a)
            self.assertEqual(len(m.pieces), 450)
            self.assertEqual(m.trainer_spec.input[0], "text.txt", "no temporary path in the model")
            with open(a, "rb") as fa, open(b, "rb") as fb:
                self.assertEqual(fa.read(), fb.read())

    def test_shipped_tokenizer(self):
        m = self.check_settings(SHIPPED)
        self.assertEqual(len(m.pieces), 4000)
        self.assertAlmostEqual(m.trainer_spec.character_coverage, 0.9995, places=6)
        sp = spm.SentencePieceProcessor(model_file=SHIPPED)
        # No dummy prefix: a sentence's first piece has no leading ▁.
        self.assertFalse(sp.encode("I go to school.", out_type=str)[0].startswith("\u2581"))


if __name__ == "__main__":
    unittest.main()
