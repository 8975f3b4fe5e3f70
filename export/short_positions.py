"""A copy of a checkpoint whose encoder fails inside ONNX Runtime for large
batches: a test fixture for errors raised mid-run (cmd/attnaudit tests).

The encoder graph gains a zero "position table" of --tokens rows added to
the token embeddings flattened to [batch × source length, d_model], as a
learned table too short for the input would be. Where batch × length is at
most --tokens the sum changes nothing (the outputs are the original's,
bit for bit); beyond it ONNX Runtime fails the Add ("Attempting to
broadcast an axis by a dimension other than 1"). checkpoint.json is kept,
so the checkpoint still claims its full max_positions, and a batch of one
long sentence runs where a batch of several fails.

    python3 short_positions.py --checkpoint ../testdata/checkpoints/tiny --tokens 40 --out DIR
"""
import argparse
import json
import os
import shutil

import numpy as np
import onnx
from onnx import helper, numpy_helper


def break_encoder(model, tokens):
    g = model.graph
    ids = g.input[0].name  # src_ids (contract 1) or input_ids (contract 2)
    embed = next(n for n in g.node if n.op_type == "Gather" and len(n.input) == 2 and n.input[1] == ids)
    table = next(i for i in g.initializer if i.name == embed.input[0])
    d_model = table.dims[1]
    out = embed.output[0]
    new = "/positions/output"
    for n in g.node:  # every reader of the embeddings reads the sum instead
        for k, name in enumerate(n.input):
            if name == out:
                n.input[k] = new
    g.initializer.extend([
        numpy_helper.from_array(np.zeros((tokens, d_model), np.float32), "/positions/table"),
        numpy_helper.from_array(np.array([0], np.int64), "/positions/zero"),
        numpy_helper.from_array(np.array([-1, d_model], np.int64), "/positions/flat_shape"),
    ])
    nodes = [
        helper.make_node("Shape", [ids], ["/positions/ids_shape"], name="/positions/Shape"),
        helper.make_node("ReduceProd", ["/positions/ids_shape"], ["/positions/count"], keepdims=1, name="/positions/ReduceProd"),
        helper.make_node("Slice", ["/positions/table", "/positions/zero", "/positions/count", "/positions/zero"],
                         ["/positions/rows"], name="/positions/Slice"),
        helper.make_node("Shape", [out], ["/positions/embed_shape"], name="/positions/Shape_1"),
        helper.make_node("Reshape", [out, "/positions/flat_shape"], ["/positions/flat"], name="/positions/Reshape"),
        helper.make_node("Add", ["/positions/flat", "/positions/rows"], ["/positions/sum"], name="/positions/Add"),
        helper.make_node("Reshape", ["/positions/sum", "/positions/embed_shape"], [new], name="/positions/Reshape_1"),
    ]
    at = list(g.node).index(embed) + 1
    for k, n in enumerate(nodes):
        g.node.insert(at + k, n)
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="checkpoint folder to copy (contract 1 or 2)")
    ap.add_argument("--tokens", type=int, required=True, help="batch × source length beyond which the encoder fails")
    ap.add_argument("--out", required=True, help="new checkpoint folder")
    a = ap.parse_args()
    shutil.copytree(a.checkpoint, a.out, dirs_exist_ok=True)
    with open(os.path.join(a.out, "checkpoint.json")) as f:
        contract = json.load(f).get("contract", 1)
    name = "encoder.onnx" if contract == 1 else "encoder_model.onnx"
    path = os.path.join(a.out, name)
    onnx.save(break_encoder(onnx.load(path), a.tokens), path)
    print(path)


if __name__ == "__main__":
    main()
