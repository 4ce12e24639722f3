"""Architecture features for the tree surrogates: computed from token sequences alone.

For a space with ``seq_len`` positions and the valid-token mask ``M`` (``space.token_mask()``):

* **one-hot per position**: for every position ``i`` and every token ``t`` valid there
  (``M[i, t]``), a 0/1 column "position ``i`` holds ``t``" (``M.sum()`` columns);
* **token counts**: for every token id that is valid somewhere, how many positions hold it
  (``vocab_size`` columns at most; for the NASNet space these are the operation counts of
  both cells together, and the input-wiring histogram).

Architectures are canonicalised first (``space.canonical``) when they come as objects, so
equivalent specifications (e.g. swapped branches of a NASNet block) get equal features.
The batch path (:func:`token_features`) takes token rows as they are, vectorised, for
speed: pass canonical tokens (a store's tokens are canonical).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ..space.base import SearchSpace

__all__ = ["FeatureMap"]


class FeatureMap:
    """The documented featurisation of one space (see the module doc)."""

    def __init__(self, space: SearchSpace):
        self.space = space
        mask = np.asarray(space.token_mask(), dtype=bool)
        self.seq_len, self.vocab = mask.shape
        pos, tok = np.nonzero(mask)
        self._onehot_col = np.full(mask.shape, -1, dtype=np.int64)
        self._onehot_col[pos, tok] = np.arange(len(pos))
        self.n_onehot = len(pos)
        used = np.nonzero(mask.any(axis=0))[0]
        self._used = used
        self.n_features = self.n_onehot + len(used)
        vocab_names = space.vocabulary() if hasattr(space, "vocabulary") else [str(t) for t in range(self.vocab)]
        self.names = [f"pos{p}={vocab_names[t]}" for p, t in zip(pos, tok)] + \
                     [f"count({vocab_names[t]})" for t in used]

    def token_features(self, tokens: np.ndarray, sparse: bool = False) -> Any:
        """Feature matrix (N, n_features) float32 of token rows (N, seq_len); ``sparse=True``
        gives the same matrix as a ``scipy.sparse.csr_matrix`` (a row holds ``seq_len`` one-hot
        entries and the token counts, so a large batch is mostly zeros: the trees answer it
        faster from the sparse form)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"expected token rows of shape (N, {self.seq_len}) for space {self.space.name}, "
                             f"got {tokens.shape}")
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= self.vocab):
            raise ValueError(f"token ids must lie in 0..{self.vocab - 1} for space {self.space.name}")
        n = len(tokens)
        cols = self._onehot_col[np.arange(self.seq_len)[None, :], tokens]          # (N, L)
        if (cols < 0).any():
            r, c = np.argwhere(cols < 0)[0]
            raise ValueError(f"row {r}: token {tokens[r, c]} is not valid at position {c} "
                             f"({self.space.describe_position(int(c))})")
        if sparse:
            return self._sparse(tokens, cols)
        X = np.zeros((n, self.n_features), dtype=np.float32)
        X[np.repeat(np.arange(n), self.seq_len), cols.ravel()] = 1.0
        X[:, self.n_onehot:] = self._counts(tokens)   # one bincount over (row, token) pairs
        return X

    def _counts(self, tokens: np.ndarray) -> np.ndarray:
        n = len(tokens)
        counts = np.bincount((tokens + self.vocab * np.arange(n)[:, None]).ravel(), minlength=n * self.vocab)
        return counts.reshape(n, self.vocab)[:, self._used]

    def _sparse(self, tokens: np.ndarray, cols: np.ndarray) -> Any:
        from scipy.sparse import csr_matrix
        n, length = cols.shape
        counts = self._counts(tokens)                                              # (N, U)
        width = length + counts.shape[1]
        # every row stores the same number of entries: its seq_len one-hot columns (increasing
        # with the position), then every count column, zeros included (a stored zero reads as
        # an absent one), so the matrix is three dense blocks and no per-row masking is needed
        idx = np.empty((n, width), dtype=np.int32)
        idx[:, :length] = cols
        idx[:, length:] = self.n_onehot + np.arange(counts.shape[1])
        val = np.empty((n, width), dtype=np.float32)
        val[:, :length] = 1.0
        val[:, length:] = counts
        indptr = np.arange(0, n * width + 1, width, dtype=np.int64)
        return csr_matrix((val.ravel(), idx.ravel(), indptr), shape=(n, self.n_features))

    def arch_tokens(self, archs: Sequence[Hashable]) -> np.ndarray:
        """Canonical token rows of architectures (or spec strings)."""
        rows = []
        for a in archs:
            if isinstance(a, str):
                a = self.space.from_string(a)
            rows.append(self.space.encode(self.space.canonical(a)))
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), self.seq_len)

    def __call__(self, archs: Sequence[Hashable]) -> np.ndarray:
        return self.token_features(self.arch_tokens(archs))
