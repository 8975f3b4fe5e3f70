"""A checkpoint folder's weights back into export/model.py's Transformer.

Reads the ONNX initializers of either contract (the exporter keeps parameter
names, except the Linear weights that constant folding transposed into
anonymous MatMul initializers and the LayerNorm parameters that deduplication
turned into Identity nodes: both are mapped back through the graph). Every
parameter of the model must be found, with its shape, and every graph must
agree on it; anything unmapped is an error. When the folder has parity.json,
the loaded model must reproduce its outputs. Used by convert.py (re-export in
the other contract, same weights) and bench/torch_infer.py.
"""

import json
import os

import numpy as np
import onnx
from onnx import numpy_helper
import sentencepiece as spm
import torch

from export_onnx import CONTRACT_FILES, run_pytorch, run_pytorch_cached
from model import ModelConfig, Transformer

PREFIX = "model."  # the exporter wraps the model as EncoderGraph.model / DecoderGraph.model


class MappingError(Exception):
    pass


def _module_of(node_name):
    """"/encoder.0/self_attn/q/MatMul" (or "/model/encoder.0/...") -> "encoder.0.self_attn.q"."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2:
        raise MappingError(f"node {node_name!r} has no module scope: cannot tell which Linear it is "
                           "(export with a torch that records scope names)")
    parts = parts[:-1]
    if parts[0] == PREFIX.rstrip("."):
        parts = parts[1:]
    return ".".join(parts)


def onnx_parameters(path):
    """The model parameters held in one ONNX graph: {state_dict key: numpy array}."""
    graph = onnx.load(path).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    alias = {}  # Identity outputs of initializers -> the initializer
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in arrays:
            alias[node.output[0]] = node.input[0]
    params, used = {}, set()

    def add(key, value, init_name):
        if key in params and not np.array_equal(params[key], value):
            raise MappingError(f"{path}: {key} is given two different values")
        params[key] = value
        used.add(init_name)

    for name, value in arrays.items():
        if name.startswith(PREFIX):
            add(name[len(PREFIX):], value, name)
    for out, name in alias.items():
        if out.startswith(PREFIX):
            add(out[len(PREFIX):], arrays[name], name)
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        inputs = [alias.get(i, i) for i in node.input]
        anon = [k for k, i in enumerate(inputs) if i in arrays and not i.startswith(PREFIX)]
        if not anon:
            continue
        if anon != [1]:
            raise MappingError(f"{path}: node {node.name} has weight initializers at inputs {anon}, want only B")
        w = arrays[inputs[1]]
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        # torch Linear keeps weight [out, in]; MatMul(x, W) holds W = weight.T.
        add(_module_of(node.name) + ".weight", w if trans_b else w.T, inputs[1])
    unused = sorted(set(arrays) - used)
    if unused:
        raise MappingError(f"{path}: initializers mapped to no parameter: {', '.join(unused[:10])}"
                           + (" …" if len(unused) > 10 else ""))
    return params


def model_config(meta):
    want = ("vocab_size", "d_model", "ffn", "heads", "enc_layers", "dec_layers")
    missing = [k for k in want if k not in meta]
    if missing:
        raise MappingError(f"checkpoint.json lacks {', '.join(missing)}")
    d = {k: meta[k] for k in want}
    d["max_positions"] = meta.get("max_positions", 512)
    d["pad_id"] = meta["pad_id"]
    d["dropout"] = 0.0
    return ModelConfig.from_dict(d)


def load_checkpoint(folder, device="cpu", verify=True):
    """-> (model in eval mode on device, checkpoint.json dict, SentencePiece processor)."""
    with open(os.path.join(folder, "checkpoint.json"), encoding="utf-8") as f:
        meta = json.load(f)
    contract = meta.get("contract")
    if contract not in CONTRACT_FILES:
        raise MappingError(f"{folder}: checkpoint contract {contract!r}, want one of {sorted(CONTRACT_FILES)}")
    model = Transformer(model_config(meta))
    found, source = {}, {}
    for name in CONTRACT_FILES[contract]:
        for key, value in onnx_parameters(os.path.join(folder, name)).items():
            if key in found and not np.array_equal(found[key], value):
                raise MappingError(f"{key} differs between {source[key]} and {name}")
            found[key], source[key] = value, name
    state = model.state_dict()
    missing = sorted(state.keys() - found.keys())
    extra = sorted(found.keys() - state.keys())
    if missing or extra:
        raise MappingError(f"{folder}: parameters not in the ONNX files: {missing}; "
                           f"ONNX parameters the model lacks: {extra}")
    bad = [f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)}" for k, v in state.items()
           if tuple(found[k].shape) != tuple(v.shape)]
    if bad:
        raise MappingError(f"{folder}: shape mismatches: {'; '.join(bad)}")
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=v.dtype, copy=True)) for k, v in found.items()}, strict=True)
    model.eval()
    if verify and os.path.exists(os.path.join(folder, "parity.json")):
        check_parity(model, os.path.join(folder, "parity.json"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
    return model.to(device), meta, sp


@torch.no_grad()
def check_parity(model, path):
    """The loaded model must reproduce the exporter's PyTorch outputs."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)

    def tensor(t, dtype):
        return torch.tensor(t["data"], dtype=dtype).reshape(t["shape"])

    if doc.get("contract", 1) == 1:
        src = tensor(doc["inputs"]["src_ids"], torch.long)
        got = run_pytorch(model, src, tensor(doc["inputs"]["tgt_ids"], torch.long))
    else:
        src = tensor(doc["inputs"]["input_ids"], torch.long)
        got = run_pytorch_cached(model, src, tensor(doc["inputs"]["decoder_input_ids"], torch.long),
                                 model.cfg.pad_id)
    atol = float(doc.get("atol", 1e-4))
    for name, want in doc["outputs"].items():
        diff = (got[name] - tensor(want, torch.float32)).abs().max().item()
        if diff > atol:
            raise MappingError(f"{path}: {name} differs from the exporter's by {diff:.3g} (atol {atol})")
