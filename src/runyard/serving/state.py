"""What a server serves: loaded model versions, their traffic split, and how a request
reaches one of them.

A :class:`ServingState` is built whole (models loaded) and then swapped in whole, so a
traffic change never leaves a server half-configured: requests in flight finish on the
state they started on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runyard.errors import UserError
from runyard.serving.batching import Batcher
from runyard.serving.loaders import Predictor, load_predictor
from runyard.serving.metrics import ServerMetrics
from runyard.serving.router import WeightedRouter
from runyard.serving.scoring import ScoringScript
from runyard.serving.tensors import RequestError, conform

__all__ = ["Deployment", "NoSuchModel", "Served", "ServingState", "load_state"]

log = logging.getLogger("runyard.serving")


@dataclass(frozen=True)
class Deployment:
    """One model version to serve: where its files are, how to load it, its traffic share."""

    name: str
    version: int
    model_dir: Path
    framework: str | None = None
    weight: int = 100
    #: A scoring script (``init()``/``run(raw_data)``) instead of a no-code loader.
    score: Path | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "model_dir": str(self.model_dir),
            "framework": self.framework,
            "weight": self.weight,
            "score": None if self.score is None else str(self.score),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Deployment:
        score = data.get("score")
        return cls(
            name=str(data["name"]),
            version=int(str(data["version"])),
            model_dir=Path(str(data["model_dir"])),
            framework=None if data.get("framework") is None else str(data["framework"]),
            weight=int(str(data.get("weight", 100))),
            score=None if score is None else Path(str(score)),
        )


class NoSuchModel(Exception):
    """A request names a model or version this server does not serve (answered with 404)."""

    status = 404


class Served:
    """One loaded deployment."""

    def __init__(
        self,
        deployment: Deployment,
        model: Predictor | ScoringScript,
        batching: tuple[int, float] | None,
        metrics: ServerMetrics,
    ):
        self.deployment = deployment
        self.model = model
        self.ref = deployment.ref
        self.batcher: Batcher | None = None
        if batching is not None and not isinstance(model, ScoringScript) and batching[0] > 1:
            size, delay = batching
            self.batcher = Batcher(
                model,
                max_batch_size=size,
                max_delay=delay,
                observe=lambda rows: metrics.batch(self.ref, rows),
            )

    @property
    def is_script(self) -> bool:
        return isinstance(self.model, ScoringScript)

    def conform(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs checked against the model's: every input given, none unknown, each
        of the model's datatype and shape."""
        assert not isinstance(self.model, ScoringScript)
        specs = {s.name: s for s in self.model.inputs}
        missing = [n for n in specs if n not in inputs]
        unknown = [n for n in inputs if n not in specs]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing input {', '.join(map(repr, missing))}")
            if unknown:
                parts.append(f"unknown input {', '.join(map(repr, unknown))}")
            raise RequestError(f"{'; '.join(parts)} (model {self.ref} takes {', '.join(specs)})")
        return {n: conform(n, a, specs[n]) for n, a in inputs.items()}

    async def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert not isinstance(self.model, ScoringScript)
        if self.batcher is not None:
            return await self.batcher.predict(inputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.model.predict, inputs)

    async def score(self, raw: str) -> object:
        assert isinstance(self.model, ScoringScript)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.model.run, raw)

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()


class ServingState:
    """The served versions of one configuration, with a router over all of them (the
    endpoint's traffic split) and one per model name."""

    def __init__(self, served: Sequence[Served], endpoint: str | None):
        self.served = {s.ref: s for s in served}
        self.endpoint = endpoint
        self.by_name: dict[str, list[Served]] = {}
        for s in served:
            self.by_name.setdefault(s.deployment.name, []).append(s)
        self.router = WeightedRouter([(s, s.deployment.weight) for s in served])
        self.routers: dict[str, WeightedRouter[Served]] = {}
        for name, group in self.by_name.items():
            weighted = [(s, s.deployment.weight) for s in group]
            if not any(w > 0 for _, w in weighted):
                weighted = [(s, 1) for s in group]  # only reachable by name: share evenly
            self.routers[name] = WeightedRouter(weighted)

    def pick(self, name: str | None = None, version: int | None = None) -> Served:
        """The version to answer a request for ``name`` (a model or the endpoint; None: any)
        and ``version`` (None: by the traffic split)."""
        if name is None or (name == self.endpoint and name not in self.by_name):
            if version is not None:
                raise NoSuchModel(f"give a model name with a version, not endpoint {name!r}")
            return self.router.pick()
        group = self.by_name.get(name)
        if group is None:
            raise NoSuchModel(f"model {name!r} is not served here (served: {self.names()})")
        if version is None:
            return self.routers[name].pick()
        for s in group:
            if s.deployment.version == version:
                return s
        versions = ", ".join(str(s.deployment.version) for s in group)
        raise NoSuchModel(f"version {version} of {name!r} is not served here (served: {versions})")

    def names(self) -> str:
        return ", ".join(self.by_name)

    def describe(self) -> list[dict[str, str]]:
        return [
            {
                "model": s.ref,
                "weight": str(s.deployment.weight),
                "platform": s.model.platform,
            }
            for s in self.served.values()
        ]

    async def close(self) -> None:
        for s in self.served.values():
            await s.close()


def load_state(
    deployments: Sequence[Deployment],
    *,
    endpoint: str | None,
    batching: tuple[int, float] | None,
    metrics: ServerMetrics,
    reuse: ServingState | None = None,
) -> ServingState:
    """Load every deployment (the slow part: run it off the event loop). Models already
    loaded in ``reuse`` from the same files, the same way, are shared rather than loaded
    again (a traffic change that only moves weights loads nothing)."""
    if not deployments:
        raise UserError("nothing to serve: no model versions given")
    served = []
    for d in deployments:
        model: Predictor | ScoringScript
        old = reuse.served.get(d.ref) if reuse is not None else None
        if old is not None and _same_model(old.deployment, d):
            served.append(Served(d, old.model, batching, metrics))
            continue
        log.info("loading %s from %s", d.ref, d.model_dir)
        if d.score is not None:
            model = ScoringScript(d.score, d.model_dir)
        else:
            model = load_predictor(d.framework, d.model_dir)
        served.append(Served(d, model, batching, metrics))
    return ServingState(served, endpoint)


def _same_model(a: Deployment, b: Deployment) -> bool:
    return (a.model_dir, a.framework, a.score) == (b.model_dir, b.framework, b.score)
