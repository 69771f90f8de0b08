"""Where packages come from: the person's pip configuration, translated for uv.

uv ignores pip's configuration, but people keep their mirrors and local wheel folders there
(on these machines ``torch`` comes from a ``find-links`` folder). :func:`read_pip_config`
reads it the way pip 23+ does, so what ``pip install`` would find, a runyard environment finds:

- files, each overriding the one before: the global files (``$XDG_CONFIG_DIRS/pip/pip.conf``,
  default ``/etc/xdg/pip/pip.conf``, then ``/etc/pip.conf``); the user files
  (``~/.pip/pip.conf``, then ``$XDG_CONFIG_HOME/pip/pip.conf``, default
  ``~/.config/pip/pip.conf``; skipped when ``PIP_CONFIG_FILE`` names an existing file); the
  site file ``<sys.prefix>/pip.conf``; then ``$PIP_CONFIG_FILE``. ``PIP_CONFIG_FILE=/dev/null``
  loads no file. An ``[install]`` option, from any file, overrides a ``[global]`` one.
- then the variables ``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``,
  ``PIP_NO_INDEX``, ``PIP_CERT``, ``PIP_TRUSTED_HOST``, which override the files.

Only the options that choose packages (index-url, extra-index-url, find-links, no-index) and
the two that let uv connect (cert, trusted-host) are used. Options a requirements file names
(``--extra-index-url`` ...) add to these, as in pip.

pip considers every index equally and takes the best version anywhere; uv by default stops at
the first index that has a package. With extra indexes configured, runyard asks uv for pip's
behaviour (``--index-strategy unsafe-best-match``) unless ``UV_INDEX_STRATEGY`` says otherwise;
otherwise an extra index carrying one old version of a package hides every other version.

The package sources are part of an environment's hash (with any password in a URL removed):
the same requirements resolved against other indexes may give other packages. uv's own index
variables (``UV_INDEX``, ``UV_DEFAULT_INDEX``, ``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL``,
``UV_FIND_LINKS``, ``UV_NO_INDEX``, ``UV_INDEX_STRATEGY``) count too; uv's configuration
files (``uv.toml``) are honoured by uv but not hashed.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runyard.envs.requirements import Requirements
from runyard.errors import UserError

_KEYS = ("index-url", "extra-index-url", "find-links", "no-index", "cert", "trusted-host")
_UV_INDEX_VARS = (
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_INDEX_STRATEGY",
)
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


@dataclass(frozen=True)
class IndexConfig:
    """Package sources, as pip would use them."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    #: How to connect, not what to install: not part of the hash.
    cert: str | None = None
    trusted_hosts: tuple[str, ...] = ()
    #: ``UV_*`` index variables that were set (uv reads them itself).
    uv_variables: tuple[tuple[str, str], ...] = ()

    def merged(self, reqs: Requirements) -> IndexConfig:
        """These sources with a requirements file's options applied, as pip applies them:
        ``--index-url`` replaces, ``--extra-index-url`` and ``--find-links`` add."""
        return replace(
            self,
            index_url=reqs.index_url or self.index_url,
            extra_index_urls=tuple(dict.fromkeys(self.extra_index_urls + reqs.extra_index_urls)),
            find_links=tuple(dict.fromkeys(self.find_links + reqs.find_links)),
            no_index=self.no_index or reqs.no_index,
        )

    @property
    def index_strategy(self) -> str | None:
        """``unsafe-best-match`` (pip's behaviour) when extra indexes are configured and uv was
        not told a strategy."""
        if self.extra_index_urls and "UV_INDEX_STRATEGY" not in dict(self.uv_variables):
            return "unsafe-best-match"
        return None

    def identity(self) -> dict[str, Any]:
        """What of these sources goes into an environment's hash: URLs without credentials."""
        return {
            "index_url": redact_url(self.index_url) if self.index_url else None,
            "extra_index_urls": [redact_url(u) for u in self.extra_index_urls],
            "find_links": [redact_url(u) for u in self.find_links],
            "no_index": self.no_index,
            "index_strategy": self.index_strategy,
            "uv": {k: " ".join(redact_url(p) for p in v.split()) for k, v in self.uv_variables},
        }

    def uv_args(self) -> list[str]:
        """Options for ``uv pip install``."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        if self.no_index:
            args.append("--no-index")
        if self.index_strategy:
            args += ["--index-strategy", self.index_strategy]
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        return args

    def uv_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """Variables to add for uv: pip's ``cert`` becomes ``SSL_CERT_FILE`` unless set."""
        if self.cert and "SSL_CERT_FILE" not in environ:
            return {"SSL_CERT_FILE": self.cert}
        return {}


def read_pip_config(environ: Mapping[str, str] | None = None) -> IndexConfig:
    """The package sources pip would use in ``environ`` (default: this process's)."""
    env = os.environ if environ is None else environ
    sections: dict[str, dict[str, str]] = {"global": {}, "install": {}}
    for path in pip_config_files(env):
        for section, items in _read_file(path).items():
            sections[section].update(items)
    values = {**sections["global"], **sections["install"]}  # as pip orders them
    for key in _KEYS:
        var = "PIP_" + key.upper().replace("-", "_")
        if env.get(var):
            values[key] = env[var]
    index_url = values.get("index-url", "").strip() or None
    return IndexConfig(
        index_url=index_url,
        extra_index_urls=tuple(dict.fromkeys(values.get("extra-index-url", "").split())),
        find_links=tuple(dict.fromkeys(values.get("find-links", "").split())),
        no_index=_bool(values.get("no-index", ""), "no-index"),
        cert=values.get("cert", "").strip() or None,
        trusted_hosts=tuple(values.get("trusted-host", "").split()),
        uv_variables=tuple((k, env[k]) for k in _UV_INDEX_VARS if env.get(k)),
    )


def pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files that exist, lowest precedence first (see the module doc)."""
    explicit = environ.get("PIP_CONFIG_FILE")
    if explicit == os.devnull:
        return []
    home = Path(environ.get("HOME") or Path.home())
    xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    candidates = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs.split(os.pathsep) if d]
    candidates.append(Path("/etc/pip.conf"))
    if not (explicit and Path(explicit).exists()):
        candidates.append(home / ".pip" / "pip.conf")
        if sys.platform == "darwin" and (home / "Library/Application Support/pip").is_dir():
            candidates.append(home / "Library/Application Support/pip/pip.conf")
        else:
            xdg_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
            candidates.append(xdg_home / "pip" / "pip.conf")
    candidates.append(Path(sys.prefix) / "pip.conf")
    if explicit:
        candidates.append(Path(explicit))
    return [p for p in candidates if p.is_file()]


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    """The ``[global]`` and ``[install]`` options of one file that matter here."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read pip's configuration: {e}") from None
    out: dict[str, dict[str, str]] = {"global": {}, "install": {}}
    for section, items in out.items():
        if parser.has_section(section):
            for key, value in parser.items(section):
                name = key.lower().replace("_", "-").removeprefix("--")
                if name in _KEYS and value.strip():
                    items[name] = value
    return out


def _bool(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise UserError(f"pip configuration: {name}: expected true or false, got {value!r}")


def redact_url(url: str) -> str:
    """``https://user:token@host/simple`` → ``https://***@host/simple``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
