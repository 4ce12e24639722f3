"""XferNAS's transfer predictor (Wistuba 2019, sections 2.2-2.3) and NAO as its special case.

The model (:mod:`.model`), for any :class:`~nasbench_xfer.space.SearchSpace`:

* NAO's auto-encoder: token embedding (32) -> LSTM encoder (96); encoder
  outputs L2-normalised per position; architecture code ``z`` = L2-normalised
  mean of the outputs.  LSTM decoder (96) initialised with ``(z, z)``,
  attending over the encoder outputs, emitting at every position only the
  tokens ``space.token_mask()`` allows (so every decoded sequence is
  structurally valid: inputs where inputs go, operations where operations go).
* Transfer network (equation 5): ``f_i(z) = g_u(z) + r_i(z)``, ``g_u`` the
  universal network shared by all tasks, ``r_i`` the residual network of task
  ``i`` (both ReLU MLPs on ``z``); a task without evaluations has no residual
  and is predicted by ``g_u`` alone.
* Loss (equations 6-7): ``alpha * L_pred + (1 - alpha) * L_rec``, ``alpha = 0.8``,
  ``L_pred`` the squared error over the evaluations of all tasks (packed in
  one batch with a task index; all residuals computed by batched matmuls),
  ``L_rec`` the decoder's teacher-forced cross-entropy.  Adam, lr 1e-3, weight
  decay 1e-4.  Targets are z-scored per task (see :mod:`.transfer`).
* Optional symmetry augmentation (``augment=True``: ``space.augment`` copies).
* :meth:`TransferPredictor.propose`: NAO's gradient ascent in code space
  (equation 8) from given starts, step sizes tried in order.

NAO correspondence.  ``NAOPredictor(space)`` (equivalently
``TransferPredictor(space, transfer=False)``) is NAO's controller as XferNAS
compares against it: the same encoder, decoder, loss, optimiser and proposal
procedure, trained on the target task's evaluations only, with no residual
networks - its single performance head *is* the universal network ``g_u``
(NAO's "predictor" on the code: an MLP here, 128-128 ReLU; NAO's published
configuration is linear, ``universal_hidden=()``).  ``TransferPredictor`` fitted on a history
holding only the target task differs from NAO solely by the extra (then
redundant) residual head of that task.  Differences from NAO's published code,
all configurable: (1) the decoder is masked to valid tokens during training
too, not only when decoding; (2) ``position_embedding=True`` adds learned
position embeddings to the encoder's and decoder's inputs and
``general_attention=True`` scores attention as ``(W h)^T e`` instead of
``h^T e``.  Measured on 1,000 random NASNet architectures (200 held out):
NAO's exact design (both off) reconstructed only 47% of the held-out
architectures exactly after 960 Adam steps (120 epochs, batch 128); position
embeddings alone 96% after 480 steps; both on 100% after 320 steps (20
epochs, batch 64) - a decoder that generalises is what ``propose`` needs;
(3) targets are z-scored per task and the head is linear (NAO squashes an
accuracy in [0, 1] through a sigmoid); (4) NAO's encoder merges pairs of tokens
into one LSTM step ("source_length / encoder_length = 2"); here every token is
one step.

The default predictor of the ablation and of the scikit-learn view (registered as
``"xfernas"``) is :class:`~.hedged.HedgedTransferPredictor`: this network fitted on the
sources alone and fitted on the target alone, blended by out-of-sample evidence on the
target's evaluations (see :mod:`.hedged`).  The searches use :class:`TransferPredictor`
itself, with their own sequential hedge (:mod:`nasbench_xfer.xfernas`).

Batched independent fits (many seeds/configurations at once) are not
provided: ``nn.LSTM`` has no batching rule for ``torch.func.vmap``; run fits
in separate processes (each is single-threaded-friendly, see
``benchmarks/predictor_bench.py``).
"""
from __future__ import annotations

from .model import PredictorConfig, TransferNet
from .transfer import DEFAULT_STEP_SIZES, NAOPredictor, Proposal, TaskStats, TransferPredictor

__all__ = ["PredictorConfig", "TransferPredictor", "NAOPredictor", "Proposal", "TaskStats",
           "TransferNet", "DEFAULT_STEP_SIZES"]
