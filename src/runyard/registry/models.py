"""The model registry: named, versioned, immutable sets of files with aliases and lineage.

A version's files are copied into the artifact store under ``models/<name>/<version>/``
and never changed afterwards; a registered file keeps its name there (``model.onnx``) and a
registered folder its own name as the first part (``model_dir/...``), the layout Azure ML's
``AZUREML_MODEL_DIR`` has. Registration is two steps in the store: the version is recorded
pending (unseen), the files are copied and hashed, then the version is made ready; a failure
in between discards it. Registering from a run copies the run's stored artifacts and records
its id, params and final metrics (lineage).
"""

from __future__ import annotations

import builtins
import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePosixPath

from runyard.errors import NotFound, UserError
from runyard.naming import ModelRef, check_alias, check_name, parse_model_ref
from runyard.records import ModelFile, ModelVersion
from runyard.registry import frameworks
from runyard.registry.endpoints import reap_endpoints
from runyard.workspace import Resources

__all__ = ["MODELS_PREFIX", "ModelRegistry", "model_key"]

#: Where model files live in the artifact store.
MODELS_PREFIX = "models"
_CHUNK = 1 << 20


def model_key(name: str, version: int, path: str = "") -> str:
    key = f"{MODELS_PREFIX}/{name}/{version}"
    return f"{key}/{path}" if path else key


class ModelRegistry:
    """Models of one workspace: its store and artifact store."""

    def __init__(self, resources: Resources):
        self.resources = resources
        self.store = resources.store
        self.artifacts = resources.artifacts

    # -- registering ---------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: str | Path | Sequence[str | Path],
        *,
        run_id: str | None = None,
        framework: str | None = None,
        framework_version: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Register the next version of ``name`` from ``path``: a file, a folder, or a list of
        files (stored side by side). With ``run_id``, ``path`` is the path of the run's
        stored artifact (``outputs/model.onnx``, ``outputs/model_dir``) and the run's params
        and final metrics are recorded with it. ``framework`` is detected from the files when
        not given (see :mod:`runyard.registry.frameworks`)."""
        check_name(name)
        with ExitStack() as stack:
            run = None
            if run_id is not None:
                run = self.store.get_run(run_id)
                paths = [path] if isinstance(path, (str, Path)) else list(path)
                files = stack.enter_context(self._run_files(run.id, [str(p) for p in paths]))
                source = f"run:{run.id}/" + ", ".join(str(p) for p in paths)
            else:
                files = _local_files(path)
                given = [path] if isinstance(path, (str, Path)) else list(path)
                source = ", ".join(str(Path(p).resolve()) for p in given)
            if framework is None:
                framework = frameworks.detect_framework(files)
            if framework_version is None:
                framework_version = frameworks.framework_version(framework)
            pending = self.store.create_model_version(
                name,
                framework=framework,
                framework_version=framework_version,
                description=description,
                tags=tags,
                properties=properties,
                run_id=None if run is None else run.id,
                run_params=None if run is None else run.params,
                run_metrics=None if run is None else run.metrics,
                source=source,
            )
            return self._store_files(pending, files)

    def _store_files(self, pending: ModelVersion, files: list[tuple[str, Path]]) -> ModelVersion:
        prefix = model_key(pending.name, pending.version)
        try:
            stored = []
            for rel, src in files:
                size = self.artifacts.put_file(f"{prefix}/{rel}", src)
                stored.append(ModelFile(rel, size, _sha256(src)))
            return self.store.finish_model_version(pending.name, pending.version, stored)
        except BaseException:
            self.artifacts.delete_prefix(prefix)
            self.store.delete_model_version(pending.name, pending.version)
            raise

    @contextmanager
    def _run_files(self, run_id: str, paths: list[str]) -> Iterator[list[tuple[str, Path]]]:
        """Local copies of the run's stored artifacts at or under ``paths``, each with its
        path in the model: a file keeps its name, a folder's files go under its name. A path
        outside ``outputs/`` and ``logs/`` means one inside ``outputs/``."""
        stored = [a.path for a in self.store.list_artifacts(run_id)]
        chosen: list[tuple[str, str]] = []  # (path in the model, artifact path)
        for given in paths:
            prefix = _clean(given, "artifact path")
            if prefix.split("/", 1)[0] not in ("outputs", "logs"):
                prefix = f"outputs/{prefix}"
            name = PurePosixPath(prefix).name
            found = [(name, a) for a in stored if a == prefix]
            found += [
                (f"{name}/{a[len(prefix) + 1 :]}", a) for a in stored if a.startswith(f"{prefix}/")
            ]
            if not found:
                hint = " (outputs are stored when the run ends)" if not stored else ""
                raise NotFound(f"run {run_id} has no stored artifact at {prefix!r}{hint}")
            chosen += found
        with tempfile.TemporaryDirectory(prefix="runyard-model-") as tmp:
            out = []
            for model_path, art in chosen:
                key = f"{run_id}/{art}"
                local = self.artifacts.open_read(key)
                if local is None or not local.is_file():
                    local = Path(tmp) / model_path
                    self.artifacts.get_file(key, local)
                out.append((model_path, local))
            _check_unique(out)
            yield out

    # -- reading -------------------------------------------------------------------------

    def get(self, ref: str | ModelRef | ModelVersion) -> ModelVersion:
        """The version ``ref`` names: ``digits``, ``digits@3``, ``digits@production``."""
        if isinstance(ref, ModelVersion):
            ref = ref.ref
        r = parse_model_ref(ref) if isinstance(ref, str) else ref
        version: ModelVersion = self.store.get_model_version(r.name, r.version, alias=r.alias)
        return version

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        """Versions of ``name`` (or of every model), by name, newest first."""
        versions: builtins.list[ModelVersion] = self.store.list_model_versions(name)
        return versions

    def download(self, ref: str | ModelRef | ModelVersion, dest: str | Path) -> builtins.list[Path]:
        """Copy the version's files into ``dest`` (as laid out in the registry), checking
        each against its recorded hash."""
        mv = self.get(ref)
        out = []
        for f in mv.files:
            target = Path(dest) / f.path
            self.artifacts.get_file(model_key(mv.name, mv.version, f.path), target)
            if _sha256(target) != f.sha256:
                raise UserError(f"{mv.ref}: {f.path} does not match its recorded hash")
            out.append(target)
        return out

    def local_dir(self, ref: str | ModelRef | ModelVersion) -> Path:
        """A local folder holding the version's files, to read and not to change: the
        artifact store's own folder when it is local, else a download cached in the
        workspace (``cache/models/<name>/<version>``)."""
        mv = ref if isinstance(ref, ModelVersion) else self.get(ref)
        first = self.artifacts.open_read(model_key(mv.name, mv.version, mv.files[0].path))
        if first is not None and first.is_file():
            return first.parents[len(PurePosixPath(mv.files[0].path).parts) - 1]
        cached = self.resources.layout.root / "cache" / model_key(mv.name, mv.version)
        if not (cached / ".complete").is_file():
            tmp = cached.with_name(f".{cached.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            self.download(mv, tmp)
            (tmp / ".complete").touch()
            shutil.rmtree(cached, ignore_errors=True)
            tmp.rename(cached)
        return cached

    # -- changing ------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int | None) -> None:
        """Point ``name@alias`` at ``version``; None removes the alias."""
        self.store.set_model_alias(check_name(name), check_alias(alias), version)

    def update(
        self,
        ref: str | ModelRef,
        *,
        set_tags: Mapping[str, str] | None = None,
        delete_tags: Sequence[str] = (),
        description: str | None = None,
    ) -> ModelVersion:
        mv = self.get(ref)
        updated: ModelVersion = self.store.update_model_version(
            mv.name, mv.version, set_tags=set_tags, delete_tags=delete_tags, description=description
        )
        return updated

    def delete(self, ref: str | ModelRef) -> ModelVersion:
        """Delete one version (``NAME@VERSION`` or ``NAME@ALIAS``) and its files. Refused
        (:class:`~runyard.errors.ModelInUse`) while a live endpoint serves it."""
        r = parse_model_ref(ref) if isinstance(ref, str) else ref
        if r.version is None and r.alias is None:
            raise UserError(f"say which version of {r.name} to delete: {r.name}@VERSION")
        mv = self.get(r)
        reap_endpoints(self.resources)  # an endpoint whose server died serves nothing
        deleted: ModelVersion = self.store.delete_model_version(mv.name, mv.version)
        self.artifacts.delete_prefix(model_key(mv.name, mv.version))
        shutil.rmtree(
            self.resources.layout.root / "cache" / model_key(mv.name, mv.version),
            ignore_errors=True,
        )
        return deleted


def _clean(path: str, what: str) -> str:
    p = PurePosixPath(path.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise UserError(f"invalid {what} {path!r}: must be relative, without '..'")
    return p.as_posix()


def _local_files(path: str | Path | Sequence[str | Path]) -> list[tuple[str, Path]]:
    """(path in the model, local file) for a file, a folder, or a list of files."""
    given = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if not given:
        raise UserError("no model files given")
    out: list[tuple[str, Path]] = []
    for p in given:
        if p.is_file():
            out.append((p.name, p))
        elif p.is_dir():
            base = p.resolve()
            found = sorted(f for f in base.rglob("*") if f.is_file())
            if not found:
                raise UserError(f"model folder {str(p)!r} has no files")
            out.extend((f"{base.name}/{f.relative_to(base).as_posix()}", f) for f in found)
        else:
            raise NotFound(f"no such model file or folder: {str(p)!r}")
    _check_unique(out)
    return out


def _check_unique(files: list[tuple[str, Path]]) -> None:
    seen: set[str] = set()
    for rel, _ in files:
        if rel in seen:
            raise UserError(f"two model files would both be stored as {rel!r}")
        seen.add(rel)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
