"""A tiny vision transformer over image patches, built from one ``ModelConfig`` (nanoGPT-style)."""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig


def check_param_budget(n_params: int, cfg: ModelConfig) -> None:
    """Raise ValueError naming the parameter count and the budget when a model of ``cfg`` is over budget."""
    if cfg.param_budget is not None and n_params > cfg.param_budget:
        raise ValueError(
            f"a model with {cfg.num_classes} classes (d_model {cfg.d_model}, {cfg.n_layers} layers, pool "
            f"{cfg.pool!r}) has {n_params} parameters, over the parameter budget of {cfg.param_budget}: "
            "lower the class capacity or the model size, or raise the budget (CT_PARAM_BUDGET) for a new stream"
        )


class PatchEmbed(nn.Module):
    """Cuts the image into non-overlapping patches and projects each to ``d_model``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        # a strided conv is exactly a shared linear map applied to each patch
        self.proj = nn.Conv2d(cfg.channels, cfg.d_model, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, C, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, T, C)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (no causal mask: an image has no order)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class RandomReLUExpansion(nn.Module):
    """Fixed random ReLU features ``relu(x W + b)`` (RanPAC-style) for the analytic head; not parameters.

    ``W`` and ``b`` are regenerated on CPU from ``seed`` at construction and never stored (non-persistent
    buffers); only their sha256 is (a persistent uint8 buffer), and loading a state whose digest differs from
    the regenerated one fails: a different torch RNG would silently change every feature otherwise.
    """

    def __init__(self, in_dim: int, out_dim: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator(device="cpu").manual_seed(seed)
        # scaled for unit-variance pre-activations on the layer-normed features
        weight = torch.randn(in_dim, out_dim, generator=gen) / math.sqrt(in_dim)
        bias = torch.randn(out_dim, generator=gen)
        digest = hashlib.sha256(weight.numpy().tobytes() + bias.numpy().tobytes()).digest()
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)
        self.register_buffer("sha256", torch.tensor(list(digest), dtype=torch.uint8))

    def hexdigest(self) -> str:
        """The sha256 of the regenerated ``W`` and ``b``."""
        return bytes(self.sha256.cpu().tolist()).hex()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):  # type: ignore[no-untyped-def]
        stored = state_dict.get(prefix + "sha256")
        if stored is not None and bytes(stored.cpu().tolist()) != bytes(self.sha256.cpu().tolist()):
            errors.append(
                f"random expansion regenerated from its seed has sha256 {self.hexdigest()} but the state recorded "
                f"{bytes(stored.cpu().tolist()).hex()}: this torch generates different features, refusing to load"
            )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.weight + self.bias)  # (B, expansion_dim)


class TinyTransformer(nn.Module):
    """Patch transformer with one head over every class of the stream; its size never depends on tasks."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_patches = (cfg.image_size // cfg.patch_size) ** 2
        n_tokens = n_patches + (1 if cfg.pool == "cls" else 0)
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.d_model)) if cfg.pool == "cls" else None
        self.pos_emb = nn.Parameter(torch.zeros(1, n_tokens, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.expansion = (
            RandomReLUExpansion(cfg.feature_dim, cfg.expansion_dim, cfg.expansion_seed)
            if cfg.expansion_dim
            else None
        )
        self.head = nn.Linear(cfg.expansion_dim or cfg.feature_dim, cfg.num_classes)
        self.apply(self._init_weights)
        if self.expansion is not None:
            # the analytic head is solved in closed form in float64 and kept so; classes it has not learned
            # (or unlearned) are masked out of every prediction, since a zero head column can still win
            self.head.double()
            self.register_buffer("active_classes", torch.zeros(cfg.num_classes, dtype=torch.bool))
        nn.init.normal_(self.pos_emb, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        # GPT-2 scaling keeps the residual stream's variance independent of depth
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") and "patch_embed" not in name:
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))
        check_param_budget(self.num_parameters(), cfg)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Conv2d):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Total number of parameters (trainable or not); fixed at construction."""
        return sum(p.numel() for p in self.parameters())

    def _as_images(self, x: torch.Tensor) -> torch.Tensor:
        """Accept flat rows (B, F) or images (B, C, H, W); return images."""
        cfg = self.cfg
        if x.dim() == 2:
            assert x.shape[1] == cfg.num_features, f"expected {cfg.num_features} features, got {x.shape[1]}"
            return x.view(x.shape[0], cfg.channels, cfg.image_size, cfg.image_size)
        assert x.dim() == 4, f"expected (B, F) or (B, C, H, W) input, got shape {tuple(x.shape)}"
        assert x.shape[1:] == (cfg.channels, cfg.image_size, cfg.image_size), (
            f"expected images of shape ({cfg.channels}, {cfg.image_size}, {cfg.image_size}), got {tuple(x.shape[1:])}"
        )
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled representation (B, d_model) that the head reads; replay's herding selects exemplars on it."""
        x = self.patch_embed(self._as_images(x))  # (B, T, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, T+1, C)
        x = self.drop(x + self.pos_emb)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)  # (B, T, C)
        if self.cfg.pool == "cls":
            return x[:, 0]  # (B, C)
        if self.cfg.pool == "mean":
            return x.mean(dim=1)  # (B, C)
        return x.flatten(1)  # (B, T*C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for flat (B, F) or image (B, C, H, W) input."""
        if self.expansion is None:
            return self.head(self.features(x))
        logits = self.head(self.expansion(self.features(x)).double()).float()  # (B, num_classes)
        active = self.active_classes
        return logits.masked_fill(~active & active.any(), float("-inf"))  # nothing learned yet: no mask
