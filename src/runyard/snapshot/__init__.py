"""Code snapshots: the immutable, content-addressed copy of the code folder a run starts from.

- :func:`take_snapshot` walks a code folder (honouring ``.runyardignore``, else ``.gitignore``;
  see :mod:`runyard.snapshot.ignore`), checks the size limits, and stores each file's contents
  once, by sha256 (:mod:`runyard.snapshot.store`).
- :func:`materialize` lays a snapshot out as a run's working folder, as plain copies.
- :func:`read_manifest` lists a snapshot's files.
- :func:`git_info` records the commit and the uncommitted changes when the folder is in git.
"""

from runyard.snapshot.git import GitInfo, git_info
from runyard.snapshot.ignore import IgnoreRules
from runyard.snapshot.store import (
    ManifestEntry,
    Snapshot,
    materialize,
    read_manifest,
    take_snapshot,
)

__all__ = [
    "GitInfo",
    "IgnoreRules",
    "ManifestEntry",
    "Snapshot",
    "git_info",
    "materialize",
    "read_manifest",
    "take_snapshot",
]
