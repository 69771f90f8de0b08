"""Reading requirement lines and files into one normalized list."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runyard.envs.requirements import Requirements, RequirementsReader, normalize_requirement
from runyard.errors import SpecError


def read(
    lines: list[str] | None = None, file: Path | None = None, base: Path = Path("/")
) -> Requirements:
    reader = RequirementsReader("environment.pip")
    reader.add_lines(lines or [], base_dir=base, origin="pip")
    if file is not None:
        reader.add_file(file, spec_field="environment.requirements")
    return reader.result()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Scikit_Learn>=1.3", "scikit-learn>=1.3"),
        ("numpy <2, >=1.24", "numpy<2,>=1.24"),
        ("numpy>=1.24,<2", "numpy<2,>=1.24"),
        ("Foo.Bar[Zed,alpha] == 1.0", "foo-bar[alpha,zed]==1.0"),
        ("six; python_version>'3.8'", 'six ; python_version > "3.8"'),
        ("pkg @ https://example.org/pkg-1.0.tar.gz", "pkg @ https://example.org/pkg-1.0.tar.gz"),
    ],
)
def test_requirements_are_normalized(text: str, expected: str) -> None:
    assert normalize_requirement(text) == expected


def test_order_duplicates_and_spelling_do_not_matter() -> None:
    a = read(["torch==2.13.0", "scikit-learn>=1.3", "numpy"])
    b = read(["NumPy", "scikit_learn >= 1.3", "torch == 2.13.0", "numpy"])
    assert a == b
    assert a.requirements == ("numpy", "scikit-learn>=1.3", "torch==2.13.0")


def test_file_with_comments_continuations_includes_and_options(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.17.0  # pinned\n")
    (tmp_path / "constraints.txt").write_text("idna<4\n")
    (tmp_path / "wheels").mkdir()
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# training\n"
        "-r base.txt\n"
        "--constraint constraints.txt\n"
        "--extra-index-url https://user:secret@mirror.example/simple\n"
        "-f ./wheels\n"
        "--only-binary :all:\n"
        "packaging>=23 \\\n"
        "    --hash=sha256:abc\n"
        "\n"
        "idna\n"
    )
    r = read(file=req)
    assert r.requirements == ("idna", "packaging>=23 --hash=sha256:abc", "six==1.17.0")
    assert r.constraints == ("idna<4",)
    assert r.extra_index_urls == ("https://user:secret@mirror.example/simple",)
    assert r.find_links == (str(tmp_path / "wheels"),)
    assert r.options == ("--only-binary :all:",)


def test_local_file_counts_by_content(tmp_path: Path) -> None:
    wheel = tmp_path / "dist" / "pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"first")
    first = read(["./dist/pkg-1.0-py3-none-any.whl"], base=tmp_path)
    assert first.requirements == (str(wheel),)
    assert first.local_files == ((str(wheel), hashlib.sha256(b"first").hexdigest()),)
    wheel.write_bytes(b"second")
    assert read(["./dist/pkg-1.0-py3-none-any.whl"], base=tmp_path) != first


def test_editable_is_refused() -> None:
    with pytest.raises(SpecError, match=r"environment\.pip: pip\[0\]: editable requirements"):
        read(["-e ./mypkg"])


def test_invalid_requirement_names_the_line(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("six\nnumpy=1.0\n")
    with pytest.raises(SpecError) as err:
        read(file=req)
    assert str(err.value) == (
        "environment.requirements: requirements.txt line 2: invalid requirement 'numpy=1.0': "
        "Expected semicolon (after name with no version specifier) or end"
    )


def test_missing_requirements_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"requirements file .*nope\.txt' does not exist"):
        read(file=tmp_path / "nope.txt")


def test_include_cycle_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    with pytest.raises(SpecError, match="include each other too deeply"):
        read(file=tmp_path / "a.txt")
