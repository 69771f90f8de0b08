"""System metrics of a run: the node's CPU and memory, the run's process trees, and NVIDIA
GPUs where there are any.

One sampler per supervisor: a distributed run's simulated nodes share this machine, so the
node figures are the machine's and the process figures add up every rank's tree.

Keys (logged as rank 0 metrics, one step per sample)::

    system/cpu_percent            the node's CPU utilization, 0-100
    system/memory_used_mb         the node's memory in use
    system/process_cpu_percent    the run's processes together (100 = one core)
    system/process_rss_mb         the run's processes' resident memory together
    system/gpu{i}_utilization     per GPU, 0-100
    system/gpu{i}_memory_used_mb  per GPU

GPUs are read through NVML (``pynvml``, from the ``gpu`` extra) when it imports and
initializes, else through ``nvidia-smi`` when it is on ``PATH``, else not at all.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from runyard.records import MetricPoint
from runyard.store import Store

MB = 1024 * 1024

GpuReader = Callable[[], list[tuple[float, float]]]


class SystemSampler:
    """Samples the node and the process trees rooted at ``root_pids`` (none: the node only)."""

    def __init__(self, *root_pids: int, gpus: bool = True):
        self.root_pids = root_pids
        self._procs: dict[int, psutil.Process] = {}
        self._gpu: _Gpu | None = _Gpu.probe() if gpus else None
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline
        self._tree()

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {
            "system/cpu_percent": psutil.cpu_percent(interval=None),
            "system/memory_used_mb": _mb(psutil.virtual_memory().used),
        }
        if self.root_pids:
            cpu = rss = 0.0
            for proc in self._tree():
                try:
                    with proc.oneshot():
                        cpu += proc.cpu_percent(interval=None)
                        rss += proc.memory_info().rss
                except psutil.Error:
                    continue
            values["system/process_cpu_percent"] = cpu
            values["system/process_rss_mb"] = _mb(rss)
        if self._gpu is not None:
            for i, (util, mem_mb) in enumerate(self._gpu.read()):
                values[f"system/gpu{i}_utilization"] = util
                values[f"system/gpu{i}_memory_used_mb"] = mem_mb
        return values

    def close(self) -> None:
        if self._gpu is not None:
            self._gpu.close()
            self._gpu = None

    def _tree(self) -> list[psutil.Process]:
        """The live processes of the trees, reusing Process objects so each keeps its CPU
        baseline between samples."""
        live: list[psutil.Process] = []
        for pid in self.root_pids:
            try:
                root = psutil.Process(pid)
                live += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        procs = {}
        for p in live:
            known = self._procs.get(p.pid)
            if known is None or known != p:  # psutil compares pid and creation time
                known = p
                with contextlib.suppress(psutil.Error):
                    known.cpu_percent(interval=None)
            procs[p.pid] = known
        self._procs = procs
        return list(procs.values())


class SamplingJob:
    """A periodic job that logs samples of run ``run_id`` (process trees ``pids``) as metrics.

    Its first call only creates the sampler (GPU probing may take a moment, so it happens on
    the periodic thread, not before the command starts) and sets the CPU baselines; it asks
    to be called again after ``first_after`` seconds, then keeps the job's interval."""

    def __init__(self, store: Store, run_id: str, pids: Sequence[int], *, first_after: float):
        self.store = store
        self.run_id = run_id
        self.pids = tuple(pids)
        self.first_after = first_after
        self.sampler: SystemSampler | None = None
        self.step = 0

    def __call__(self) -> float | None:
        if self.sampler is None:
            self.sampler = SystemSampler(*self.pids)
            return self.first_after
        now = time.time()
        values = self.sampler.sample()
        points = [MetricPoint(key, value, self.step, now, 0) for key, value in values.items()]
        self.store.log_metrics(self.run_id, points)
        self.step += 1
        return None

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.close()


def _mb(n: float) -> float:
    return round(n / MB, 1)


class _Gpu:
    """Reads (utilization %, memory used MB) per GPU; disables itself after an error."""

    def __init__(self, read: GpuReader, close: Callable[[], None] | None = None):
        self._read: GpuReader | None = read
        self._close = close

    @classmethod
    def probe(cls) -> _Gpu | None:
        nvml = _nvml()
        if nvml is not None:
            return nvml
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return None
        gpu = cls(lambda: _smi(exe))
        return gpu if gpu.read() else None

    def read(self) -> list[tuple[float, float]]:
        if self._read is None:
            return []
        try:
            return self._read()
        except Exception:  # a driver hiccup must not end the run; stop asking
            self.close()
            return []

    def close(self) -> None:
        self._read = None
        if self._close is not None:
            close, self._close = self._close, None
            with contextlib.suppress(Exception):
                close()


def _nvml() -> _Gpu | None:
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    nv: Any = pynvml
    try:
        nv.nvmlInit()
    except Exception:
        return None
    try:
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
    except Exception:
        handles = []
    if not handles:
        with contextlib.suppress(Exception):
            nv.nvmlShutdown()
        return None

    def read() -> list[tuple[float, float]]:
        out = []
        for h in handles:
            util = nv.nvmlDeviceGetUtilizationRates(h).gpu
            mem = nv.nvmlDeviceGetMemoryInfo(h).used
            out.append((float(util), _mb(mem)))
        return out

    return _Gpu(read, nv.nvmlShutdown)


def _smi(exe: str) -> list[tuple[float, float]]:
    out = subprocess.run(
        [exe, "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    rows = []
    for line in out.strip().splitlines():
        util, mem = (field.strip() for field in line.split(","))
        rows.append((_number(util), _number(mem)))
    return rows


def _number(text: str) -> float:
    """nvidia-smi writes ``[N/A]`` or ``[Not Supported]`` for what it cannot read."""
    try:
        return float(text)
    except ValueError:
        return float("nan")
