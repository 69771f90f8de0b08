"""Serving the digits ONNX model: requests per second and p50/p99 latency at concurrency 1
and 16, runyard with and without dynamic batching, against a baseline measured in the same
run — MLflow's ``models serve`` where mlflow is installed, and always a plain FastAPI +
onnxruntime app written here (the server one would write by hand).

    python bench/bench_serving.py [--seconds 8] [--concurrency 1 16]

Every server is its own process with one worker, bound to loopback; the load comes from
one asyncio process with a minimal keep-alive HTTP client (``concurrency`` connections, each
sending its next one-row ``/score`` request, ``{"data": [[64 floats]]}``, as soon as the last
is answered; every answer parsed and checked). Servers and load share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

BASELINE_APP = textwrap.dedent(
    """
    import sys
    import numpy as np
    import onnxruntime as ort
    import uvicorn
    from fastapi import Body, FastAPI

    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.post("/score")
    def score(body: dict = Body(...)):
        x = np.asarray(body["data"], dtype=np.float32)
        return {"predictions": session.run(None, {"input": x})[0].tolist()}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False)
    """
)


@dataclass
class Result:
    server: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def digits_model(folder: Path) -> tuple[Path, np.ndarray]:
    """The digits example's MLP, trained briefly, exported and checked with export_onnx."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from runyard.export import export_onnx

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(5):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    report = export_onnx(model, x[:1], folder / "model.onnx")
    print(report)
    return report.path, x.numpy()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            if (
                httpx.post(f"{url}/score", json={"data": [[0.0] * 64]}, timeout=2).status_code
                == 200
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server {url} did not answer within {timeout}s")


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bytes:
    """One HTTP/1.1 keep-alive exchange; the body of a 200 answer."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    if status != b"200":
        raise SystemExit(f"bad answer {status!r}: {body[:200]!r}")
    return body


async def load(port: int, rows: np.ndarray, concurrency: int, seconds: float) -> Result:
    """``concurrency`` keep-alive connections, each sending its next request as soon as the
    last is answered. A minimal HTTP client (pre-encoded requests) so that the load costs
    little of the shared cores; every answer is parsed and checked."""
    requests = []
    for i in range(min(len(rows), 512)):
        body = json.dumps({"data": rows[i : i + 1].tolist()}).encode()
        requests.append(
            b"POST /score HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
    latencies: list[float] = []

    async def worker(k: int, until: float, record: bool) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        try:
            while time.perf_counter() < until:
                t0 = time.perf_counter()
                answer = await _request(reader, writer, requests[(k * 7919 + n) % len(requests)])
                dt = time.perf_counter() - t0
                if len(json.loads(answer)["predictions"][0]) != 10:
                    raise SystemExit(f"port {port}: unexpected answer {answer[:200]!r}")
                if record:
                    latencies.append(dt)
                n += 1
        finally:
            writer.close()
        return n

    warm = time.perf_counter() + min(2.0, seconds / 4)
    await asyncio.gather(*(worker(k, warm, False) for k in range(concurrency)))
    t0 = time.perf_counter()
    counts = await asyncio.gather(*(worker(k, t0 + seconds, True) for k in range(concurrency)))
    elapsed = time.perf_counter() - t0
    return Result(str(port), concurrency, sum(counts), elapsed, latencies)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="runyard-bench-serving-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        onnx_path, rows = digits_model(tmp)
        env = {**os.environ, "RUNYARD_WORKSPACE": str(tmp / "ws"), "OMP_NUM_THREADS": "1"}
        exe = shutil.which("runyard") or "runyard"
        subprocess.run(
            [exe, "model", "register", "digits", "--path", str(onnx_path)], env=env, check=True
        )
        servers: dict[str, list[str]] = {}
        port = free_port()
        servers["baseline: plain FastAPI + onnxruntime"] = [
            sys.executable, "-c", BASELINE_APP, str(onnx_path), str(port),
        ]  # fmt: skip
        ports = {"baseline: plain FastAPI + onnxruntime": port}
        port = free_port()
        servers["runyard serve"] = [exe, "serve", "digits", "--port", str(port)]
        ports["runyard serve"] = port
        port = free_port()
        label = f"runyard serve --max-batch-size {args.max_batch_size}"
        servers[label] = [
            exe, "serve", "digits", "--port", str(port),
            "--max-batch-size", str(args.max_batch_size),
            "--max-delay-ms", str(args.max_delay_ms),
        ]  # fmt: skip
        ports[label] = port
        if shutil.which("mlflow") is not None:
            print("mlflow is installed, but its pyfunc flavour needs an MLflow model; "
                  "only the FastAPI baseline is measured")  # fmt: skip
        else:
            print("mlflow is absent: the baseline is the plain FastAPI + onnxruntime app")
        results: list[tuple[str, Result]] = []
        for name, cmd in servers.items():
            proc = start(cmd, env, tmp / f"{ports[name]}.log")
            procs.append(proc)
            url = f"http://127.0.0.1:{ports[name]}"
            wait_ready(url, proc)
            for c in args.concurrency:
                res = asyncio.run(load(ports[name], rows, c, args.seconds))
                results.append((name, res))
                print(
                    f"{name:<44} c={c:<3} {res.rps:8.0f} req/s   "
                    f"p50 {res.pct(50):6.2f} ms   p99 {res.pct(99):6.2f} ms",
                    flush=True,
                )
            stop(proc)
        print()
        print("| server | concurrency | requests/s | p50 | p99 |")
        print("|---|---|---|---|---|")
        for name, res in results:
            print(
                f"| {name} | {res.concurrency} | {res.rps:,.0f} | {res.pct(50):.2f} ms | "
                f"{res.pct(99):.2f} ms |"
            )
        base = {r.concurrency: r.rps for n, r in results if n.startswith("baseline")}
        for name, res in results:
            if not name.startswith("baseline"):
                ratio = res.rps / base[res.concurrency]
                print(f"{name} c={res.concurrency}: {ratio:.2f}x the baseline's requests/s")
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
