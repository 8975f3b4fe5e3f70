import os
import tempfile
import unittest

import data


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def fake_corpus(root, english):
    """A data folder in the real layout; every parallel corpus uses `english`."""
    write(os.path.join(root, "tatoeba", "kor.txt"),
          "Go.\t가.\tCC-BY 2.0 (France) Attribution: x\nHi.\t안녕.\tCC-BY 2.0 (France) Attribution: y\n")
    n = len(english)
    en = "\n".join(english) + "\n"
    for folder, ko_name, en_name in data.PARALLEL:
        ko = "\r\n".join(f"{ko_name} 한국어 {i}" for i in range(n)) + "\r\n"
        write(os.path.join(root, folder, ko_name), ko)
        write(os.path.join(root, folder, en_name), en)


class SplitTest(unittest.TestCase):
    def test_normalise_english(self):
        self.assertEqual(data.normalise_english("  The  Cat\tSat. "), "the cat sat.")
        self.assertEqual(data.normalise_english("ＡＢＣ"), "abc")

    def test_split_is_by_normalised_english(self):
        self.assertEqual(data.split_of("The cat sat."), data.split_of("the  cat sat. "))

    def test_proportions(self):
        counts = {s: 0 for s in data.SPLITS}
        for i in range(20000):
            counts[data.split_of(f"sentence number {i}")] += 1
        self.assertAlmostEqual(counts["train"] / 20000, 0.90, delta=0.01)
        self.assertAlmostEqual(counts["valid"] / 20000, 0.05, delta=0.01)
        self.assertAlmostEqual(counts["test"] / 20000, 0.05, delta=0.01)

    def test_split_is_stable(self):
        # Fixed by sha256; a change here would reshuffle the shipped model's splits.
        got = [data.split_of(f"sentence number {i}") for i in range(40)]
        self.assertEqual(got, [data.split_of(f"sentence number {i}") for i in range(40)])
        self.assertEqual(data.split_of("Hi."), "train")

    def test_variants_share_a_split_and_lines_are_cleaned(self):
        english = [f"English sentence {i}." for i in range(300)]
        with tempfile.TemporaryDirectory() as root:
            fake_corpus(root, english)
            splits = data.split_pairs(root)
            where = {}
            for name, pairs in splits.items():
                for ko, en in pairs:
                    self.assertNotIn("\r", ko)
                    self.assertNotIn("\t", ko + en)
                    where.setdefault(en, set()).add(name)
            self.assertTrue(all(len(s) == 1 for s in where.values()))
            self.assertEqual(set(where), set(english) | {"Go.", "Hi."})
            self.assertEqual(sum(len(p) for p in splits.values()), 2 + len(english) * len(data.PARALLEL))
            self.assertTrue(all(splits[s] for s in data.SPLITS))

    def test_tsv_round_trip(self):
        pairs = [("가.", "Go."), ("안녕 하세요", "Hello  there")]
        with tempfile.TemporaryDirectory() as root:
            path = os.path.join(root, "x.tsv")
            data.write_tsv(path, pairs)
            self.assertEqual(data.read_tsv(path), pairs)

    def test_mismatched_line_counts_fail(self):
        with tempfile.TemporaryDirectory() as root:
            fake_corpus(root, ["One.", "Two."])
            folder, ko_name, _ = data.PARALLEL[0]
            write(os.path.join(root, folder, ko_name), "하나\n")
            with self.assertRaisesRegex(ValueError, ko_name):
                data.split_pairs(root)


if __name__ == "__main__":
    unittest.main()
