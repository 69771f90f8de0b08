"""Scoring scripts: Azure ML's ``init()`` / ``run(raw_data)`` contract.

A scoring script is a Python file with ``run(raw_data)`` and, optionally, ``init()``::

    import json, os, joblib

    def init():
        global model
        model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))

    def run(raw_data):
        rows = json.loads(raw_data)["data"]
        return model.predict(rows).tolist()

Before the script is imported, ``RUNYARD_MODEL_DIR`` and ``AZUREML_MODEL_DIR`` are set to the
folder holding the model version's files (a registered file is directly in it, a registered
folder under its own name), so scripts written for Azure ML run unchanged. ``init()`` runs
once per server process; ``run`` gets the request body as text and returns anything JSON can
encode (numpy arrays and scalars are converted). Calls to ``run`` are serialized per model
(one at a time in a process, as in Azure ML's server); start more workers for more.

An endpoint that serves several versions loads the script once per version, each with its
own module globals; the variables then point at each version's folder while its ``init()``
runs, so read them in ``init()``, not in ``run()``.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runyard.errors import ScoringScriptError, UserError

__all__ = ["MODEL_DIR_VARIABLES", "ScoringScript"]

MODEL_DIR_VARIABLES = ("RUNYARD_MODEL_DIR", "AZUREML_MODEL_DIR")

_env_lock = threading.Lock()
_count = itertools.count()


class ScoringScript:
    """A scoring script loaded for one model folder, ``init()`` already called.

    Raises :class:`UserError` when the file has no ``run``, and
    :class:`~runyard.errors.ScoringScriptError` when importing it or its ``init()`` raises."""

    platform = "score_script"

    def __init__(self, script: Path, model_dir: Path):
        self.script = script
        self.model_dir = model_dir
        self._lock = threading.Lock()
        if not script.is_file():
            raise UserError(f"scoring script {str(script)!r} does not exist")
        name = f"runyard_score_{next(_count)}_{script.stem}"
        spec = importlib.util.spec_from_file_location(name, script)
        if spec is None or spec.loader is None:
            raise UserError(f"cannot load {str(script)!r} as a Python module")
        module = importlib.util.module_from_spec(spec)
        with _model_dir(model_dir), _importable(script.parent):
            try:
                spec.loader.exec_module(module)
                run = getattr(module, "run", None)
                if not callable(run):
                    raise UserError(f"scoring script {script.name} has no run(raw_data) function")
                init = getattr(module, "init", None)
                if callable(init):
                    init()
            except UserError:
                raise
            except Exception as e:
                raise ScoringScriptError(
                    f"scoring script {script.name} failed to start: {type(e).__name__}: {e}"
                ) from e
        self._run: Callable[[str], Any] = run

    def run(self, raw_data: str) -> Any:
        """Call the script's ``run``; exceptions propagate as they are."""
        with self._lock:
            return self._run(raw_data)


@contextmanager
def _model_dir(folder: Path) -> Iterator[None]:
    """The model variables point at ``folder`` (and stay so afterwards, for scripts that
    read them in ``run``; with several versions, the last one loaded wins)."""
    with _env_lock:
        for var in MODEL_DIR_VARIABLES:
            os.environ[var] = str(folder)
        yield


@contextmanager
def _importable(folder: Path) -> Iterator[None]:
    """The script's folder is importable (for helper modules beside it), from its import
    on: ``run`` may import lazily."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    yield
