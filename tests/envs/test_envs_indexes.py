"""pip's configuration, read as pip reads it, and handed to uv."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runyard.envs import IndexConfig, read_pip_config
from runyard.envs.indexes import pip_config_files
from runyard.envs.requirements import Requirements
from runyard.errors import UserError


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def environ(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment whose files live under ``home`` (XDG dirs included)."""
    return {
        "HOME": str(home),
        "XDG_CONFIG_DIRS": str(home / "etc-xdg"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        **extra,
    }


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_user_file_then_variables(home: Path) -> None:
    write(
        home / ".config/pip/pip.conf",
        "[global]\nfind-links = /opt/wheels\n"
        "extra-index-url = file:///opt/pypi/simple\n    file:///opt/pypi-more/simple\n",
    )
    cfg = read_pip_config(environ(home))
    assert cfg.find_links == ("/opt/wheels",)
    assert cfg.extra_index_urls == ("file:///opt/pypi/simple", "file:///opt/pypi-more/simple")
    over = read_pip_config(
        environ(home, PIP_FIND_LINKS="/a /b", PIP_INDEX_URL="https://mirror/simple")
    )
    assert over.find_links == ("/a", "/b")
    assert over.index_url == "https://mirror/simple"
    assert over.extra_index_urls == cfg.extra_index_urls


def test_precedence_global_legacy_user_site_explicit(home: Path) -> None:
    write(home / "etc-xdg/pip/pip.conf", "[global]\nindex-url = https://global/simple\n")
    write(home / ".pip/pip.conf", "[global]\nindex-url = https://legacy/simple\n")
    assert read_pip_config(environ(home)).index_url == "https://legacy/simple"
    write(home / ".config/pip/pip.conf", "[global]\nindex_url = https://user/simple\n")
    assert read_pip_config(environ(home)).index_url == "https://user/simple"
    explicit = write(home / "explicit.conf", "[global]\nindex-url = https://explicit/simple\n")
    env = environ(home, PIP_CONFIG_FILE=str(explicit))
    assert read_pip_config(env).index_url == "https://explicit/simple"
    # pip skips the user files when PIP_CONFIG_FILE names an existing file
    assert home / ".config/pip/pip.conf" not in pip_config_files(env)


def test_install_section_overrides_global_from_any_file(home: Path) -> None:
    write(home / "etc-xdg/pip/pip.conf", "[install]\nfind-links = /install-wheels\n")
    write(home / ".config/pip/pip.conf", "[global]\nfind-links = /global-wheels\n")
    assert read_pip_config(environ(home)).find_links == ("/install-wheels",)


def test_devnull_config_file_loads_no_file(home: Path) -> None:
    write(home / ".config/pip/pip.conf", "[global]\nfind-links = /opt/wheels\n")
    cfg = read_pip_config(environ(home, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="yes"))
    assert cfg.find_links == () and cfg.no_index


def test_bad_config_is_a_clear_user_error(home: Path) -> None:
    write(home / ".config/pip/pip.conf", "find-links = /x\n")  # no section header
    with pytest.raises(UserError, match=r"pip\.conf: cannot read pip's configuration"):
        read_pip_config(environ(home))
    with pytest.raises(UserError, match="no-index: expected true or false"):
        read_pip_config(environ(home, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="maybe"))


def test_uv_arguments_follow_pip_semantics() -> None:
    cfg = IndexConfig(
        index_url="https://mirror/simple",
        extra_index_urls=("file:///opt/pypi/simple",),
        find_links=("/opt/wheels",),
        trusted_hosts=("mirror",),
    )
    assert cfg.uv_args() == [
        "--index-url", "https://mirror/simple",
        "--extra-index-url", "file:///opt/pypi/simple",
        "--find-links", "/opt/wheels",
        "--index-strategy", "unsafe-best-match",
        "--allow-insecure-host", "mirror",
    ]  # fmt: skip
    uv_chose = IndexConfig(
        extra_index_urls=("https://x/simple",), uv_variables=(("UV_INDEX_STRATEGY", "first-index"),)
    )
    assert "--index-strategy" not in uv_chose.uv_args()
    assert IndexConfig(cert="/ca.pem").uv_env({}) == {"SSL_CERT_FILE": "/ca.pem"}
    assert IndexConfig(cert="/ca.pem").uv_env({"SSL_CERT_FILE": "/mine.pem"}) == {}


def test_requirements_file_options_add_to_the_configuration() -> None:
    cfg = IndexConfig(index_url="https://a/simple", find_links=("/w1",))
    merged = cfg.merged(
        Requirements(index_url="https://b/simple", find_links=("/w2",), extra_index_urls=("x",))
    )
    assert merged.index_url == "https://b/simple"
    assert merged.find_links == ("/w1", "/w2")
    assert merged.extra_index_urls == ("x",)


def test_identity_hides_credentials() -> None:
    cfg = IndexConfig(
        index_url="https://alice:s3cret@mirror.example/simple",
        uv_variables=(("UV_INDEX", "https://bob:t0ken@other.example/simple"),),
    )
    text = repr(cfg.identity())
    assert "s3cret" not in text and "t0ken" not in text
    assert "https://***@mirror.example/simple" in text
