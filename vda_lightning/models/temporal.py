"""Temporal attention module of the spatio-temporal head (published `motion_module/motion_module.py`).

Attention runs along time, independently for every pixel. Module and attribute names reproduce the
published key layout (`temporal_transformer.transformer_blocks.0.attention_blocks.{0,1}...`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_HEADS = 8
MAX_FRAMES = 32


def sinusoidal_table(channels: int, max_len: int = MAX_FRAMES) -> torch.Tensor:
    """(1, max_len, C) sinusoid: even channels sin, odd channels cos, computed in float32."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    pe = torch.zeros(1, max_len, channels)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


class PositionalEncoding(nn.Module):
    def __init__(self, channels: int, max_len: int = MAX_FRAMES):
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(channels, max_len), persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"at most {self.pe.shape[1]} frames per clip, got {x.shape[1]}")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class KeyValue(NamedTuple):
    """Keys and values without their position term: `to_k` / `to_v` of pre-PE states, (B*S, U, C) each.

    Passed as `cached`, it asks the attention for the new frames' KeyValue in return, so that a streamed frame is
    projected once, not again in each of the 32 steps that attend to it (issue 28). `index` (T, L) says which rows
    of [cached ; new frames] each new frame attends to, in slot order (slot i carries position i; the frame itself
    is the last), so T streamed frames run through the head in one batch, each with the context the published
    one-frame-at-a-time loop gives it (`inference/streaming.py` builds it). The result is the published attention
    up to float rounding: `to_k` and `to_v` have no bias, so to_k(state + pe) = to_k(state) + to_k(pe).
    `KeyValue(None, None)`: nothing cached yet; the new frames attend to each other at positions 0..T-1.
    """

    key: torch.Tensor | None
    value: torch.Tensor | None
    index: torch.Tensor | None = None


EMPTY_CONTEXT = KeyValue(None, None)


class TemporalAttention(nn.Module):
    """Multi-head self-attention over the time axis with the sinusoidal position added to its input."""

    def __init__(self, channels: int, num_heads: int = NUM_HEADS, max_len: int = MAX_FRAMES):
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])
        self.pos_encoder = PositionalEncoding(channels, max_len)

    def forward(
        self, x: torch.Tensor, num_frames: int, cached: torch.Tensor | KeyValue | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | KeyValue]:
        """x: (B*T, S, C) LayerNorm-ed tokens. `cached`: (B*S, Tc, C) pre-PE states of earlier frames, or their
        `KeyValue`.

        Returns the attention output for the T new frames, (B*T, S, C), and their pre-PE states
        (B*S, T, C), which the streaming mode caches (published `video_depth_stream.py`) — their KeyValue when
        `cached` is one.
        """
        bt, s, c = x.shape
        b = bt // num_frames
        state = x.reshape(b, num_frames, s, c).transpose(1, 2).reshape(b * s, num_frames, c)
        if isinstance(cached, KeyValue):
            out, state = self._attend_projected(state, cached)
        else:
            seq = state if cached is None else torch.cat([cached.to(state.dtype), state], dim=1)
            seq = self.pos_encoder(seq)
            q = self.to_q(seq[:, -num_frames:])
            k = self.to_k(seq)
            v = self.to_v(seq)
            q, k, v = (t.unflatten(-1, (self.num_heads, c // self.num_heads)).transpose(1, 2) for t in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        out = self.to_out[1](self.to_out[0](out))
        out = out.reshape(b, s, num_frames, c).transpose(1, 2).reshape(bt, s, c)
        return out, state

    def _attend_projected(self, state: torch.Tensor, cached: KeyValue) -> tuple[torch.Tensor, KeyValue]:
        """Attention of the new frames `state` (B*S, T, C) over their `cached.index` context (KeyValue's
        docstring) -> (B*S, T, C) before `to_out`, and the new frames' KeyValue."""
        bs, t, c = state.shape
        heads, d = self.num_heads, c // self.num_heads
        new = KeyValue(self.to_k(state), self.to_v(state))
        split = lambda x: x.unflatten(-1, (heads, d)).transpose(-3, -2)  # noqa: E731  (.., L, C) -> (.., h, L, d)
        if cached.key is None:
            pe = self.pos_encoder(state.new_zeros(1, t, c))
            q, k, v = self.to_q(state + pe), new.key + self.to_k(pe), new.value + self.to_v(pe)
            out = F.scaled_dot_product_attention(split(q), split(k), split(v))
            return out.transpose(1, 2).flatten(2), new
        index = cached.index
        slots = index.shape[1]
        pe = self.pos_encoder(state.new_zeros(1, slots, c))[0]  # (L, C): slot i's position
        q = split(self.to_q(state + pe[-1])) * d**-0.5  # (BS, h, T, d): each new frame in the last slot
        keys = split(torch.cat([cached.key.to(state.dtype), new.key], dim=1))  # (BS, h, U+T, d)
        values = split(torch.cat([cached.value.to(state.dtype), new.value], dim=1))
        gather = index.expand(bs, heads, t, slots)
        # score(slot) = q . (key of the slot's frame + to_k(pe[slot])): the content term is gathered from one
        # product with every row, so no key is copied per slot (the early context repeats frame 0 many times).
        scores = (q @ keys.transpose(-1, -2)).gather(-1, gather) + q @ split(self.to_k(pe)).transpose(-1, -2)
        weights = scores.softmax(dim=-1)  # (BS, h, T, L)
        per_row = weights.new_zeros(bs, heads, t, keys.shape[-2]).scatter_add_(-1, gather, weights)
        out = per_row @ values + weights @ split(self.to_v(pe))
        return out.transpose(1, 2).flatten(2), new


class GEGLU(nn.Module):
    """Gated GELU: the first half of the projection is the value, the second half the gate."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, channels: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(channels, channels * mult), nn.Dropout(0.0), nn.Linear(channels * mult,
                                                                                               channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TemporalTransformerBlock(nn.Module):
    def __init__(self, channels: int, num_attention_blocks: int = 2):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(channels) for _ in range(num_attention_blocks)])
        self.norms = nn.ModuleList([nn.LayerNorm(channels) for _ in range(num_attention_blocks)])
        self.ff = FeedForward(channels)
        self.ff_norm = nn.LayerNorm(channels)

    def forward(self, x, num_frames, cached=None):
        states = []
        for i, (attn, norm) in enumerate(zip(self.attention_blocks, self.norms)):
            out, state = attn(norm(x), num_frames, None if cached is None else cached[i])
            x = x + out
            states.append(state)
        x = x + self.ff(self.ff_norm(x))
        return x, states


class TemporalTransformer3DModel(nn.Module):
    def __init__(self, channels: int, norm_groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(channels)])
        self.proj_out = nn.Linear(channels, channels)
        # Zero output projection: a freshly built module is the identity, so a video head built from an
        # image checkpoint starts as the image model frame by frame.
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x, num_frames, cached=None):
        """x: (B*T, C, h, w) -> same shape; returns also the list of pre-PE attention states."""
        n, c, h, w = x.shape
        residual = x
        t = self.norm(x).permute(0, 2, 3, 1).reshape(n, h * w, c)
        t = self.proj_in(t)
        states = []
        for block in self.transformer_blocks:
            t, s = block(t, num_frames, cached)
            states.extend(s)
        t = self.proj_out(t)
        t = t.reshape(n, h, w, c).permute(0, 3, 1, 2)
        return t + residual, states


class TemporalModule(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.temporal_transformer = TemporalTransformer3DModel(channels)

    def forward(self, x, num_frames, cached=None):
        return self.temporal_transformer(x, num_frames, cached)
