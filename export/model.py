"""The reference model: a pre-norm encoder-decoder Transformer for Korean->English.

Token conventions (DEVELOPERS.md): the source is SentencePiece pieces then EOS,
right-padded with pad_id; the decoder input is BOS then the target pieces, and
its output at step t predicts target token t.

Attention capture: ``model.set_store_attention(True)`` makes every attention
module keep its post-softmax weights, per head, from its last forward pass
(``encoder_attention()``, ``decoder_self_attention()``, ``cross_attention()``
stack them as [layers, batch, heads, q_len, k_len]). When it is off (the
default) nothing is kept and the forward pass is the same computation.

Written to run on torch 1.13 (Debian, CPU; used for ONNX export) and torch 2.x.
"""

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

# Additive mask value: large enough that exp() underflows to exactly 0, finite
# so that no row can become NaN.
MASK_VALUE = -1e9


@dataclass
class ModelConfig:
    vocab_size: int
    d_model: int = 96
    ffn: int = 320
    heads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    max_positions: int = 512
    dropout: float = 0.1
    pad_id: int = 0

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def sinusoidal_positions(length, d_model, device=None):
    """Vaswani et al. (2017) sinusoids for positions 0..length-1: [length, d_model].

    Computed on the fly so an exported graph carries no position table.
    """
    pos = torch.arange(length, device=device).to(torch.float32).unsqueeze(1)
    idx = torch.arange(0, d_model, 2, device=device).to(torch.float32)
    freq = torch.exp(idx * (-math.log(10000.0) / d_model))
    angles = pos * freq
    pe = torch.stack([torch.sin(angles), torch.cos(angles)], dim=2)
    return pe.reshape(length, -1)[:, :d_model]


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, heads, dropout):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = d_model // heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.store_attention = False
        self.weights = None

    def _split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key, mask):
        """mask: bool, broadcastable to [batch, heads, q_len, k_len], True = masked."""
        q = self._split(self.q(query))
        k = self._split(self.k(key))
        v = self._split(self.v(key))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(mask, MASK_VALUE)
        weights = torch.softmax(scores, dim=-1)
        if self.store_attention:
            self.weights = weights
        ctx = torch.matmul(self.dropout(weights), v)
        b, _, n, _ = ctx.shape
        return self.out(ctx.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    def __init__(self, d_model, ffn, dropout):
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn)
        self.fc2 = nn.Linear(ffn, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, mask):
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, mask))
        return x + self.dropout(self.ffn(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.dropout)
        self.norm3 = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, y, memory, self_mask, cross_mask):
        h = self.norm1(y)
        y = y + self.dropout(self.self_attn(h, h, self_mask))
        y = y + self.dropout(self.cross_attn(self.norm2(y), memory, cross_mask))
        return y + self.dropout(self.ffn(self.norm3(y)))


class Transformer(nn.Module):
    """Encoder-decoder with one embedding shared by source, target and output."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        nn.init.normal_(self.embed.weight, std=cfg.d_model ** -0.5)
        with torch.no_grad():
            self.embed.weight[cfg.pad_id].zero_()
        self.scale = math.sqrt(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.enc_norm = nn.LayerNorm(cfg.d_model)
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.dec_norm = nn.LayerNorm(cfg.d_model)

    def set_store_attention(self, on):
        """Keep (True) or stop keeping (False) the per-head attention weights."""
        for m in self.modules():
            if isinstance(m, MultiHeadAttention):
                m.store_attention = bool(on)
                m.weights = None

    def _embed(self, ids):
        x = self.embed(ids) * self.scale
        return self.dropout(x + sinusoidal_positions(ids.shape[1], self.cfg.d_model, ids.device))

    def source_mask(self, src_ids):
        """[batch, 1, 1, src_len], True where the key is padding."""
        return (src_ids == self.cfg.pad_id).unsqueeze(1).unsqueeze(2)

    def target_mask(self, tgt_ids):
        """[batch, 1, tgt_len, tgt_len]: future positions and padded keys masked."""
        n = tgt_ids.shape[1]
        pos = torch.arange(n, device=tgt_ids.device)
        future = pos.unsqueeze(0) > pos.unsqueeze(1)
        pad = (tgt_ids == self.cfg.pad_id).unsqueeze(1).unsqueeze(2)
        return future.unsqueeze(0).unsqueeze(0) | pad

    def encode(self, src_ids):
        """src_ids [batch, src_len] -> memory [batch, src_len, d_model]."""
        mask = self.source_mask(src_ids)
        x = self._embed(src_ids)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_norm(x)

    def decode(self, tgt_ids, memory, src_ids):
        """-> logits [batch, tgt_len, vocab]."""
        return F.linear(self.decode_hidden(tgt_ids, memory, src_ids), self.embed.weight)

    def decode_hidden(self, tgt_ids, memory, src_ids):
        """The decoder's final normalised states [batch, tgt_len, d_model]."""
        self_mask = self.target_mask(tgt_ids)
        cross_mask = self.source_mask(src_ids)
        y = self._embed(tgt_ids)
        for layer in self.decoder:
            y = layer(y, memory, self_mask, cross_mask)
        return self.dec_norm(y)

    def forward(self, src_ids, tgt_ids):
        return self.decode(tgt_ids, self.encode(src_ids), src_ids)

    def _stacked(self, modules, what):
        weights = [m.weights for m in modules]
        if any(w is None for w in weights):
            raise RuntimeError(
                f"no {what} attention stored: call set_store_attention(True) before the forward pass")
        return torch.stack(weights)

    def encoder_attention(self):
        """[enc_layers, batch, heads, src_len, src_len] from the last encode()."""
        return self._stacked([l.self_attn for l in self.encoder], "encoder self")

    def decoder_self_attention(self):
        """[dec_layers, batch, heads, tgt_len, tgt_len] from the last decode()."""
        return self._stacked([l.self_attn for l in self.decoder], "decoder self")

    def cross_attention(self):
        """[dec_layers, batch, heads, tgt_len, src_len] from the last decode()."""
        return self._stacked([l.cross_attn for l in self.decoder], "cross")

    @torch.no_grad()
    def greedy(self, src_ids, bos_id, eos_id, max_len):
        """Greedy decoding; returns a list of token-id lists without BOS/EOS."""
        memory = self.encode(src_ids)
        b = src_ids.shape[0]
        ys = torch.full((b, 1), bos_id, dtype=torch.long, device=src_ids.device)
        done = torch.zeros(b, dtype=torch.bool, device=src_ids.device)
        for _ in range(max_len):
            nxt = self.decode(ys, memory, src_ids)[:, -1].argmax(-1)
            nxt = nxt.masked_fill(done, self.cfg.pad_id)
            ys = torch.cat([ys, nxt.unsqueeze(1)], dim=1)
            done |= nxt == eos_id
            if bool(done.all()):
                break
        out = []
        for row in ys[:, 1:].tolist():
            toks = []
            for t in row:
                if t in (eos_id, self.cfg.pad_id):
                    break
                toks.append(t)
            out.append(toks)
        return out
