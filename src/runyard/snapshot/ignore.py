"""Which paths of a code folder a snapshot leaves out.

The rules are written in gitignore syntax. They come from ``.runyardignore`` files when the
code folder has one at its top, otherwise from ``.gitignore`` files: a ``.runyardignore``
*replaces* the ``.gitignore`` rules (copy the patterns you still want), which lets a person
snapshot files git ignores, or ignore files git keeps. A rules file in a subfolder applies
below that subfolder, and the deepest file with a matching pattern decides, as in git. A
folder that is left out is not entered, so nothing below it can be taken back in.

Some paths are always left out, whatever the rules say: git's own ``.git``, Python's
bytecode caches (``__pycache__/``, ``*.pyc``), and the top-level ``outputs/`` and ``logs/``
folders, which belong to the runs that the working folder is laid out for.

Paths are relative to the code folder, ``/``-separated, without a leading ``./``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runyard.errors import SnapshotError

if TYPE_CHECKING:
    # Imported where first needed: importing pathspec costs ~20 ms (it pulls in asyncio).
    from pathspec import GitIgnoreSpec

RUNYARD_IGNORE = ".runyardignore"
GIT_IGNORE = ".gitignore"
_RUN_FOLDERS = frozenset({"outputs", "logs"})


class IgnoreRules:
    """The rules in force in one folder of a code folder.

    Build the rules of the top folder with :meth:`for_code_dir`, then those of each subfolder
    with :meth:`enter` while walking down; each holds its parents' rules and adds its own."""

    def __init__(self, filename: str, chain: tuple[tuple[str, GitIgnoreSpec], ...] = ()):
        #: The name of the rules files read in every folder.
        self.filename = filename
        # (folder prefix such as "" or "src/", its patterns), shallowest first.
        self._chain = chain

    @classmethod
    def for_code_dir(cls, code_dir: Path) -> IgnoreRules:
        """The rules at the top of ``code_dir``: its ``.runyardignore``, else its ``.gitignore``."""
        filename = RUNYARD_IGNORE if (code_dir / RUNYARD_IGNORE).is_file() else GIT_IGNORE
        return cls(filename).enter("", code_dir)

    def enter(self, prefix: str, folder: Path) -> IgnoreRules:
        """The rules in force in ``folder``, found at ``prefix`` (``""`` or ending in ``/``)."""
        spec = _read_rules(folder / self.filename, shown=prefix + self.filename)
        if spec is None:
            return self
        return IgnoreRules(self.filename, (*self._chain, (prefix, spec)))

    def ignored(self, path: str, *, is_dir: bool) -> bool:
        """Whether ``path`` (a file, or a folder when ``is_dir``) is left out."""
        if _always_ignored(path, is_dir=is_dir):
            return True
        probe = path + "/" if is_dir else path
        for prefix, spec in reversed(self._chain):
            verdict = spec.check_file(probe[len(prefix) :]).include
            if verdict is not None:
                return verdict
        return False


def _always_ignored(path: str, *, is_dir: bool) -> bool:
    name = path.rpartition("/")[2]
    if name == ".git":
        return True
    if is_dir:
        return name == "__pycache__" or path in _RUN_FOLDERS
    return name.endswith(".pyc")


def _read_rules(path: Path, *, shown: str) -> GitIgnoreSpec | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        raise SnapshotError(f"cannot read {shown} in the code folder: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        return None
    from pathspec import GitIgnoreSpec

    return GitIgnoreSpec.from_lines(lines)
