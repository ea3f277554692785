"""PyTorch reference of the tpdiff DiT (DESIGN.md, section "Model").

Defines:
  - sincos_table(positions, d): the 1-D fixed sin-cos table, computed in float64;
  - patchify / unpatchify: [B, C, T, H, W] <-> [B, N, C*p*p] tokens;
  - DiT: the network, with parameter names and shapes equal to tpdiff's export contract, so a
    tpdiff-export file or a C parameter dump loads with load_state_dict(strict=True);
  - dit_init: DiT-style initialisation (the one tpdiff-train starts from);
  - random_init: a fully random initialisation for parity tests (no zero weight hides a bug);
  - adamw_param_groups: the weight-decay split tpdiff uses (decay only matrices, ndim == 2).

This file is the executable specification the C model is checked against; it favours plain,
literal code over speed (attention is written out, not taken from a fused library call).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

TIME_TABLE_WIDTH = 256
TIME_SCALE = 1000.0
LN_EPS = 1e-6


def sincos_table(positions, d):
    """1-D sin-cos table of width d at the given positions -> float64 tensor [len(positions), d].

    Row q is [sin(q*w_0 .. q*w_{d/2-1}), cos(q*w_0 .. q*w_{d/2-1})] with w_i = 10000^(-2i/d).
    Always float64: the C side computes the tables in double too, and casting once at the end
    keeps both sides bit-identical up to the final rounding.
    """
    if d % 2 != 0:
        raise ValueError(f"sincos_table: width {d} must be even")
    pos = torch.as_tensor(positions, dtype=torch.float64).reshape(-1)
    i = torch.arange(d // 2, dtype=torch.float64)
    omega = torch.pow(torch.tensor(10000.0, dtype=torch.float64), -2.0 * i / d)
    angles = pos[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def patchify(x, p):
    """[B, C, T, H, W] -> [B, N, C*p*p], N = T*(H/p)*(W/p) tokens ordered (frame, row, col),
    each token's values in (c, py, px) order (temporal patch size 1)."""
    b, c, t, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"patchify: {h}x{w} not divisible by patch {p}")
    hp, wp = h // p, w // p
    x = x.reshape(b, c, t, hp, p, wp, p)
    # axes: b, c, t, row, py, col, px  ->  b, t, row, col, c, py, px
    x = x.permute(0, 2, 3, 5, 1, 4, 6)
    return x.reshape(b, t * hp * wp, c * p * p)


def unpatchify(tokens, c, t, h, w, p):
    """Inverse of patchify: [B, N, C*p*p] -> [B, C, T, H, W]."""
    b = tokens.shape[0]
    hp, wp = h // p, w // p
    x = tokens.reshape(b, t, hp, wp, c, p, p)
    # axes: b, t, row, col, c, py, px  ->  b, c, t, row, py, col, px
    x = x.permute(0, 4, 1, 2, 5, 3, 6)
    return x.reshape(b, c, t, h, w)


def stage_stride(stages, stage):
    """Frame stride m = 2^(K-1-k) of stage k: stage 0 has the lowest frame rate."""
    return 2 ** (stages - 1 - stage)


def position_table(dim, frames, rows, cols, stride):
    """Fixed positional table [frames*rows*cols, dim] in float64, tokens ordered (frame, row, col).

    Spatial part: channels [0, D/2) = 1-D table of width D/2 at the row index, channels [D/2, D)
    the same at the column index. Temporal part (added, all D channels): frame j of a stage with
    stride m sits at full-rate time m*j + (m-1)/2, the centre of the frames it averages, so all
    stages share one time axis.
    """
    if dim % 4 != 0:
        raise ValueError(f"dim {dim} must be divisible by 4")
    row_tab = sincos_table(torch.arange(rows, dtype=torch.float64), dim // 2)  # [rows, D/2]
    col_tab = sincos_table(torch.arange(cols, dtype=torch.float64), dim // 2)  # [cols, D/2]
    spatial = torch.cat(
        [
            row_tab[:, None, :].expand(rows, cols, dim // 2),
            col_tab[None, :, :].expand(rows, cols, dim // 2),
        ],
        dim=2,
    )  # [rows, cols, D]
    frame_pos = stride * torch.arange(frames, dtype=torch.float64) + (stride - 1) / 2.0
    temporal = sincos_table(frame_pos, dim)  # [frames, D]
    table = spatial[None, :, :, :] + temporal[:, None, None, :]
    return table.reshape(frames * rows * cols, dim)


def modulate(x, shift, scale):
    """LN(x)*(1+scale)+shift with per-clip shift/scale [B, D] broadcast over tokens."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def layer_norm(x):
    """LayerNorm over the last axis, no affine, eps 1e-6."""
    return F.layer_norm(x, (x.shape[-1],), weight=None, bias=None, eps=LN_EPS)


class TimeEmbed(nn.Module):
    """t -> MLP(table_256(1000*t)); names t_embed.mlp.0 / t_embed.mlp.2."""

    def __init__(self, dim):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(TIME_TABLE_WIDTH, dim), nn.SiLU(), nn.Linear(dim, dim)
        )

    def forward(self, t):
        table = sincos_table(TIME_SCALE * t.detach().to(torch.float64), TIME_TABLE_WIDTH)
        return self.mlp(table.to(self.mlp[0].weight.dtype))


class Attention(nn.Module):
    """Full (non-causal) multi-head self-attention over all N tokens of a clip."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        hd = d // self.heads
        # qkv rows: q, then k, then v; inside each, head h owns rows h*hd .. (h+1)*hd-1.
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, N, hd]
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(hd)
        weights = torch.softmax(scores, dim=-1)
        out = torch.matmul(weights, v)  # [B, heads, N, hd]
        out = out.transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class Mlp(nn.Module):
    """Linear D->4D, GELU (tanh form), Linear 4D->D."""

    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """adaLN-Zero transformer block."""

    def __init__(self, dim, heads):
        super().__init__()
        self.adaLN = nn.Linear(dim, 6 * dim)
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim)

    def forward(self, x, c):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN(F.silu(c)).chunk(6, dim=1)
        x = x + gate1[:, None, :] * self.attn(modulate(layer_norm(x), shift1, scale1))
        x = x + gate2[:, None, :] * self.mlp(modulate(layer_norm(x), shift2, scale2))
        return x


class FinalLayer(nn.Module):
    """adaLN (shift, scale) then Linear D -> C*p*p."""

    def __init__(self, dim, patch_values):
        super().__init__()
        self.adaLN = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, patch_values)

    def forward(self, x, c):
        shift, scale = self.adaLN(F.silu(c)).chunk(2, dim=1)
        return self.linear(modulate(layer_norm(x), shift, scale))


class DiT(nn.Module):
    """The tpdiff DiT: x [B, C, T, H, W], t [B] in [0, 1], y [B] labels (or None), stage k.

    T is the stage's frame count (frames / 2^(stages-1-stage)); the output has x's shape.
    """

    def __init__(self, depth, dim, heads, patch, classes, channels, stages):
        super().__init__()
        if dim % 4 != 0 or dim % heads != 0:
            raise ValueError(f"dim {dim} must be divisible by 4 and by heads {heads}")
        if stages < 1:
            raise ValueError(f"stages {stages} must be >= 1")
        self.depth, self.dim, self.heads, self.patch = depth, dim, heads, patch
        self.classes, self.channels, self.stages = classes, channels, stages
        self.patch_values = channels * patch * patch
        self.x_embed = nn.Linear(self.patch_values, dim)
        self.t_embed = TimeEmbed(dim)
        if classes > 0:
            # Last row is the null class (dropped labels, unconditional sampling).
            self.y_embed = nn.Embedding(classes + 1, dim)
        self.stage_embed = nn.Embedding(stages, dim)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.final = FinalLayer(dim, self.patch_values)

    def positions(self, frames, rows, cols, stage, dtype):
        """Position table [N, D] in the model dtype (float64 maths, one final cast)."""
        table = position_table(self.dim, frames, rows, cols, stage_stride(self.stages, stage))
        return table.to(dtype)

    def condition(self, t, y, stage, batch):
        """c = MLP(table_256(1000 t)) + E[y] + S[stage] -> [B, D]."""
        c = self.t_embed(t)
        if self.classes > 0:
            if y is None:
                y = torch.full((batch,), self.classes, dtype=torch.long)
            c = c + self.y_embed(y.long())
        elif y is not None:
            raise ValueError("labels given to an unconditional model (classes == 0)")
        stage_index = torch.full((batch,), int(stage), dtype=torch.long)
        return c + self.stage_embed(stage_index)

    def forward(self, x, t, y, stage):
        b, c_in, frames, h, w = x.shape
        if c_in != self.channels:
            raise ValueError(f"input has {c_in} channels, model expects {self.channels}")
        if not 0 <= int(stage) < self.stages:
            raise ValueError(f"stage {stage} outside [0, {self.stages})")
        p = self.patch
        dtype = self.x_embed.weight.dtype
        tokens = self.x_embed(patchify(x.to(dtype), p))
        tokens = tokens + self.positions(frames, h // p, w // p, stage, dtype)[None]
        c = self.condition(t.to(dtype), y, stage, b)
        for block in self.blocks:
            tokens = block(tokens, c)
        out = self.final(tokens, c)
        return unpatchify(out, c_in, frames, h, w, p)


def dit_init(model):
    """DiT initialisation: Xavier-uniform linears with zero biases, normal(0.02) embeddings and
    time-MLP weights, zero adaLN linears and zero final linear (so every block starts as the
    identity and the model's first output is 0)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(model.t_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(model.t_embed.mlp[2].weight, std=0.02)
        if model.classes > 0:
            nn.init.normal_(model.y_embed.weight, std=0.02)
        nn.init.normal_(model.stage_embed.weight, std=0.02)
        for block in model.blocks:
            nn.init.zeros_(block.adaLN.weight)
            nn.init.zeros_(block.adaLN.bias)
        nn.init.zeros_(model.final.adaLN.weight)
        nn.init.zeros_(model.final.adaLN.bias)
        nn.init.zeros_(model.final.linear.weight)
        nn.init.zeros_(model.final.linear.bias)
    return model


def random_init(model, generator=None, scale=1.0):
    """Fully random parameters for parity tests: every tensor ~ U(-a, a) with a = scale/sqrt(fan_in)
    for matrices (so activations stay O(1) through depth) and a = scale*0.1 for vectors, so no
    zero-initialised gate or bias can hide a wrong gradient."""
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.ndim == 2:
                bound = scale / math.sqrt(param.shape[1])
            else:
                bound = 0.1 * scale
            noise = torch.rand(param.shape, generator=generator, dtype=torch.float64)
            param.copy_(((2 * noise - 1) * bound).to(param.dtype))
    return model


def adamw_param_groups(model, weight_decay):
    """tpdiff's decay rule: weight decay only on parameters with ndim == 2 (linear weights and
    embedding tables); biases decay 0."""
    decay = [p for _, p in model.named_parameters() if p.ndim == 2]
    no_decay = [p for _, p in model.named_parameters() if p.ndim != 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
