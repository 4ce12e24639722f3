"""The interface every search space implements.

A search space turns architectures into fixed-length token sequences (for the
NAO encoder/decoder), samples them, names them canonically and reads/writes
them as strings.  The predictor, the store and the optimizers only talk to this
interface, so a new space (an imported benchmark's, say) works everywhere once
it implements it.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

#: the architecture type of a space (immutable and hashable: NASNetArch, EdgeCellArch, GraphArch)
A = TypeVar("A", bound=Hashable)


class SpaceError(ValueError):
    """An architecture, token sequence or spec string is not valid in a space."""


class SearchSpace(ABC, Generic[A]):
    """A discrete architecture space with a token encoding.

    Subclasses define ``name``, ``seq_len``, ``vocab_size``, ``token_mask()``,
    ``_from_tokens``/``encode``, ``sample``, ``canonical``, ``to_string`` and
    ``from_string``.  Architectures are immutable, hashable values; two values
    compare equal when they are the same *specification*; use :meth:`hash` (or
    :meth:`canonical`) to compare *networks*.
    """

    name: str = ""
    #: number of tokens of every encoded architecture
    seq_len: int = 0
    #: token ids run over ``range(vocab_size)``
    vocab_size: int = 0

    # ------------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        """JSON-serialisable arguments that rebuild this space (stored with a store)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.config().items()))))

    # ------------------------------------------------------------- encoding
    @abstractmethod
    def token_mask(self) -> np.ndarray:
        """Boolean array (seq_len, vocab_size): which tokens are valid at each position.

        The NAO decoder restricts its output to this mask, so that every decoded
        sequence names an architecture of the space.
        """

    @abstractmethod
    def validate(self, arch: Any) -> A:
        """``arch`` if it is a valid architecture of this space, else :class:`SpaceError` naming the problem."""

    @abstractmethod
    def encode(self, arch: A) -> tuple[int, ...]:
        """Token sequence of length :attr:`seq_len`."""

    @abstractmethod
    def _from_tokens(self, tokens: tuple[int, ...]) -> A:
        """Build an architecture from tokens that all satisfy :meth:`token_mask`."""

    def _repair_arch(self, arch: A) -> A:
        """Turn a structurally decoded architecture into a valid one (default: as is)."""
        return arch

    def _check_arch(self, arch: A) -> None:
        """Raise :class:`SpaceError` if a structurally decoded architecture is invalid (default: accept)."""
        return None

    def decode(self, tokens: Sequence[int], repair: bool = False) -> A:
        """Architecture named by ``tokens``.

        With ``repair=False`` an invalid sequence raises :class:`SpaceError` naming
        the first offending position; with ``repair=True`` it is mapped to the
        nearest valid architecture: too long is truncated, too short is padded
        with the first valid token of each position, and each invalid token is
        replaced by the valid token of that position closest to it in id.
        Never raises anything but :class:`SpaceError`.
        """
        try:
            toks = [int(t) for t in tokens]
        except (TypeError, ValueError) as exc:
            raise SpaceError(f"{self.name}: tokens must be integers ({exc})") from None
        mask = self.token_mask()
        if len(toks) != self.seq_len:
            if not repair:
                raise SpaceError(
                    f"{self.name}: expected {self.seq_len} tokens, got {len(toks)}")
            toks = toks[: self.seq_len] + [
                int(np.flatnonzero(mask[i])[0]) for i in range(len(toks), self.seq_len)]
        for i, t in enumerate(toks):
            if 0 <= t < self.vocab_size and mask[i, t]:
                continue
            allowed = np.flatnonzero(mask[i])
            if not repair:
                raise SpaceError(
                    f"{self.name}: token {t} at position {i} ({self.describe_position(i)}) "
                    f"is not valid; allowed: {allowed.tolist()}")
            toks[i] = int(allowed[np.argmin(np.abs(allowed - t))])
        arch = self._from_tokens(tuple(toks))
        if repair:
            return self._repair_arch(arch)
        self._check_arch(arch)
        return arch

    def describe_position(self, i: int) -> str:
        """Human-readable meaning of token position ``i`` (used in error messages)."""
        return f"position {i}"

    def one_hot(self, archs: Sequence[A]) -> np.ndarray:
        """Flattened one-hot token encoding (N, number of valid slots), restricted to the
        slots :meth:`token_mask` allows (the features of the token-based regressors)."""
        toks = np.asarray([self.encode(a) for a in archs], dtype=np.int64).reshape(-1, self.seq_len)
        out = np.zeros((len(toks), self.seq_len, self.vocab_size), dtype=np.float32)
        np.put_along_axis(out, toks[:, :, None], 1.0, axis=2)
        return out[:, self.token_mask()]

    def vocabulary(self) -> list[str]:
        """Name of each token id (documentation and debugging)."""
        return [str(i) for i in range(self.vocab_size)]

    def candidate_pool(self, n: int, rng: np.random.Generator) -> list[A]:
        """``n`` distinct sampled architectures: the pool an optimizer screens when no table
        lists the candidates (a surrogate or a live search).  An enumerable space with at
        most ``2 n`` architectures gives its distinct architectures in random order instead
        (at most ``n``), so a pool larger than the space is the whole space, not an error."""
        return self.sample_many(n, rng)

    # ------------------------------------------------------------ identity
    @abstractmethod
    def sample(self, rng: np.random.Generator) -> A:
        """One architecture drawn uniformly over the valid choices of each decision."""

    def sample_many(self, n: int, rng: np.random.Generator, unique: bool = True) -> list[A]:
        """``n`` sampled architectures, distinct under :meth:`hash` if ``unique``."""
        out: list[A] = []
        seen: set[str] = set()
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 100 * n + 1000:
                raise SpaceError(f"{self.name}: could not sample {n} distinct architectures")
            a = self.sample(rng)
            if unique:
                h = self.hash(a)
                if h in seen:
                    continue
                seen.add(h)
            out.append(a)
        return out

    @abstractmethod
    def canonical(self, arch: A) -> A:
        """The representative of ``arch``'s equivalence class (same network)."""

    #: True where an older nasbench_xfer hashed this space's architectures by :meth:`hash`'s
    #: base rule and the space now hashes otherwise: stores written then are refused on open
    hash_rule_changed: bool = False

    def hash(self, arch: A) -> str:
        """Canonical hash: 16 hex digits, equal for equivalent specifications."""
        return self._digest(self.encode(self.canonical(arch)))

    def _digest(self, tokens: Sequence[int]) -> str:
        """The 16-hex-digit hash of a canonical token sequence in this space."""
        return hashlib.sha1((self.name + ":" + ",".join(map(str, tokens))).encode()).hexdigest()[:16]

    @abstractmethod
    def to_string(self, arch: A) -> str:
        """Compact one-line spec string."""

    @abstractmethod
    def from_string(self, text: str) -> A:
        """Parse a spec string (raises :class:`SpaceError` naming the problem)."""

    def augment(self, arch: A, rng: np.random.Generator) -> A:
        """An equivalent specification of ``arch`` (symmetry augmentation); default: ``arch``."""
        return arch

    # ---------------------------------------------------- exhaustive spaces
    #: number of architectures if the space is small enough to enumerate, else None
    size: int | None = None

    def enumerate(self) -> Iterator[A]:
        """Every canonical architecture (only for enumerable spaces)."""
        raise NotImplementedError(f"{self.name} is too large to enumerate")


class EnumerableSpace(SearchSpace[A]):
    """A space small enough to enumerate, whose specs have a dense integer index.

    The store uses the dense index for vectorised lookups (a raw-spec -> row table),
    and the surrogates use it to answer the whole space from one table.  Canonical
    forms are expressed as dense indices too: ``dense_canonical_table()[i]`` is the
    dense index of the canonical form of the spec with dense index ``i``.
    """

    #: number of raw specs (dense indices run over ``range(dense_size)``)
    dense_size: int = 0

    def candidate_pool(self, n: int, rng: np.random.Generator) -> list[A]:
        if int(self.size or 0) > 2 * n:
            return self.sample_many(n, rng)
        distinct = self.distinct_archs()
        return [distinct[i] for i in rng.permutation(len(distinct))[:n]]

    def distinct_archs(self) -> list[A]:
        """The architectures of :meth:`enumerate` that are distinct under :meth:`hash`, in order."""
        seen: set[str] = set()
        out = []
        for a in self.enumerate():
            h = self.hash(a)
            if h not in seen:
                seen.add(h)
                out.append(a)
        return out

    @abstractmethod
    def enumerate(self) -> Iterator[A]:
        """Every architecture of the space."""

    @abstractmethod
    def dense_index(self, arch: A) -> int:
        """Dense index of a raw spec, in ``range(dense_size)``."""

    @abstractmethod
    def dense_index_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`dense_index` of token rows, shape (N, seq_len) -> (N,) int64."""

    @abstractmethod
    def dense_canonical_table(self) -> np.ndarray:
        """Read-only int64 array (dense_size,): dense index of each spec's canonical form."""
