"""What git knows about a code folder: the commit it is at, and what differs from it.

Three git commands run side by side (``status``, ``diff``, ``config``), each limited to
:data:`TIMEOUT` seconds, with optional locks off so a snapshot never holds up the person's
own git commands. Changes are looked for inside the code folder only, since that is what
the snapshot holds. Any git trouble (no git, not a work tree, no commit yet, a timeout)
gives ``None``: git information is welcome, never required.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

#: Seconds allowed for the git commands, together.
TIMEOUT = 5.0


@dataclass(frozen=True)
class GitInfo:
    """Where a code folder stands in git."""

    #: The full sha of ``HEAD``.
    commit: str
    #: The checked-out branch; None when ``HEAD`` is detached.
    branch: str | None
    #: Whether the code folder differs from the commit (untracked files count).
    dirty: bool
    #: The URL of the branch's remote (else ``origin``, else the first), without credentials.
    remote: str | None
    #: ``git diff HEAD`` of the code folder; untracked files are listed first as ``#`` lines.
    diff: str

    def to_record(self) -> dict[str, object]:
        """The facts to keep with a run; the diff is left out (it is stored as a file)."""
        return {
            "commit": self.commit,
            "branch": self.branch,
            "dirty": self.dirty,
            "remote": self.remote,
        }


def git_info(code_dir: Path) -> GitInfo | None:
    """Git's view of ``code_dir``, or None when git cannot give one."""
    git = shutil.which("git")
    if git is None or not code_dir.is_dir():
        return None
    base = [git, "-C", str(code_dir)]
    status, diff, remotes = _run_all(
        [
            [*base, "status", "--porcelain=v2", "--branch", "-z", "--", "."],
            [*base, "diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv", "--", "."],
            [*base, "config", "--get-regexp", r"^remote\..*\.url$"],
        ]
    )
    if status is None or diff is None:
        return None
    head, upstream, changed, untracked = _parse_status(status)
    if head is None:
        return None
    commit, branch = head
    notice = "".join(f"# untracked: {p}\n" for p in untracked)
    return GitInfo(
        commit=commit,
        branch=branch,
        dirty=changed or bool(untracked),
        remote=_pick_remote(remotes or "", upstream),
        diff=notice + diff,
    )


def _run_all(commands: list[list[str]]) -> list[str | None]:
    """Run ``commands`` at once; each one's stdout, or None where it failed."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for cmd in commands:
            procs.append(
                subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
        deadline = time.monotonic() + TIMEOUT
        results: list[str | None] = []
        for proc in procs:
            out, _ = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
            ok = proc.returncode == 0
            results.append(out.decode("utf-8", errors="replace") if ok else None)
        return results
    except (OSError, subprocess.SubprocessError):
        return [None] * len(commands)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _parse_status(
    text: str,
) -> tuple[tuple[str, str | None] | None, str | None, bool, list[str]]:
    """From ``status --porcelain=v2 --branch -z``: ((commit, branch) or None before the first
    commit, the upstream, whether tracked files changed, the untracked paths)."""
    commit: str | None = None
    branch: str | None = None
    upstream: str | None = None
    changed = False
    untracked: list[str] = []
    records = iter(text.split("\0"))
    for record in records:
        if record.startswith("# branch.oid "):
            oid = record.removeprefix("# branch.oid ")
            commit = None if oid == "(initial)" else oid
        elif record.startswith("# branch.head "):
            head = record.removeprefix("# branch.head ")
            branch = None if head == "(detached)" else head
        elif record.startswith("# branch.upstream "):
            upstream = record.removeprefix("# branch.upstream ")
        elif record.startswith("? "):
            untracked.append(record[2:])
        elif record[:2] in ("1 ", "2 ", "u "):
            changed = True
            if record.startswith("2 "):
                next(records, None)  # a rename's original path
    return ((commit, branch) if commit else None), upstream, changed, untracked


def _pick_remote(config: str, upstream: str | None) -> str | None:
    """The URL of the upstream's remote, else of ``origin``, else the first one configured."""
    urls: dict[str, str] = {}
    for line in config.splitlines():
        key, _, url = line.partition(" ")
        name = key.removeprefix("remote.").removesuffix(".url")
        if url:
            urls.setdefault(name, url)
    if not urls:
        return None
    chosen = None
    if upstream:
        # "origin/main"; remote names may hold "/" too, so take the longest that fits
        fits = [n for n in urls if upstream.startswith(n + "/")]
        chosen = max(fits, key=len) if fits else None
    if chosen is None:
        chosen = "origin" if "origin" in urls else next(iter(urls))
    return _without_credentials(urls[chosen])


def _without_credentials(url: str) -> str:
    """Drop a user and password from an http(s) URL (tokens often ride there), and any
    password from other URLs; scp-like ``git@host:path`` stays as it is."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    keep_user = parts.scheme not in ("http", "https") and user
    netloc = f"{user}@{hostport}" if keep_user else hostport
    return urlunsplit(parts._replace(netloc=netloc))
