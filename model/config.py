"""Typed configuration: one dataclass for the network, one for training, one override path (``from_dict``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

SCENARIOS = ("class_incremental", "task_incremental")
POOLS = ("cls", "mean", "flatten")
REPLAY_SELECTIONS = ("kmeans", "herding")
AMP_DTYPES = ("bf16", "fp16")
FINETUNE_SCOPES = ("all", "head")

# Names of a stream, defined once: the continual_training DAG's task_id param and the landing manifest
# schema (include/ops/validation/manifest_schema.py) use this pattern; a task id is part of checkpoint names.
TASK_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# Capacity defaults (Settings CT_CLASS_CAPACITY / CT_PARAM_BUDGET default to these): the head's classes
# and the most parameters a model may have (the README promises a model under 100k parameters).
DEFAULT_CLASS_CAPACITY = 10
DEFAULT_PARAM_BUDGET = 100_000
# Width of the fixed random ReLU expansion the ``analytic`` strategy's closed-form head reads (RanPAC-style);
# regenerated from ``ModelConfig.expansion_seed``, never stored: not parameters (see README)
ANALYTIC_EXPANSION_DIM = 2000


class _DictConfig:
    """Round-trips a dataclass through plain dicts (checkpoints, XCom, MLflow params)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-serialisable dict of primitives."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Self:
        """Build a config from a dict; ``None`` values keep the default, unknown keys raise ValueError."""
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key in values:
            if key not in known:
                raise ValueError(f"unknown {cls.__name__} key: {key!r}")
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            # JSON and Airflow Params hand back 1 for 1.0; keep float fields float so to_dict is stable.
            default = known[key].default
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            kwargs[key] = value
        return cls(**kwargs)


@dataclass
class ModelConfig(_DictConfig):
    """Shape of the patch transformer; fixes the parameter count for the whole task stream."""

    image_size: int = 8
    patch_size: int = 2  # 8x8 digits -> 4x4 grid = 16 tokens of 2x2 pixels
    channels: int = 1
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 2
    dropout: float = 0.0  # the data set is tiny and replay already regularises; dropout only slowed learning
    num_classes: int = DEFAULT_CLASS_CAPACITY  # capacity of the single head: every class the stream may bring
    max_tasks: int = 5  # capacity in tasks; learning more is refused instead of growing the model
    pool: str = "flatten"  # "cls" token, "mean" over patch tokens, or "flatten" (all tokens side by side)
    # the most parameters a model of this config may have (a bigger one is not built); None: no budget (old states)
    param_budget: int | None = DEFAULT_PARAM_BUDGET
    # > 0: the head reads a fixed random ReLU expansion of this width (the analytic strategy), in float64
    expansion_dim: int = 0
    expansion_seed: int = 0  # the expansion is regenerated on CPU from it; its sha256 is checked on load

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        for name in ("num_classes", "max_tasks", "n_layers", "channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.expansion_dim < 0:
            raise ValueError(f"expansion_dim must be >= 0, got {self.expansion_dim}")
        if self.param_budget is not None and self.param_budget < 1:
            raise ValueError(f"param_budget must be >= 1 or None, got {self.param_budget}")

    @property
    def num_tokens(self) -> int:
        """Patch tokens per image."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def feature_dim(self) -> int:
        """Width of the pooled representation the head reads."""
        return self.num_tokens * self.d_model if self.pool == "flatten" else self.d_model

    @property
    def num_features(self) -> int:
        """Pixels per flattened image, i.e. the number of ``f*`` columns a task file must have."""
        return self.channels * self.image_size * self.image_size


@dataclass
class TrainConfig(_DictConfig):
    """How one task is trained; the defaults are the tuned ones the benchmark targets were measured with."""

    strategy: str = "replay"  # one of model.strategies.STRATEGIES ("analytic": closed-form head, no SGD)
    scenario: str = "class_incremental"  # or "task_incremental" (task id known at test time)
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_frac: float = 0.1  # linear warm-up, then cosine decay, restarted on every task
    min_lr_frac: float = 0.05  # the cosine ends at lr * min_lr_frac
    grad_clip: float = 1.0
    grad_accum_steps: int = 1
    seed: int = 0
    log_every: int = 50  # optimizer steps between progress log records
    device: str = "auto"  # "auto" picks CUDA when present, else CPU
    mixed_precision: bool = True  # autocast on CUDA only (dtype: amp_dtype); CPU always trains fp32
    amp_dtype: str = "bf16"  # "bf16", or "fp16" with a GradScaler (GPUs without bf16, e.g. V100/T4)
    cudnn_benchmark: bool = True  # torch.backends.cudnn.benchmark on CUDA (fixed input shapes here)
    num_workers: int = 0  # > 0: batches come from a DataLoader with persistent workers instead of slicing
    pin_memory: bool = True  # page-locked DataLoader batches + non_blocking copies (CUDA and num_workers > 0)
    max_samples_per_task: int | None = None  # cap on training samples per task (tests, quick benchmark)
    replay_budget: int = 100  # total exemplars kept over ALL classes, never per task
    replay_batch_size: int = 64  # replayed exemplars appended to every training batch (2x the new data)
    replay_selection: str = "kmeans"  # "kmeans" (medoids, covers the class) or "herding" (iCaRL, mean-like)
    replay_distill_alpha: float = 1.0  # weight of distillation on old-class logits inside replay (0 = off)
    finetune_epochs: int = 15  # class-balanced fine-tuning on the exemplar buffer at task end (0 = off)
    finetune_lr: float = 5e-4  # gentle: a higher rate trades the newest task's accuracy for old classes
    finetune_scope: str = "all"  # "all" parameters, or only the classifier "head" (backbone kept as learned)
    lwf_alpha: float = 1.0  # weight of the distillation loss against the frozen teacher
    lwf_temperature: float = 2.0
    ewc_lambda: float = 1000.0
    ewc_gamma: float = 1.0  # online EWC decay of the accumulated Fisher information
    inject_nan_at_step: int | None = None  # debug: the loss at this optimizer step (0-based, per task) is NaN
    compile: bool = False  # torch.compile the model (worth it on GPU only)
    analytic_features: int = ANALYTIC_EXPANSION_DIM  # random features of a new analytic stream's head

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}, got {self.scenario!r}")
        for name in ("epochs", "batch_size", "grad_accum_steps", "log_every", "analytic_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("replay_budget", "replay_batch_size", "finetune_epochs", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.finetune_scope not in FINETUNE_SCOPES:
            raise ValueError(f"finetune_scope must be one of {FINETUNE_SCOPES}, got {self.finetune_scope!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        if self.replay_selection not in REPLAY_SELECTIONS:
            raise ValueError(
                f"replay_selection must be one of {REPLAY_SELECTIONS}, got {self.replay_selection!r}"
            )
        if self.max_samples_per_task is not None and self.max_samples_per_task < 1:
            raise ValueError(f"max_samples_per_task must be >= 1 or None, got {self.max_samples_per_task}")
