import json
import os
import tempfile
import unittest

import torch

import data
import export_onnx
import train

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "..", "testdata", "checkpoints", "tiny", "tokenizer.model")

PAIRS = [("나는 학교에 간다.", "I go to school."), ("안녕.", "Hi."), ("고마워요.", "Thank you."),
         ("오늘 날씨가 좋네요.", "The weather is nice today."), ("가.", "Go."), ("뛰어!", "Run!")] * 4


class BatchingTest(unittest.TestCase):
    def test_batches_cover_everything_within_budget(self):
        examples = [([5] * n + [3], [6] * m + [3]) for n, m in [(3, 4), (10, 2), (1, 1), (7, 9), (2, 20), (4, 4)]]
        batches = train.make_batches(examples, max_tokens=24)
        self.assertEqual(sorted(i for b in batches for i in b), list(range(len(examples))))
        for b in batches:
            longest = max(max(len(examples[i][0]), len(examples[i][1]) + 1) for i in b)
            self.assertTrue(len(b) == 1 or longest * len(b) <= 24, b)
        lengths = [len(examples[i][0]) for b in batches for i in b]
        self.assertEqual(lengths, sorted(lengths))

    def test_collate_follows_token_conventions(self):
        examples = [([5, 6, 3], [7, 8, 9, 3]), ([5, 3], [7, 3])]
        src, dec_in, gold = train.collate(examples, [0, 1], "cpu")
        self.assertEqual(src.tolist(), [[5, 6, 3], [5, 3, 0]])
        self.assertEqual(dec_in.tolist(), [[2, 7, 8, 9], [2, 7, 0, 0]])
        self.assertEqual(gold.tolist(), [[7, 8, 9, 3], [7, 3, 0, 0]])

    def test_schedule(self):
        self.assertAlmostEqual(train.inverse_sqrt(50, 100), 0.5)
        self.assertAlmostEqual(train.inverse_sqrt(100, 100), 1.0)
        self.assertAlmostEqual(train.inverse_sqrt(400, 100), 0.5)


class TrainingRunTest(unittest.TestCase):
    def run_training(self, out):
        train.main(["--data", self.data, "--tokenizer", TOKENIZER, "--out", out, "--epochs", "3",
                    "--save-epochs", "1", "--d-model", "16", "--ffn", "32", "--layers", "2",
                    "--max-tokens", "64", "--warmup", "4", "--lr", "3e-3", "--device", "cpu", "--seed", "7"])
        with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
            return json.load(f)

    def test_seeded_runs_repeat_and_learn(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.data = os.path.join(tmp, "data")
            os.makedirs(self.data)
            data.write_tsv(os.path.join(self.data, "train.tsv"), PAIRS)
            data.write_tsv(os.path.join(self.data, "valid.tsv"), PAIRS[:6])
            a = self.run_training(os.path.join(tmp, "a"))
            b = self.run_training(os.path.join(tmp, "b"))
            self.assertEqual([e["train_loss"] for e in a["epochs"]], [e["train_loss"] for e in b["epochs"]])
            self.assertLess(a["epochs"][-1]["train_loss"], a["epochs"][0]["train_loss"])
            self.assertEqual(sorted(f for f in os.listdir(os.path.join(tmp, "a")) if f.endswith(".pt")),
                             ["epoch-001.pt", "epoch-003.pt"])
            model, state = export_onnx.load_state(os.path.join(tmp, "a", "epoch-003.pt"))
            self.assertEqual((state["epoch"], state["step"], state["seed"]), (3, a["epochs"][-1]["step"], 7))
            self.assertEqual(state["valid_loss"], a["epochs"][-1]["valid_loss"])
            self.assertEqual((model.cfg.d_model, model.cfg.enc_layers, model.cfg.heads), (16, 2, 8))
            self.assertFalse(model.training)
            b_model, _ = export_onnx.load_state(os.path.join(tmp, "b", "epoch-003.pt"))
            for (k, v), w in zip(model.state_dict().items(), b_model.state_dict().values()):
                self.assertTrue(torch.equal(v, w), k)


if __name__ == "__main__":
    unittest.main()
