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


def sinusoidal_positions(length, d_model, device=None, start=0):
    """Vaswani et al. (2017) sinusoids for positions start..start+length-1: [length, d_model].

    Computed on the fly so an exported graph carries no position table.
    """
    pos = (torch.arange(length, device=device) + start).to(torch.float32).unsqueeze(1)
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
        self.store_value_norms = False
        self.value_norms = None

    def _split(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key, mask):
        """mask: bool, broadcastable to [batch, heads, q_len, k_len], True = masked."""
        k, v = self.key_value(key)
        if self.store_value_norms:
            self.value_norms = self.head_value_norms(v)
        return self.attend(query, k, v, mask)

    def head_value_norms(self, v):
        """||f_h(x_j)|| for every head h and key j: the norm of what key j adds
        to head h's output per unit of attention, f_h(x) = (x W_V + b_V)_h W_O,h
        (Kobayashi et al. 2020, "Attention is Not Only a Weight: Analyzing
        Transformers with Vector Norms"; the output bias is added once per
        query, not per key, so it is left out). v: the values of key_value(),
        [batch, heads, k_len, head_dim] -> [batch, heads, k_len]."""
        w = self.out.weight  # [d_model, d_model]; head h reads columns h*head_dim...
        norms = []
        for h in range(self.heads):
            w_h = w[:, h * self.head_dim:(h + 1) * self.head_dim]
            norms.append(torch.matmul(v[:, h], w_h.t()).norm(dim=-1))
        return torch.stack(norms, dim=1)

    def key_value_norms(self, key):
        """head_value_norms of the values of key: [batch, heads, k_len]."""
        return self.head_value_norms(self._split(self.v(key)))

    def key_value(self, key):
        """The keys and values of key, per head: two [batch, heads, k_len, head_dim]."""
        return self._split(self.k(key)), self._split(self.v(key))

    def attend(self, query, k, v, mask):
        """Attention of query over keys and values already projected (a cache)."""
        q = self._split(self.q(query))
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

    def step(self, y, past, cross_kv, self_mask, cross_mask):
        """forward() for new target positions, reusing earlier positions' keys
        and values: past is (key, value) [batch, heads, past_len, head_dim] or
        None, cross_kv the cross-attention's (key, value) of the memory.
        Returns y and the self-attention's (key, value) over all positions."""
        h = self.norm1(y)
        k, v = self.self_attn.key_value(h)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = y + self.dropout(self.self_attn.attend(h, k, v, self_mask))
        y = y + self.dropout(self.cross_attn.attend(self.norm2(y), cross_kv[0], cross_kv[1], cross_mask))
        return y + self.dropout(self.ffn(self.norm3(y))), (k, v)


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

    def set_store_value_norms(self, on):
        """Make encode() keep (True) or stop keeping (False) its
        self-attention's value-vector norms (encoder_value_norms())."""
        for layer in self.encoder:
            layer.self_attn.store_value_norms = bool(on)
            layer.self_attn.value_norms = None

    def encoder_value_norms(self):
        """[enc_layers, batch, heads, src_len] from the last encode() with
        set_store_value_norms(True): MultiHeadAttention.head_value_norms."""
        norms = [l.self_attn.value_norms for l in self.encoder]
        if any(n is None for n in norms):
            raise RuntimeError("no encoder value norms stored: call set_store_value_norms(True) before encode()")
        return torch.stack(norms)

    def cross_value_norms(self, memory):
        """[dec_layers, batch, heads, src_len]: every decoder layer's
        cross-attention value-vector norms of memory. They depend on the
        source only, so the encoder graph exports them."""
        return torch.stack([l.cross_attn.key_value_norms(memory) for l in self.decoder])

    def _embed(self, ids, start=0):
        x = self.embed(ids) * self.scale
        return self.dropout(x + sinusoidal_positions(ids.shape[1], self.cfg.d_model, ids.device, start))

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

    def encode(self, src_ids, mask=None):
        """src_ids [batch, src_len] -> memory [batch, src_len, d_model].

        mask: the source_mask() to use (default: keys equal to pad_id)."""
        if mask is None:
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

    def cross_key_values(self, memory):
        """Every decoder layer's cross-attention (key, value) of memory: the
        encoder half of the key/value cache, computed once per source."""
        return [layer.cross_attn.key_value(memory) for layer in self.decoder]

    def decode_cached(self, tgt_ids, cross_kv, cross_mask, past=None):
        """decode() with a key/value cache: see decode_cached_hidden."""
        hidden, present = self.decode_cached_hidden(tgt_ids, cross_kv, cross_mask, past)
        return F.linear(hidden, self.embed.weight), present

    def decode_cached_hidden(self, tgt_ids, cross_kv, cross_mask, past=None):
        """Incremental decoding: tgt_ids [batch, q] are the target positions
        after the past_len cached ones (past: per layer (key, value)
        [batch, heads, past_len, head_dim], or None for none). Every query
        sees all cached and earlier new positions; the cache holds no
        padding, so no target key is masked. cross_mask is source_mask()'s
        [batch, 1, 1, src_len]. Returns the decoder's final normalised
        states [batch, q, d_model] and the new cache (per layer (key, value)
        over past_len + q positions)."""
        start = 0 if past is None else past[0][0].shape[2]
        q = tgt_ids.shape[1]
        qpos = torch.arange(q, device=tgt_ids.device).unsqueeze(1) + start
        kpos = torch.arange(start + q, device=tgt_ids.device).unsqueeze(0)
        self_mask = (kpos > qpos).unsqueeze(0).unsqueeze(0)
        y = self._embed(tgt_ids, start)
        present = []
        for i, layer in enumerate(self.decoder):
            y, kv = layer.step(y, None if past is None else past[i], cross_kv[i], self_mask, cross_mask)
            present.append(kv)
        return self.dec_norm(y), present

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
