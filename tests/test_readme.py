"""Every code block of the README, as a new user pastes it (docs/extending.md's are run by
tests/test_plugins.py).

Python blocks run as pasted, in a fresh interpreter in an empty folder; a line whose comment
is a Python literal (`ra.list_models("resnet56*")  # ['resnet56-A', ...]`) must give it. A
block that starts `# NAME.py` is saved as that file first (the next shell block uses it).
Shell commands run as pasted where they are quick and safe; long ones (a real CIFAR-10 or
ImageNet sweep, GPUs, Slurm) run with `--dry-run`, which parses every word and plans the
runs; the rest (the two make commands, torchrun on 8 GPUs, W&B's server, the benchmarks)
are listed with why, as skipped tests. Text blocks (output, usage, the layout) are not run.
A command no rule below knows fails: a new README command must say how it is checked.
"""
import ast
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_python, train_inproc

README = REPO / "README.md"
BIN = Path(sys.executable).parent

# (pattern, how, why): the first pattern that matches a command decides. how: run (as
# pasted), dry (with --dry-run appended), manual (a skipped test saying why).
RULES = [
    (r"^make (demo|test|test-fast|durations|install)\b", "manual",
     "the Makefile's commands themselves: minutes, measured on a fresh clone by hand"),
    (r"^torchrun ", "manual", "8 GPUs and ImageNet"),
    (r"^wandb (sweep|agent)\b|wandb agent ", "manual", "W&B's sweep server (a login)"),
    (r"^wandb sync\b", "manual", "uploads to W&B's server (tests/test_metric_names.py runs "
                                 "its --dry-run on this glob)"),
    (r"^python benchmarks/", "manual", "benchmarks: minutes of timing on an idle machine"),
    (r"^resnet-ablate sweep cifar10-jpg-short\.yaml", "manual",
     "a file the README describes in words; hours on a CPU"),
    (r"^resnet-ablate (compare|figures) --runs runs/cifar10-jpg", "manual",
     "needs the runs of the CIFAR-10 JPEG sweep above"),
    (r"data_dir=/(data/)?imagenet\b", "manual", "needs ImageNet (a dry run reads the "
                                                 "folder to pick the protocol)"),
    (r"^resnet-ablate (train|sweep|reproduce|demo) .*--dry-run", "run", ""),
    (r"^resnet-ablate (train|sweep|reproduce|demo)\b", "dry", ""),
    (r"^resnet-ablate (models|complexity|--help|compare|figures|sql|probe)\b", "run", ""),
    (r"^resnet-ablate pull\b", "manual", "W&B's server (a login); tests/test_tracking.py replays it"),
    (r"^python -c ", "run", ""),
]
# Known README blocks that do not run as pasted, by the digest of their text, with what
# must change (tests/test_readme.py xfails them strictly: once the block is fixed its
# digest changes and it runs like every other).
PENDING: dict[str, str] = {}  # none now: every block runs as pasted
COMMAND_START = re.compile(r"^(resnet-ablate|make|python|wandb|torchrun|CUDA_VISIBLE_DEVICES=|"
                           r"pip|cd|export)\b")
SYNOPSIS = re.compile(r"\[(--|[A-Z])|\|")  # usage text: [--flag], [PATTERN], a|b


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def digest(body: str) -> str:
    return hashlib.sha1(body.encode()).hexdigest()[:10]


def commands(body: str) -> list[str] | None:
    """The shell commands of a block (continuations joined), or None for a text block."""
    lines = [li for li in body.splitlines() if li.strip()]
    joined, current = [], ""
    for line in lines:
        current += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") \
            else line
        if not line.rstrip().endswith("\\"):
            joined.append(" ".join(current.split()))
            current = ""
    starts = [c for c in joined if not c.startswith("#")]
    if not starts or not all(COMMAND_START.match(c) for c in starts):
        return None
    if any(SYNOPSIS.search(c.split("#")[0]) for c in starts):
        return None
    return starts


def rule(command: str) -> tuple[str, str]:
    for pattern, how, why in RULES:
        if re.search(pattern, command):
            return how, why
    pytest.fail(f"README command no rule knows (add one to tests/test_readme.py): {command}")


def cases():
    out = []
    for i, (lang, body) in enumerate(blocks(README.read_text())):
        first = body.splitlines()[0] if body.strip() else ""
        marks = []
        if digest(body) in PENDING:
            marks.append(pytest.mark.xfail(reason=PENDING[digest(body)], strict=True))
        if lang == "python":
            out.append(pytest.param("python", body, id=f"{i}-python-{first[:30]}", marks=marks))
            continue
        for command in commands(body) or []:
            how, why = rule(command)
            m = marks + ([pytest.mark.skip(reason=why)] if how == "manual" else [])
            out.append(pytest.param(how, command, id=f"{i}-{how}-{command[:40]}", marks=m))
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """An empty folder a user pastes into: runs/demo holds two real runs (what `make demo`
    leaves, in miniature), the README's own files are written there as the README names them."""
    root = tmp_path_factory.mktemp("readme")
    for model in ("resnet20-A", "resnet56-A"):  # two depths, 27 units to lesion
        train_inproc(f"model={model}", "iterations=4", "eval_every=4", "wandb=disabled",
                     "progress=off", "responses=false", f"runs_dir={root / 'runs' / 'demo'}",
                     f"run_id={model}")
    for lang, body in blocks(README.read_text()):
        named = re.match(r"# (\w+\.py)\n", body)
        if lang == "python" and named:
            (root / named.group(1)).write_text(body)
    return root


def _env(workdir: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([str(workdir), os.environ.get("PYTHONPATH", "")]),
            "WANDB_MODE": "offline"}


def checked(body: str) -> str:
    """The block with an assertion after each line whose comment is a literal result."""
    tree = ast.parse(body)
    lines = body.splitlines()
    out = []
    for node in tree.body:
        source = ast.get_source_segment(body, node)
        for decorator in reversed(getattr(node, "decorator_list", [])):  # not in the segment
            source = f"@{ast.get_source_segment(body, decorator)}\n{source}"
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line and node.lineno == \
            node.end_lineno else ""
        try:
            expected = ast.literal_eval(comment) if comment else None
        except (ValueError, SyntaxError):
            expected = None
        if isinstance(node, ast.Expr) and expected is not None and \
                len([n for n in tree.body if n.lineno == node.lineno]) == 1:
            out.append(f"__got = {source}\nassert __got == {comment}, "
                       f"({source!r}, __got)")
        else:
            out.append(source)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("how, text", cases())
def test_readme_block(how, text, workdir):
    if how == "python":
        proc = run_python(checked(text), cwd=workdir, env=_env(workdir), timeout=600)
    else:
        if "../shared/data/cifar10-jpg" in text and not (REPO.parent / "shared" / "data" /
                                                         "cifar10-jpg").is_dir():
            pytest.skip("the CIFAR-10 JPEG copy is not beside this checkout")
        command = re.sub(r"\s+#.*$", "", text) + (" --dry-run" if how == "dry" else "")
        cwd = REPO if "../shared/" in text else workdir  # relative to the checkout
        proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(workdir),
                              capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{text}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


def test_every_block_is_known():
    """Every block is Python, commands, or text; text blocks are what they look like."""
    kinds = []
    for lang, body in blocks(README.read_text()):
        kinds.append("python" if lang == "python" else "shell" if commands(body) else "text")
    assert "python" in kinds and "shell" in kinds  # the parser sees the README's blocks
    for lang, body in blocks(README.read_text()):
        if lang not in ("", "python", "toml"):
            pytest.fail(f"a README block in {lang!r}: say how tests/test_readme.py runs it")


def test_every_reliability_row_names_tests_that_exist():
    """docs/reliability.md's last column (`test_file :: test_name, test_name, ...`) names
    tests that are there: a test renamed or moved leaves no row pointing at nothing."""
    rows = checked = 0
    lines = (REPO / "docs" / "reliability.md").read_text().splitlines()
    table = [ln for ln in lines if ln.startswith("|") and not set(ln) <= set("|-: ")
             and ln.strip().strip("|").split("|")[-1].strip() != "test"]
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or set(cells[-1]) <= set("-: ") or cells[-1] == "test":
            continue
        rows += 1
        where = None
        for name in cells[-1].split(", "):
            if " :: " in name:
                where, name = name.split(" :: ")
            assert where is not None, line
            source = REPO / "tests" / f"{where}.py"
            assert source.is_file() and re.search(rf"^def {re.escape(name)}\(",
                                                  source.read_text(), re.M), (where, name)
            checked += 1
    assert rows == len(table) > 0 and checked >= rows, (rows, len(table), checked)
