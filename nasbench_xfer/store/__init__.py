"""The HDF5 benchmark store: architecture evaluations per task, crash-safe.

Layout (schema v1; ``docs/store.md`` is the reference for plain-h5py readers)::

    /                     attrs: format="nasbench_xfer.store", schema_version=1,
                                 created, package_version, provenance (json)
    /space                attrs: name, config (json)
    /space/tokens         (A, L) int16   canonical token sequence of each architecture
    /space/hash           (A,)   S16     canonical hash (16 hex digits)
    /space/spec           (A,)   str     spec string (space.to_string of the canonical form)
    /space/dense_map      (D,)   int32   optional: raw spec index -> architecture id (-1: none)
    /tasks/<task>         attrs: dataset, num_classes, metric, higher_is_better,
                                 protocols (json {name: definition}), provenance (json),
                                 preprocessing (json), info (json)
    /tasks/<task>/<col>   (R,)   one dataset per evaluation column (see EVAL_COLUMNS),
                                 plus extra float columns declared by the task
    /tasks/<task>/curves  (R, E) float32 per-epoch validation metric, NaN-padded

Enumerable spaces (NB201, TransNAS micro, NAS-Bench-Graph) may implement the
dense-index protocol: ``dense_index(arch) -> int`` (index of a *raw*
specification), ``dense_index_tokens(tokens) -> ndarray`` (vectorised, for
canonical token rows) and ``dense_canonical_table() -> ndarray`` (raw index ->
raw index of its canonical form, -1 if invalid).  The store then keeps
``/space/dense_map`` and answers lookups by array indexing instead of hashing.

Integrity: the file at ``path`` is only ever replaced whole.  A writer copies
it to ``path.tmp-<pid>``, writes there, fsyncs and renames the copy over the
original (atomic on POSIX), so a writer killed at any moment leaves either the
old or the new file, each complete; a reader never sees half a row.  Appends
to a file of 1 MiB or more do not copy it: each is one checksummed record
appended (and fsynced) to ``path.journal`` (:mod:`.journal`), whose rows every
read applies on top of the file's, and which :meth:`Store.compact` (or any
whole-file commit) folds into the file.  A lock file ``path.lock`` keeps a second
writer out (it holds the writer's PID, for messages).  A path that is a symbolic
link is resolved first, so the lock and the replace act on the real file; the
file's permission bits are kept across replaces.

Checksums: every dataset is written with HDF5's fletcher32 filter, so a flipped
byte in a number is an error on reading, never a wrong value; the root attribute
``nbx_checksums`` (JSON) holds SHA-256 digests of every object's attributes and
of the variable-length string datasets (whose characters live outside the
chunks).  :meth:`Store.validate` checks both.  Stores written before checksums
existed are read as before; ``validate`` notes that they have none.

Package layout (one job per module):

* :mod:`.schema`      format constants, evaluation columns, empty layouts, value checks, errors
* :mod:`.checksums`   the store's own SHA-256 digests of attributes and strings
* :mod:`.locking`     the writer lock (the only ``fcntl`` user) and whole-file atomic commits
* :mod:`.journal`     the append journal: record format, scanning, the overlay of its rows
* :mod:`.reading`     evaluations, curves, architectures, lookups, task metadata
* :mod:`.writing`     commits, tasks, protocols, architectures, appends, compaction
* :mod:`.maintenance` validate, merge, summary
* :mod:`.core`        the :class:`Store` class that puts them together
"""
from .core import Store
from .locking import lock_holder, output_path, real_path
from .schema import (
    CHECKSUM_ATTR,
    EVAL_COLUMNS,
    FORMAT,
    SCHEMA_VERSION,
    StoreError,
    StoreLocked,
    check_task_name,
    provenance,
)

__all__ = ["CHECKSUM_ATTR", "EVAL_COLUMNS", "FORMAT", "SCHEMA_VERSION", "Store", "StoreError", "StoreLocked",
           "check_task_name", "lock_holder", "output_path", "provenance", "real_path"]
