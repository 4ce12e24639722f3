"""Networks of the transfer predictor: NAO's encoder-decoder and the transfer heads.

* :class:`Codec` - NAO's auto-encoder.  Tokens are embedded (``emb_size``, 32),
  run through an LSTM encoder (``hidden_size``, 96) whose outputs are
  L2-normalised along the feature dimension (as NAO does); the architecture
  code is the mean of those outputs over the positions, L2-normalised again.
  The LSTM decoder (``decoder_hidden_size``, 96) starts from ``(code, code)``
  as its ``(h, c)`` state, reads the previous token (a start symbol first) and
  attends over the encoder outputs (NAO's dot-product attention: the context
  vector and the LSTM output are concatenated and mapped through
  ``tanh(Linear)``).  Its logits are restricted to the space's
  ``token_mask()`` at every position, in training (the reconstruction
  cross-entropy is over the valid tokens only) and in greedy decoding, so a
  decoded sequence always satisfies the mask.  Two additions to NAO, on by
  default (``position_embedding``, ``general_attention``; the package
  docstring gives the measurements): learned position embeddings added to the
  encoder's and the decoder's inputs, and attention scored as ``(W h)^T e``.
* :class:`MLP` - the universal network ``g_u`` (a plain feed-forward net on the code).
* :class:`ResidualHeads` - the residual networks ``r_i`` of all tasks as one
  module: per-task weight tensors ``(T, fan_in, fan_out)``, so the residuals of
  every task are computed with one batched matmul per layer and the value of
  each row is gathered by its task index (no Python loop over tasks).  The last
  layer starts at zero, so an untrained residual adds nothing.
* :class:`TransferNet` - codec + universal + residuals:
  ``f_i(a) = g_u(z(a)) + r_i(z(a))`` (equation 5); task index ``-1`` means
  "universal network only".

Everything here works in normalised target units; :mod:`.transfer` handles the
per-task normalisation, training, prediction and proposal.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PredictorConfig", "Codec", "MLP", "ResidualHeads", "TransferNet", "HEADS"]

#: transfer heads (see :class:`PredictorConfig`)
HEADS = ("calibrated", "paper")


@dataclass
class PredictorConfig:
    """Hyper-parameters of the transfer predictor (paper defaults where the paper gives one).

    Model (section 2.3, "implementation details", and NAO):

    * ``emb_size`` 32, ``hidden_size`` 96 (encoder LSTM), ``decoder_hidden_size`` 96.
    * ``universal_hidden`` - hidden layer sizes of the universal network (ReLU MLP).
    * ``residual_hidden`` - hidden layer sizes of each task's residual network.
    * ``dropout`` - dropout in the heads (NAO's ``mlp_dropout``; 0 disables it).
    * ``encoder_dropout`` - dropout on the encoder LSTM's outputs while training (NAO's CNN
      configuration: 0.1; default 0, as the package's measurements were made).

    Training (equation 6): ``alpha`` 0.8, Adam with ``lr`` 1e-3 and ``weight_decay``
    1e-4 (L2, as NAO's Adam), gradient-norm clipping ``grad_clip`` (NAO: 5),
    ``epochs`` passes over the (shuffled) rows of all tasks in mini-batches of
    ``batch_size``.  ``augment`` adds ``augment_copies`` symmetry-augmented
    copies (``space.augment``) of every evaluated architecture with the same
    score, once before training (NAO's "expand").

    Transfer head (``head``):

    * ``"paper"`` - the paper's transfer head: ``f_i(z) = g_u(z) + r_i(z)``, every
      row of every task weighted alike, no penalty on the residual
      (``residual_shrinkage`` must be 0).  The rest of the model is this
      package's NAO codec, whose differences from NAO's published code (position
      embeddings, general attention, head sizes the paper does not give, training
      length) are listed in the README's "Paper fidelity".
    * ``"calibrated"`` (default) - ``f_i(z) = a_i * g_u(z) + b_i + r_i(z)``: a
      learned per-task scale ``a_i`` (starts at 1) and shift ``b_i`` (starts at 0)
      on the universal network's output absorb a task's change of scale (a
      target z-scored over 10 evaluations has a noisy mean and spread) with two
      numbers instead of the residual, and the residual is shrunk towards 0 by
      the penalty ``residual_shrinkage / n_i * (r_i(z)^2 + (a_i - 1)^2)`` on each
      of task ``i``'s ``n_i`` evaluations (the less a task has been evaluated,
      the more its residual is pulled to zero and its scale to 1 - the
      universal network's own spread, which is what a z-scored task has on
      average - so a handful of target points cannot undo what the sources
      taught the universal network; the scale prior keeps a small ``a_i`` from
      handing the ranking to the residual).  The measurements behind
      it are in ``docs/results/ablation/`` and the README.

    ``transfer=False`` gives NAO (see :mod:`nasbench_xfer.predictor`); NAO has no
    residual or per-task head, so ``head`` does not change it.
    ``device``: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    ``seed`` makes fitting deterministic (on CPU; CUDA kernels may differ slightly).
    """

    emb_size: int = 32
    hidden_size: int = 96
    decoder_hidden_size: int = 96
    universal_hidden: tuple[int, ...] = (128, 128)
    residual_hidden: tuple[int, ...] = (64,)
    position_embedding: bool = True
    general_attention: bool = True
    dropout: float = 0.0
    encoder_dropout: float = 0.0
    alpha: float = 0.8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    epochs: int = 40
    min_steps: int = 600
    batch_size: int = 64
    augment: bool = False
    augment_copies: int = 1
    transfer: bool = True
    head: str = "calibrated"
    residual_shrinkage: float = 50.0
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("universal_hidden", "residual_hidden"):
            v = getattr(self, name)
            if (isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple))
                    or not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) for h in v)):
                raise ValueError(f"PredictorConfig.{name} must be a list of layer sizes (integers), "
                                 f"e.g. [128, 128] or [] for a linear head; got {v!r}")
            setattr(self, name, tuple(int(h) for h in v))
        for name in ("emb_size", "hidden_size", "decoder_hidden_size", "epochs", "batch_size",
                     "augment_copies", "min_steps"):
            v = getattr(self, name)
            low = 0 if name in ("epochs", "min_steps") else 1
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
                raise ValueError(f"PredictorConfig.{name} must be a positive integer, got {v!r}")
        if any(h < 1 for h in self.universal_hidden + self.residual_hidden):
            raise ValueError("PredictorConfig: hidden layer sizes must be positive")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"PredictorConfig.alpha must be in [0, 1], got {self.alpha!r}")
        for name in ("dropout", "encoder_dropout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                raise ValueError(f"PredictorConfig.{name} must be in [0, 1), got {v!r}")
        if self.head not in HEADS:
            raise ValueError(f"PredictorConfig.head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if not (isinstance(self.residual_shrinkage, (int, float)) and math.isfinite(self.residual_shrinkage)
                and self.residual_shrinkage >= 0):
            raise ValueError("PredictorConfig.residual_shrinkage must be a finite number >= 0, "
                             f"got {self.residual_shrinkage!r}")
        if self.head == "paper" and self.residual_shrinkage > 0:
            raise ValueError("PredictorConfig: head='paper' is the paper's model, which does not shrink "
                             "the residual; set residual_shrinkage=0 (or use head='calibrated')")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("PredictorConfig: lr must be > 0 and weight_decay >= 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["universal_hidden"] = list(self.universal_hidden)
        d["residual_hidden"] = list(self.residual_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PredictorConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"PredictorConfig: unknown fields {unknown}")
        return cls(**d)

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"PredictorConfig.device={self.device!r} but CUDA is not available")
        return dev


# --------------------------------------------------------------------- codec
class Codec(nn.Module):
    """NAO's encoder-decoder with a decoder restricted to a space's token mask."""

    #: (seq_len, vocab_size) bool buffer: which tokens the decoder may emit at each position
    valid: torch.Tensor

    def __init__(self, token_mask: np.ndarray, emb_size: int = 32, hidden_size: int = 96,
                 decoder_hidden_size: int = 96, position_embedding: bool = True, general_attention: bool = True,
                 encoder_dropout: float = 0.0):
        super().__init__()
        mask = np.asarray(token_mask, dtype=bool)
        if mask.ndim != 2 or mask.shape[0] < 1 or mask.shape[1] < 1:
            raise ValueError(f"token_mask must be a (seq_len, vocab_size) array, got shape {mask.shape}")
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise ValueError(f"token_mask allows no token at position(s) {empty.tolist()}")
        self.seq_len, self.vocab_size = mask.shape
        self.hidden_size = hidden_size
        self.decoder_hidden_size = decoder_hidden_size
        self.encoder_dropout = float(encoder_dropout)
        self.register_buffer("valid", torch.from_numpy(mask.copy()), persistent=False)
        self.embedding = nn.Embedding(self.vocab_size, emb_size)
        # learned position embeddings (not in NAO; see the module docstring), N(0, 1) like nn.Embedding
        self.pos_embedding = (nn.Parameter(torch.randn(self.seq_len, emb_size))
                              if position_embedding else None)
        self.dec_pos_embedding = (nn.Parameter(torch.randn(self.seq_len, decoder_hidden_size))
                                  if position_embedding else None)
        self.encoder = nn.LSTM(emb_size, hidden_size, batch_first=True)
        # decoder input vocabulary: the space's tokens plus a start symbol (id vocab_size)
        self.dec_embedding = nn.Embedding(self.vocab_size + 1, decoder_hidden_size)
        self.decoder = nn.LSTM(decoder_hidden_size, decoder_hidden_size, batch_first=True)
        # bridges only when the encoder and decoder sizes differ (NAO: equal, identity)
        self.init_bridge = (nn.Linear(hidden_size, decoder_hidden_size)
                            if hidden_size != decoder_hidden_size else None)
        self.ctx_bridge = (nn.Linear(hidden_size, decoder_hidden_size, bias=False)
                           if hidden_size != decoder_hidden_size else None)
        self.attn_out = nn.Linear(2 * decoder_hidden_size, decoder_hidden_size)
        # Luong "general" attention score q(h)^T e (NAO: plain dot product h^T e)
        self.attn_query = (nn.Linear(decoder_hidden_size, decoder_hidden_size, bias=False)
                           if general_attention else None)
        self.out = nn.Linear(decoder_hidden_size, self.vocab_size)

    # ---- encoder
    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(outputs, code)``: L2-normalised encoder outputs ``(B, L, H)`` and code ``(B, H)``."""
        emb = self.embedding(tokens)
        if self.pos_embedding is not None:
            emb = emb + self.pos_embedding
        out, _ = self.encoder(emb)
        if self.encoder_dropout > 0:  # NAO's encoder dropout (training only)
            out = F.dropout(out, self.encoder_dropout, self.training)
        out = F.normalize(out, p=2, dim=-1)
        return out, self.pool(out)

    @staticmethod
    def pool(outputs: torch.Tensor) -> torch.Tensor:
        """The architecture code: mean over positions, L2-normalised (NAO)."""
        return F.normalize(outputs.mean(dim=1), p=2, dim=-1)

    # ---- decoder
    def _init_state(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = code if self.init_bridge is None else torch.tanh(self.init_bridge(code))
        h = h.unsqueeze(0).contiguous()
        return h, h

    def _context(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs if self.ctx_bridge is None else self.ctx_bridge(outputs)

    def _attend_logits(self, dec_out: torch.Tensor, ctx: torch.Tensor,
                       positions: slice | int) -> torch.Tensor:
        q = dec_out if self.attn_query is None else self.attn_query(dec_out)
        scores = torch.bmm(q, ctx.transpose(1, 2))             # (B, l, L)
        mix = torch.bmm(torch.softmax(scores, dim=-1), ctx)          # (B, l, H)
        h = torch.tanh(self.attn_out(torch.cat((mix, dec_out), dim=-1)))
        logits = self.out(h)                                         # (B, l, V)
        valid = self.valid[positions]
        return logits.masked_fill(~valid, float("-inf"))

    def decode_logits(self, outputs: torch.Tensor, code: torch.Tensor,
                      tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced masked logits ``(B, L, V)`` for reconstructing ``tokens``."""
        start = torch.full_like(tokens[:, :1], self.vocab_size)
        inp = torch.cat((start, tokens[:, :-1]), dim=1)
        emb = self.dec_embedding(inp)
        if self.dec_pos_embedding is not None:
            emb = emb + self.dec_pos_embedding
        dec_out, _ = self.decoder(emb, self._init_state(code))
        return self._attend_logits(dec_out, self._context(outputs), slice(None))

    def greedy(self, outputs: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Greedy masked decoding: tokens ``(B, L)``, each valid at its position."""
        B = outputs.shape[0]
        ctx = self._context(outputs)
        state = self._init_state(code)
        tok = torch.full((B, 1), self.vocab_size, dtype=torch.long, device=outputs.device)
        result = []
        for i in range(self.seq_len):
            emb = self.dec_embedding(tok)
            if self.dec_pos_embedding is not None:
                emb = emb + self.dec_pos_embedding[i]
            dec_out, state = self.decoder(emb, state)
            logits = self._attend_logits(dec_out, ctx, slice(i, i + 1))
            tok = logits.argmax(dim=-1)
            result.append(tok)
        return torch.cat(result, dim=1)


# --------------------------------------------------------------------- heads
class MLP(nn.Module):
    """ReLU feed-forward network ``in_size -> hidden... -> 1``."""

    def __init__(self, in_size: int, hidden: Sequence[int], dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_size
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = h
        layers.append(nn.Linear(prev, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class ResidualHeads(nn.Module):
    """``T`` independent ReLU MLPs ``in_size -> hidden... -> 1`` evaluated with batched matmuls.

    ``forward(x)`` returns ``(N, T)``: every task's residual for every row
    (one matmul per layer, for all tasks at once); :meth:`gather` picks each
    row's own task.  Initialised like ``nn.Linear`` except the output layer,
    which starts at zero.
    """

    def __init__(self, num_tasks: int, in_size: int, hidden: Sequence[int], dropout: float = 0.0):
        super().__init__()
        self.num_tasks = num_tasks
        self.dropout = dropout
        sizes = [in_size, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for k, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = 1.0 / math.sqrt(fi)
            last = k == len(sizes) - 2
            w = torch.zeros(num_tasks, fi, fo) if last else torch.empty(num_tasks, fi, fo).uniform_(-bound, bound)
            b = torch.zeros(num_tasks, fo) if last else torch.empty(num_tasks, fo).uniform_(-bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = self.num_tasks
        w0, b0 = self.weights[0], self.biases[0]
        # first layer: all tasks in one (N, D) @ (D, T*H) matmul
        h = (x @ w0.permute(1, 0, 2).reshape(w0.shape[1], -1)).view(x.shape[0], T, -1) + b0
        for k in range(1, len(self.weights)):
            h = torch.relu(h)
            if self.dropout > 0:
                h = F.dropout(h, self.dropout, self.training)
            h = torch.einsum("nti,tio->nto", h, self.weights[k]) + self.biases[k]
        return h.squeeze(-1)

    @staticmethod
    def gather(all_tasks: torch.Tensor, task_idx: torch.Tensor) -> torch.Tensor:
        """Row ``n``'s residual for task ``task_idx[n]`` (0 where ``task_idx < 0``)."""
        own = all_tasks.gather(1, task_idx.clamp(min=0).unsqueeze(1)).squeeze(1)
        return torch.where(task_idx >= 0, own, torch.zeros_like(own))


class TransferNet(nn.Module):
    """Codec + universal network + residual networks of ``num_tasks`` tasks (may be 0)."""

    def __init__(self, token_mask: np.ndarray, num_tasks: int, cfg: PredictorConfig):
        super().__init__()
        self.codec = Codec(token_mask, cfg.emb_size, cfg.hidden_size, cfg.decoder_hidden_size,
                           cfg.position_embedding, cfg.general_attention, cfg.encoder_dropout)
        self.universal = MLP(cfg.hidden_size, cfg.universal_hidden, cfg.dropout)
        self.num_tasks = num_tasks
        self.residual = (ResidualHeads(num_tasks, cfg.hidden_size, cfg.residual_hidden, cfg.dropout)
                         if num_tasks > 0 else None)
        # per-task scale and shift of the universal output (head="calibrated")
        self.calibrated = cfg.head == "calibrated" and num_tasks > 0
        if self.calibrated:
            self.task_scale = nn.Parameter(torch.ones(num_tasks))
            self.task_shift = nn.Parameter(torch.zeros(num_tasks))

    def head_parts(self, code: torch.Tensor, task_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prediction, residual)``: the normalised prediction ``[a_i *] g_u(z) [+ b_i] + r_i(z)``
        and the residual term alone (0 for rows with ``task_idx < 0``, which get ``g_u(z)``)."""
        pred = self.universal(code)
        res = torch.zeros_like(pred)
        if self.residual is not None and bool((task_idx >= 0).any()):
            own = task_idx >= 0
            if self.calibrated:
                k = task_idx.clamp(min=0)
                pred = torch.where(own, self.task_scale[k] * pred + self.task_shift[k], pred)
            res = ResidualHeads.gather(self.residual(code), task_idx)
            pred = pred + res
        return pred, res

    def head(self, code: torch.Tensor, task_idx: torch.Tensor) -> torch.Tensor:
        """Normalised prediction (see :meth:`head_parts`)."""
        return self.head_parts(code, task_idx)[0]

    def forward(self, tokens: torch.Tensor, task_idx: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(prediction (B,), residual (B,), masked reconstruction logits (B, L, V))``, teacher forced."""
        outputs, code = self.codec.encode(tokens)
        pred, res = self.head_parts(code, task_idx)
        return pred, res, self.codec.decode_logits(outputs, code, tokens)
