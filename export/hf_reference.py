"""What the model's own transformers code gives, for attnaudit's Go tests
(inference/hf_test.go): reads a JSON request on stdin, writes JSON on stdout.

    {"model_dir": D, "src_lang": "ko", "tgt_lang": "en",
     "lines": [...],              each tokenised as a source and as a target
     "generate": [...], "max_len": N}   greedy search with generate()

gives {"source": [[ids]], "target": [[ids]], "decoded": [text],
"greedy": [[ids]]}: the tokenizer's ids with its special tokens, the target
ids after the language token decoded with skip_special_tokens, and generate()'s output without the
decoder start (max_length N + 1: N tokens, the last forced to EOS).
"""

import json
import sys

import torch

import export_hf


def main():
    req = json.load(sys.stdin)
    family = export_hf.detect_family(req["model_dir"])
    tok = export_hf.load_tokenizer(req["model_dir"], family, req.get("src_lang", "ko"), req.get("tgt_lang", "en"))
    lines = req.get("lines", [])
    out = {"source": [tok(s).input_ids for s in lines],
           "target": [tok(text_target=s).input_ids for s in lines]}
    # Decoded without the target-language prefix, as attnaudit shows a
    # hypothesis (the tag is not part of the translation).
    prefix = len(tok(text_target="안녕").input_ids) - len(tok(text_target="안녕", add_special_tokens=False).input_ids) - 1
    out["decoded"] = [tok.decode(ids[prefix:], skip_special_tokens=True) for ids in out["target"]]
    if req.get("generate"):
        model = export_hf.load_model(req["model_dir"])  # also makes generate() work on Debian's torch
        forced = None
        if family != "marian":
            forced = tok.convert_tokens_to_ids(export_hf._lang_token(family, export_hf.lang_code(family, req.get("tgt_lang", "en"))))
        greedy = []
        for s in req["generate"]:
            batch = tok([s], return_tensors="pt")
            with torch.no_grad():
                ids = model.generate(**batch, num_beams=1, do_sample=False, max_length=req["max_len"] + 1,
                                     forced_bos_token_id=forced, repetition_penalty=1.0, length_penalty=1.0,
                                     no_repeat_ngram_size=0, min_length=0)
            greedy.append(ids[0, 1:].tolist())
        out["greedy"] = greedy
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
