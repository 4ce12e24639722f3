"""Named training protocols: everything that decides how an architecture is trained.

A :class:`Protocol` is a frozen dataclass; :meth:`Protocol.to_dict` is stored
with every evaluation (and registered with the store under the protocol's
name), so results of different protocols are never mixed.  Speed flags that do
not change *what* is trained (compile, CUDA graphs, channels_last, bf16) are
not part of the protocol; they are recorded with each result instead.

Appendix A of the paper: SGD with momentum 0.9, cosine learning rate from
0.024 to 0 without restarts, weight decay 5e-4, drop-path 0.3, batch size 128
(64 when F >= 64); during the search B=5, N=3, F=32 and 100 epochs on the
training split (45,000 CIFAR images; 5,000 held out for validation).

Named protocols:

``paper-search``  the paper's search setting (above).
``paper-final``   the final training of appendix A: N=6, F=32, 600 epochs.
``proxy-10ep``    a cheap proxy: 10 epochs, N=2, F=16, 10,000 training images.
``proxy-25ep``    25 epochs, N=3, F=24, 20,000 training images.
``nb-proxy``      the package's own benchmark: N=1, F=16, 4 epochs on 5,000 images.
``nb-proxy-3x``   the same, 12 epochs (its fidelity check).
``smoke``         tests only: 1 epoch, N=1, F=8, 384 train / 128 val / 128 test images.

Choices beyond the paper (documented in the dict): gradient-norm clipping at
5 (NAO/DARTS practice), the cosine schedule stepped per batch, no auxiliary
head and no dense dropout during the search.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..registry import Registry

__all__ = ["Protocol", "PROTOCOLS", "get_protocol", "register_protocol", "list_protocols"]


@dataclass(frozen=True)
class Protocol:
    """How to train and evaluate one architecture on one task."""

    name: str
    epochs: int
    num_cells: int                    # N
    filters: int                      # F
    num_blocks: int = 5               # B (a check on the architectures trained)
    batch_size: int | None = None     # None: 128, or 64 when filters >= 64 (appendix A)
    lr_max: float = 0.024
    lr_min: float = 0.0
    lr_schedule: str = "cosine-per-step"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    drop_path: float = 0.3
    grad_clip: float | None = 5.0
    aux_weight: float = 0.0           # > 0: auxiliary head with this loss weight
    dropout: float = 0.0
    pad: int = 4
    hflip: bool = True
    cutout: int = 0
    train_images: int | None = None   # None: the whole training split
    val_images: int | None = None
    test_images: int | None = None
    eval_batch_size: int = 500
    dil_sep_layers: int = 2
    stem_multiplier: int = 3
    version: int = 1
    notes: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs={self.epochs} (must be >= 1)")
        for k in ("num_cells", "filters", "num_blocks", "eval_batch_size"):
            if getattr(self, k) < 1:
                problems.append(f"{k}={getattr(self, k)} (must be >= 1)")
        if self.batch_size is not None and self.batch_size < 2:
            problems.append(f"batch_size={self.batch_size} (must be >= 2)")
        if not 0 <= self.drop_path < 1:
            problems.append(f"drop_path={self.drop_path} (must be in [0, 1))")
        if self.lr_max <= 0 or self.lr_min < 0 or self.lr_min > self.lr_max:
            problems.append(f"lr_max={self.lr_max}, lr_min={self.lr_min}")
        if self.lr_schedule not in ("cosine-per-step", "cosine-per-epoch"):
            problems.append(f"lr_schedule={self.lr_schedule!r} (cosine-per-step or cosine-per-epoch)")
        for k in ("train_images", "val_images", "test_images"):
            v = getattr(self, k)
            if v is not None and v < 1:
                problems.append(f"{k}={v} (must be >= 1 or None)")
        if problems:
            raise ValueError(f"protocol {self.name!r}: bad " + "; ".join(problems))

    @property
    def effective_batch_size(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return 64 if self.filters >= 64 else 128

    def to_dict(self) -> dict[str, Any]:
        """Every field (JSON-serialisable), with the effective batch size resolved."""
        d = asdict(self)
        d["batch_size"] = self.effective_batch_size
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Protocol:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown protocol fields {sorted(unknown)}")
        return cls(**d)

    def key(self) -> str:
        """Short hash of :meth:`to_dict` (two protocols are the same iff their keys are)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def replace(self, **changes: Any) -> Protocol:
        return replace(self, **changes)


#: every training protocol by name (plugins: entry-point group ``nasbench_xfer.protocols``)
PROTOCOLS: Registry[Protocol] = Registry("protocol", "protocols",
                                         describe_obj=lambda p: p.notes or f"{p.epochs} epochs")


def register_protocol(p: Protocol) -> Protocol:
    """Make ``p`` reachable by its name (an error if the name is taken by a different protocol)."""
    return PROTOCOLS.register(p, name=p.name)


register_protocol(Protocol("paper-search", epochs=100, num_cells=3, filters=32,
                           notes="appendix A search setting: B=5, N=3, F=32, 100 epochs"))
register_protocol(Protocol("paper-final", epochs=600, num_cells=6, filters=32,
                           notes="appendix A final training (XferNASNet, F=32)"))
register_protocol(Protocol("proxy-10ep", epochs=10, num_cells=2, filters=16, train_images=10000,
                           notes="cheap proxy of paper-search"))
register_protocol(Protocol("proxy-25ep", epochs=25, num_cells=3, filters=24, train_images=20000,
                           notes="cheaper proxy of paper-search"))
register_protocol(Protocol("nb-proxy", epochs=4, num_cells=1, filters=16, train_images=5000, val_images=2000,
                           test_images=2000,
                           notes="the package's NASNet-space benchmark (datasets/): N=1, F=16, 4 epochs on "
                                 "5,000 training images, 2,000 validation and test images"))
register_protocol(Protocol("nb-proxy-3x", epochs=12, num_cells=1, filters=16, train_images=5000,
                           val_images=2000, test_images=2000,
                           notes="nb-proxy trained 3x longer: the fidelity check of the benchmark"))
register_protocol(Protocol("smoke", epochs=1, num_cells=1, filters=8, batch_size=64, train_images=384,
                           val_images=128, test_images=128, eval_batch_size=128,
                           notes="tests only"))


def get_protocol(name: str | Protocol | dict) -> Protocol:
    """A protocol by name (or passed through, or rebuilt from its dict)."""
    if isinstance(name, Protocol):
        return name
    if isinstance(name, dict):
        return Protocol.from_dict(name)
    return PROTOCOLS.get(name)


def list_protocols(pattern: str = "*") -> list[str]:
    return PROTOCOLS.list(pattern)
