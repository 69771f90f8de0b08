"""Reading pip requirements: a spec's ``pip:`` list, requirements files, a conda file's pip section.

Everything is normalized so that what does not change the installed packages does not change
the environment's hash: requirement lines are parsed (PEP 508) and rewritten with canonical
names, sorted extras and sorted version specifiers, then sorted and deduplicated; a
requirements file counts by its content, never by its path.

Requirements-file syntax understood (as pip documents it): comments, ``\\`` continuations,
``-r``/``--requirement`` (inlined, relative to the including file), ``-c``/``--constraint``,
``-i``/``--index-url``, ``--extra-index-url``, ``-f``/``--find-links``, ``--no-index``, and
per-requirement options such as ``--hash`` (kept verbatim). Other option lines (``--pre``,
``--only-binary``...) are passed to the installer verbatim. ``${VAR}`` references are left for
the installer to expand, so credentials never reach the cache or the hash.

Local paths (``./pkg``, ``../dist/x.whl``) resolve against the folder of the file naming them
(the code folder for the ``pip:`` list). A local *file* counts by its content (sha256); a local
*folder* counts by its path only: change its path, or pin a built wheel, to force a rebuild.
Editable requirements (``-e``) are refused: a shared cached environment cannot point into one
run's code folder.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from runyard.errors import SpecError

#: Options that take a value, by spelling, with the name used below.
_VALUED = {
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
    "-i": "index_url",
    "--index-url": "index_url",
    "--extra-index-url": "extra_index_url",
    "-f": "find_links",
    "--find-links": "find_links",
    "-e": "editable",
    "--editable": "editable",
}
_FLAGS = {"--no-index": "no_index"}
#: Where trailing per-requirement options (``--hash=...``) start on a requirement line.
_TRAILING_OPTION = re.compile(r"\s+(?=--?[A-Za-z])")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MAX_DEPTH = 20


@dataclass(frozen=True)
class Requirements:
    """Normalized requirements with the index options their files named."""

    requirements: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    #: Other pip options, verbatim (``--pre``, ``--only-binary :all:``).
    options: tuple[str, ...] = ()
    #: ``(absolute path, sha256)`` of every local file named as a requirement.
    local_files: tuple[tuple[str, str], ...] = ()


class RequirementsReader:
    """Collects requirement lines from several sources, then :meth:`result` normalizes them.

    ``spec_field`` names the spec field errors are reported against (``environment.pip``)."""

    def __init__(self, spec_field: str) -> None:
        self.spec_field = spec_field
        self._field = spec_field  # the field being read now
        self._reqs: set[str] = set()
        self._constraints: set[str] = set()
        self._index_url: str | None = None
        self._extra: list[str] = []
        self._find_links: list[str] = []
        self._no_index = False
        self._options: set[str] = set()
        self._files: dict[str, str] = {}

    def add_lines(
        self, lines: Iterable[str], *, base_dir: Path, origin: str, spec_field: str | None = None
    ) -> None:
        """Add requirement lines (a ``pip:`` list); ``origin`` names them in errors
        (``pip[2]``), against ``spec_field`` (default: the reader's)."""
        self._field = spec_field or self.spec_field
        try:
            self._add(lines, base_dir=base_dir, origin=origin, constraint=False, depth=0)
        finally:
            self._field = self.spec_field

    def add_file(self, path: Path, *, spec_field: str | None = None) -> None:
        """Add a requirements file, which must exist; errors name its lines."""
        self._field = spec_field or self.spec_field
        try:
            self._read(path, constraint=False, depth=0)
        finally:
            self._field = self.spec_field

    def result(self) -> Requirements:
        return Requirements(
            requirements=tuple(sorted(self._reqs)),
            constraints=tuple(sorted(self._constraints)),
            index_url=self._index_url,
            extra_index_urls=tuple(dict.fromkeys(self._extra)),
            find_links=tuple(dict.fromkeys(self._find_links)),
            no_index=self._no_index,
            options=tuple(sorted(self._options)),
            local_files=tuple(sorted(self._files.items())),
        )

    # -- internals -------------------------------------------------------------------------
    def _fail(self, problem: str) -> SpecError:
        return SpecError(problem, field=self._field)

    def _read(self, path: Path, *, constraint: bool, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise self._fail(f"{path}: requirements files include each other too deeply")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self._fail(f"requirements file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise self._fail(f"cannot read requirements file {str(path)!r}: {e}") from None
        self._add(
            _logical_lines(text),
            base_dir=path.parent,
            origin=path.name,
            constraint=constraint,
            depth=depth,
            numbered=True,
        )

    def _add(
        self,
        lines: Iterable[str],
        *,
        base_dir: Path,
        origin: str,
        constraint: bool,
        depth: int,
        numbered: bool = False,
    ) -> None:
        for number, raw in enumerate(lines, start=1):
            where = f"{origin} line {number}" if numbered else f"{origin}[{number - 1}]"
            line = _COMMENT.sub("", raw).strip()
            if not line:
                continue
            if line.startswith("-"):
                self._option_line(line, base_dir=base_dir, where=where, depth=depth)
            else:
                norm = self._requirement(line, base_dir=base_dir, where=where)
                (self._constraints if constraint else self._reqs).add(norm)

    def _option_line(self, line: str, *, base_dir: Path, where: str, depth: int) -> None:
        try:
            tokens = shlex.split(line)
        except ValueError as e:
            raise self._fail(f"{where}: cannot read {line!r}: {e}") from None
        first = _split_option(tokens[0])[0]
        if first not in _VALUED and first not in _FLAGS:
            self._options.add(" ".join(tokens))  # an option only the installer knows
            return
        i = 0
        while i < len(tokens):
            name, value = _split_option(tokens[i])
            i += 1
            if name in _FLAGS:
                self._no_index = True
                continue
            if name not in _VALUED:
                raise self._fail(f"{where}: unexpected {tokens[i - 1]!r} in {line!r}")
            if value is None:
                if i >= len(tokens):
                    raise self._fail(f"{where}: {name} needs a value")
                value, i = tokens[i], i + 1
            self._valued(_VALUED[name], value, base_dir=base_dir, where=where, depth=depth)

    def _valued(self, kind: str, value: str, *, base_dir: Path, where: str, depth: int) -> None:
        if kind in ("requirement", "constraint"):
            target = _local_path(value, base_dir)
            if target is None:
                raise self._fail(f"{where}: only local files can be included, not {value!r}")
            self._read(target, constraint=kind == "constraint", depth=depth + 1)
        elif kind == "index_url":
            self._index_url = value
        elif kind == "extra_index_url":
            self._extra.append(value)
        elif kind == "find_links":
            local = _local_path(value, base_dir)
            self._find_links.append(str(local) if local is not None else value)
        else:  # editable
            raise self._fail(
                f"{where}: editable requirements ({value!r}) are not supported: an environment "
                "is cached and shared between runs; list the package, or keep the code in the "
                "job's code folder"
            )

    def _requirement(self, line: str, *, base_dir: Path, where: str) -> str:
        parts = _TRAILING_OPTION.split(line, maxsplit=1)
        text, trailing = parts[0], (" " + " ".join(parts[1].split()) if len(parts) > 1 else "")
        try:
            return normalize_requirement(text) + trailing
        except InvalidRequirement as e:
            if _URL.match(text):
                return text + trailing
            local = _local_path(text, base_dir)
            if local is None or not local.exists():
                reason = str(e).splitlines()[0] if str(e) else "not a requirement"
                raise self._fail(f"{where}: invalid requirement {text!r}: {reason}") from None
            if local.is_file():
                self._files[str(local)] = _sha256(local)
            return str(local) + trailing


def normalize_requirement(text: str) -> str:
    """``Foo_Bar[b,A] <2,>=1`` → ``foo-bar[a,b]<2,>=1``: canonical name, sorted extras and
    specifiers, normalized marker. Raises ``InvalidRequirement``."""
    req = Requirement(text)
    out: str = canonicalize_name(req.name)
    if req.extras:
        out += "[" + ",".join(sorted(canonicalize_name(e) for e in req.extras)) + "]"
    out += f" @ {req.url}" if req.url else str(req.specifier)
    if req.marker is not None:
        out += f" ; {req.marker}"
    return out


def _logical_lines(text: str) -> list[str]:
    """Lines with ``\\`` continuations joined (pip's rule), keeping one entry per physical
    line start so line numbers in errors stay right."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\") and not _COMMENT.search(raw):
            pending += raw[:-1]
            out.append("")
            continue
        out.append(pending + raw)
        pending = ""
    if pending:
        out.append(pending)
    return out


def _split_option(token: str) -> tuple[str, str | None]:
    if token.startswith("--"):
        name, eq, value = token.partition("=")
        return name, value if eq else None
    if len(token) > 2 and token[:2] in _VALUED:  # -rfile
        return token[:2], token[2:]
    return token, None


def _local_path(value: str, base_dir: Path) -> Path | None:
    """The absolute local path ``value`` names, or None for a URL other than ``file:``."""
    if value.startswith("file://"):
        return Path(value.removeprefix("file://"))
    if _URL.match(value):
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
