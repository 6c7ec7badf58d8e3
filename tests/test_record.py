"""One run record, each fact in one shape: the schema (resnet_ablate.run.record) lists every
key a run writes; config.json, summary.json, the W&B config, the resume identity, the
condition and the runs table's columns are its projections; a new field in Protocol or VariantSpec
reaches all of them by itself; the data set's content is part of the condition; the paper's
number is set beside a run only when its condition is the paper's; a run resolves, validates
and builds its network once; the torch-free packages stay torch-free."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SMALL, run_cli, run_python
from resnet_ablate.run import record
from resnet_ablate.run.config import BOOKKEEPING, FACTOR, RESULT


def _train(tmp_path, *words, cwd=None, env=None):
    proc = run_cli("train", *SMALL, f"runs_dir={tmp_path / 'runs'}", *words, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def _walk(node, prefix=()):
    """Every leaf path of a nested record (mappings that are a key's value stop the walk)."""
    declared = record.by_column()
    for key, value in node.items():
        path = (*prefix, key)
        if ".".join(path) in declared:
            yield ".".join(path)
        elif isinstance(value, dict):
            yield from _walk(value, path)
        else:
            yield ".".join(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("record")
    _train(tmp, "run_id=r", "wandb=offline", "iterations=20", "eval_every=10")
    return tmp / "runs" / "r"


def test_a_real_record_writes_only_declared_keys(run):
    """config.json and summary.json hold nothing the schema does not declare, with the
    declared types; summary = config + results."""
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    declared = record.by_column()
    assert set(_walk(summary)) <= set(declared)
    assert set(_walk(config)) <= set(declared)
    record.check(summary)
    flat_s, flat_c = record.flat(summary), record.flat(config)
    assert {c for c in flat_s if declared[c].kind != RESULT} == set(flat_c)
    assert all(declared[c].kind == RESULT for c in set(flat_s) - set(flat_c))
    for column in flat_c:  # what the start knew is what the end says
        assert flat_s[column] == flat_c[column], column
    assert summary["condition"] == record.condition_id(flat_s)


def test_the_condition_changes_with_a_factor_and_never_with_seed_numerics_or_bookkeeping(
        run):
    """Two runs are one condition exactly when they differ only by seed, numerics or
    bookkeeping (what analysis pools as seeds of one condition); the resume identity also
    holds the numerics and the seed (a resume under other threads or another seed is
    another run)."""
    values = record.flat(json.loads((run / "summary.json").read_text()))
    base, ident = record.condition_id(values), record.identity(values)
    same = {"seed": 7, "run.threads": 3, "run.channels_last": False, "run.device": "cuda",
            "data.data_dir": "/elsewhere", "run_id": "other", "settings.progress": "bar",
            "versions": {"torch": "9"}}
    for column, value in same.items():
        assert record.condition_id({**values, column: value}) == base, column
    for column, value in {"depth": 56, "protocol_fields.lr": 0.05, "run.amp": "bf16",
                          "data.fingerprint": "other", "run.world_size": 2,
                          "protocol_fields.bn_batch": 32, "dataset": "cifar10"}.items():
        assert record.condition_id({**values, column: value}) != base, column
    for column in ("seed", "run.threads", "run.deterministic"):
        assert record.identity({**values, column: 99}) != ident, column
    assert record.identity({**values, "run_id": "other"}) == ident


def test_the_runs_tables_columns_are_the_record(run):
    from resnet_ablate.analysis.rundirs import read_runs

    c = read_runs([run.parent])
    row = c.runs.iloc[0]
    assert set(record.columns()) <= set(c.runs.columns)
    assert row["condition"] == json.loads((run / "summary.json").read_text())["condition"]
    assert row["protocol_fields.iterations"] == 20 and row["data.mode"] == "tensor"


# A field added in one place: Protocol gets `label_smoothing`, VariantSpec `test_factor`.
NEW_PROTOCOL_FIELD = '''    label_smoothing: float = _f(0.0, "a new protocol field (the schema test's)")
'''
NEW_SPEC_FIELD = '''    test_factor: int = 7  # a new spec field (the schema test's)
'''


def test_a_new_field_in_one_place_reaches_every_projection(tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(REPO / "resnet_ablate", pkg / "resnet_ablate",
                    ignore=shutil.ignore_patterns("__pycache__"))
    proto = pkg / "resnet_ablate" / "run" / "protocol.py"
    text = proto.read_text()
    anchor = "    def __post_init__(self) -> None:"
    proto.write_text(text.replace(anchor, NEW_PROTOCOL_FIELD + "\n" + anchor, 1))
    spec = pkg / "resnet_ablate" / "variants" / "spec.py"
    text = spec.read_text()
    anchor = "    stem_options: Options = field(default_factory=Options)\n"
    assert anchor in text
    spec.write_text(text.replace(anchor, anchor + NEW_SPEC_FIELD, 1))
    # One interpreter on the changed copy trains both runs (b with W&B offline, for real;
    # W&B's mode is no factor, asserted below) and reads them: the change must reach a
    # fresh import, a process per run adds nothing.
    runs = tmp_path / "runs"
    code = ("import json, sys; from pathlib import Path; "
            "from resnet_ablate.cli import main; "
            "from resnet_ablate.analysis.rundirs import read_runs; "
            "from resnet_ablate.run import record; "
            "words, runs = json.loads(sys.argv[1]), Path(sys.argv[2]); "
            "codes = [main(['train', *words, f'run_id={r}', f'label_smoothing={ls}', "
            "f'wandb={w}']) for r, ls, w in (('a', '0.0', 'disabled'), "
            "('b', '0.1', 'offline'))]; "
            "c = read_runs([runs]); r = c.runs.set_index('run_id'); "
            "print(json.dumps({'codes': codes, 'cols': list(c.runs.columns), "
            "'ls': r['protocol_fields.label_smoothing'].to_dict(), "
            "'tf': r['test_factor'].to_dict(), 'cond': r['condition'].to_dict(), "
            "'factors': sorted(record.condition(record.flat(json.load(open(runs / 'b' / "
            "'summary.json')))))}))")
    words = [*SMALL, f"runs_dir={runs}", "iterations=10", "eval_every=10", "responses=false"]
    out = run_python(code, json.dumps(words), runs, cwd=tmp_path,
                     env={**os.environ, "PYTHONPATH": str(pkg)}, timeout=600)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["codes"] == [0, 0], out.stderr
    for name in ("config.json", "summary.json"):
        rec = json.loads((runs / "b" / name).read_text())
        assert rec["protocol_fields"]["label_smoothing"] == 0.1 and rec["test_factor"] == 7
    a, b = (json.loads((runs / r / "summary.json").read_text()) for r in "ab")
    assert a["condition"] != b["condition"]  # the new protocol field is a factor
    wandb_bin = Path(sys.executable).with_name("wandb")
    offline = next((runs / "b" / "wandb").glob("offline-run-*"))
    back = subprocess.run([str(wandb_bin), "leet", "inspect", "--summary", "--json",
                           str(offline)], capture_output=True, text=True, timeout=120)
    config = json.loads(back.stdout)["config"]
    assert config["protocol_fields"]["label_smoothing"] == 0.1 and config["test_factor"] == 7
    assert {"protocol_fields.label_smoothing", "test_factor"} <= set(got["cols"])
    assert got["ls"] == {"a": 0.0, "b": 0.1} and got["tf"] == {"a": 7, "b": 7}
    assert got["cond"]["a"] != got["cond"]["b"]
    assert {"protocol_fields.label_smoothing", "test_factor"} <= set(got["factors"])
    assert not any("wandb" in f for f in got["factors"])  # a's W&B mode differs, no factor


def _folder(root: Path, noise: bool) -> Path:
    """An ImageFolder of 8x8 grey images (the digits when learnable, noise when not), with
    train/ and test/: the same names and sizes either way (PNG of a fixed size per image)."""
    from PIL import Image

    from resnet_ablate.data.catalog import digits_arrays

    pixels, labels = digits_arrays()
    rng = np.random.default_rng(0)
    for i in range(300):
        split = "test" if i % 5 == 0 else "train"
        d = root / split / str(labels[i])
        d.mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 256, (8, 8)) if noise else pixels[i] * 255 / 16
        Image.fromarray(img.astype(np.uint8)).save(d / f"{i:04d}.bmp")  # BMP: fixed size
    return root


def test_a_folder_data_set_is_identified_by_its_content(tmp_path, cli_inproc, monkeypatch):
    """Two ImageFolders of equal size and layout, one learnable, one noise: two conditions;
    the same folder copied elsewhere: the same condition."""
    learn, noise = _folder(tmp_path / "learn", False), _folder(tmp_path / "noise", True)
    shutil.copytree(learn, tmp_path / "elsewhere" / "copy")
    words = ["dataset=imagefolder", "protocol=demo", "iterations=5", "eval_every=5",
             "batch_size=32", "val_size=0", "responses=false"]
    conditions = {}
    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path / "cache"))
    for run_id, folder in (("learn", learn), ("noise", noise),
                           ("copy", tmp_path / "elsewhere" / "copy")):
        proc = cli_inproc("train", *SMALL, f"runs_dir={tmp_path / 'runs'}", *words,
                          f"data_dir={folder}", f"run_id={run_id}")
        assert proc.returncode == 0, proc.stderr
        s = json.loads((tmp_path / "runs" / run_id / "summary.json").read_text())
        conditions[run_id] = (s["condition"], s["data"]["fingerprint"])
    assert conditions["learn"][1].startswith("imagefolder:10c:train=240,test=60:")
    assert conditions["learn"][0] != conditions["noise"][0]
    assert conditions["learn"][1] != conditions["noise"][1]
    assert conditions["learn"] == conditions["copy"]


def _cifar10(root: Path) -> Path:
    """torchvision's cifar-10-batches-py with 100 training and 10 test images."""
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, 20)]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    (folder / "test_batch").write_bytes(pickle.dumps(
        {"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10))}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in
                                                                        range(10)]}))
    return root


def test_a_shortened_cifar10_run_shows_no_paper_number_and_says_why(tmp_path, cli_inproc):
    data = _cifar10(tmp_path / "data")
    proc = cli_inproc("train", "model=resnet20-A", "dataset=cifar10", f"data_dir={data}",
                      "download=false", "iterations=8", "lr=0.05", "batch_size=16",
                      "eval_every=8", "log_every=4", "responses=false", "wandb=disabled",
                      "progress=off", f"runs_dir={tmp_path / 'runs'}", "run_id=short")
    assert proc.returncode == 0, proc.stderr
    table = cli_inproc("compare", "--runs", tmp_path / "runs", "--format", "json")
    assert table.returncode == 0, table.stderr
    row = json.loads(table.stdout)[0]
    assert row["paper (how it was computed)"] == (
        "paper: n/a — batch_size=16, lr=0.05, iterations=8, eval_every=8 differ from "
        "he2015-cifar")
    assert row["Δ (like with like)"] == "" and row["Δ best (same n)"] == ""


def test_the_paper_number_needs_the_papers_condition():
    from resnet_ablate.reference import paper_match
    from resnet_ablate.run.protocol import HE2015_CIFAR, HE2016_CIFAR

    def row(protocol, **changes):
        fields = (HE2016_CIFAR if protocol == "he2016-cifar" else HE2015_CIFAR).fields()
        base = {"model": "resnet110-A", "family": "resnet", "depth": 110, "shortcut": "A",
                "dataset": "cifar10", "protocol": protocol, "num_classes": 10,
                "data.split_sizes": json.dumps({"train": 50000, "test": 10000}),
                **{f"protocol_fields.{k}": v for k, v in fields.items()}}
        return {**base, **changes}

    m = paper_match(row("he2015-cifar"))
    assert m and (m.paper.best, m.paper.mean) == (6.43, 6.61)
    assert paper_match(row("he2016-cifar")).paper.source == "He et al. (2016), Table 1"
    assert paper_match(row("he2015-cifar", **{"protocol_fields.lr": 0.05})).why_not == \
        "paper: n/a — lr=0.05 differs from he2015-cifar"
    assert paper_match(row("he2015-cifar", **{"data.split_sizes": json.dumps(
        {"train": 45000, "val": 5000, "test": 10000})})).why_not == \
        "paper: n/a — 45,000 training images, the paper's 50,000"
    assert paper_match(row("he2015-cifar", dataset="imagefolder")).why_not == \
        "paper: n/a — data set imagefolder, not cifar10"
    assert paper_match(row("he2015-cifar", num_classes=100)).why_not == \
        "paper: n/a — 100 classes, the paper's 10"
    assert paper_match(row("he2015-cifar", depth=56, layers="[9,9,9]")).why_not.startswith(
        "paper: n/a — depth, layers changed from resnet110-A")
    # the paper's numerics: fp32, and BN over its per-GPU batch (64) in each process
    assert paper_match(row("he2015-cifar", **{"run.amp": "bf16"})).why_not == \
        "paper: n/a — bf16 autocast, the paper's fp32"
    assert paper_match(row("he2015-cifar", **{"run.amp": "off", "run.bn_batch": 64}))
    assert paper_match(row("he2015-cifar", **{"protocol_fields.bn_batch": 0})).why_not == \
        "paper: n/a — bn_batch=0 differs from he2015-cifar"
    assert paper_match(row("he2015-cifar", **{"run.world_size": 4})).why_not == \
        "paper: n/a — BN over 32 images a process, the paper's 64"  # 128 over 4 processes
    assert paper_match(row("he2015-cifar", **{"run.world_size": 2}))  # 64 each: the paper's
    assert paper_match(row("he2015-cifar", **{"run.bn_batch": 128})).why_not == \
        "paper: n/a — BN over 128 images a process, the paper's 64"
    assert paper_match(row("he2015-cifar", **{"protocol_fields.bn_batch": None})).why_not == \
        "paper: n/a — bn_batch=None differs from he2015-cifar"  # a record that lacks it


def test_the_bn_batch_is_a_factor_and_recorded(run):
    kinds = {k.column: k.kind for k in record.keys()}
    assert kinds["protocol_fields.bn_batch"] == FACTOR  # a protocol field: the condition
    assert kinds["run.bn_batch"] == BOOKKEEPING  # a function of bn_batch, batch, world size
    summary = json.loads((run / "summary.json").read_text())
    assert summary["schema"] == record.SCHEMA_VERSION == 4
    assert (summary["protocol_fields"]["bn_batch"], summary["run"]["bn_batch"]) == (0, 128)


def test_prepare_validates_the_spec_once_and_builds_the_network_once(tmp_path, monkeypatch):
    """model=resnet20-A model.shortcut=B dataset=digits: one VariantSpec made (and
    validated), one network built on a real device (the size count's two-block skeleton
    lives on the meta device)."""
    from resnet_ablate.models.resnet import ResNet
    from resnet_ablate.run.config import parse_train_words
    from resnet_ablate.train.session import prepare
    from resnet_ablate.variants.spec import VariantSpec

    request = parse_train_words(["model=resnet20-A", "model.shortcut=B", "dataset=digits",
                                 "wandb=disabled", "progress=off",
                                 f"runs_dir={tmp_path}", "run_id=once"])
    from resnet_ablate.variants.registry import list_models

    list_models()  # the papers' variants registered first: their specs are not this run's
    counts = {"validated": 0, "built": 0, "meta": 0}
    validate, build = VariantSpec.__post_init__, ResNet.__init__

    def counted_validate(self):
        counts["validated"] += 1
        validate(self)

    def counted_build(self, spec, *args, **kwargs):
        build(self, spec, *args, **kwargs)
        counts["meta" if next(self.parameters()).is_meta else "built"] += 1

    monkeypatch.setattr(VariantSpec, "__post_init__", counted_validate)
    monkeypatch.setattr(ResNet, "__init__", counted_build)
    prep = prepare(request)
    prep.rundir.release()
    assert counts == {"validated": 1, "built": 1, "meta": 1}
    assert prep.trainer.model.spec.shortcut == "B" and prep.values["shortcut"] == "B"


TORCH_FREE = ["resnet_ablate.variants.spec", "resnet_ablate.variants.registry",
              "resnet_ablate.variants.resolve",
              "resnet_ablate.variants.parts", "resnet_ablate.variants.paper",
              "resnet_ablate.variants.plugins", "resnet_ablate.variants.timm_hook",
              "resnet_ablate.run.protocol", "resnet_ablate.run.config",
              "resnet_ablate.run.words", "resnet_ablate.run.record",
              "resnet_ablate.run.rundir", "resnet_ablate.run.probefiles",
              "resnet_ablate.reference", "resnet_ablate.io",
              "resnet_ablate.errors", "resnet_ablate.bundled", "resnet_ablate.tracking",
              "resnet_ablate.cli.main"]


def test_the_torch_free_packages_stay_torch_free():
    code = ("import importlib, sys\n"
            f"for m in {TORCH_FREE!r}:\n"
            "    importlib.import_module(m)\n"
            "from resnet_ablate.run.config import parse_train_words\n"
            "parse_train_words(['lr=0.05', 'dataset=digits'])\n"
            "from resnet_ablate.run import record\n"
            "record.keys()\n"
            "print(sorted(m for m in ('torch', 'timm', 'wandb', 'pandas') if m in sys.modules))")
    proc = run_python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    listed = {p.stem for p in (REPO / "resnet_ablate" / "variants").glob("*.py")} | {
        p.stem for p in (REPO / "resnet_ablate" / "run").glob("*.py")}
    assert listed - {"__init__"} <= {m.rsplit(".", 1)[1] for m in TORCH_FREE}
