"""The open registry from outside the package: a block, a shortcut and a variant registered
in a user's own module (the example of docs/extending.md), loaded by `plugins=`, by
RESNET_ABLATE_PLUGINS and by an installed entry point, through train, resume, complexity,
timm, sweep, sql and compare."""
import json
import re
import signal
import subprocess
import sys

import pytest

from conftest import REPO, assert_usage_error, run_cli, run_python


def _example() -> str:
    """The complete example of docs/extending.md, as a user would paste it."""
    text = (REPO / "docs" / "extending.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    (root / "my_blocks.py").write_text(_example())
    return root


def test_models_complexity_and_timm_see_a_plugin(plugin_dir):
    proc = run_cli("models", "mish*", "--plugins", "my_blocks", "--format", "json",
                   cwd=plugin_dir)
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in json.loads(proc.stdout)}
    assert rows["mish20"]["block"] == "mish_basic" and rows["mish20"]["depth"] == 20
    assert rows["mish20-half"]["shortcut"] == "half"
    # complexity first, in a fresh interpreter (it loads the plugin itself), then timm
    # there after ra.load_plugins (the function complexity's --plugins calls)
    code = ("import sys; from resnet_ablate.cli import main; "
            "code = main(['complexity', 'mish20', '--plugins', 'my_blocks', '--no-fvcore', "
            "'--format', 'json']); print('EXIT', code); "
            "import resnet_ablate as ra, timm, torch; ra.load_plugins(['my_blocks']); "
            "m = timm.create_model('ra_mish20_half', num_classes=3).eval(); "
            "print('SHAPE', tuple(m(torch.randn(1, 3, 32, 32)).shape))")
    proc = run_python(code, cwd=plugin_dir)
    assert proc.returncode == 0, proc.stderr
    out, rest = proc.stdout.split("\nEXIT ", 1)
    assert rest.startswith("0\n"), proc.stderr
    # resnet20-B's layers with another activation: its exact count, 272,474
    assert json.loads(out)[0]["params"] == 272_474
    assert rest.splitlines()[-1] == "SHAPE (1, 3)"


def test_train_resume_sweep_and_compare_a_plugin_variant(plugin_dir, tmp_path,
                                                                  cli_inproc):
    """Train, resume and sweep in processes of their own (each loads the plugin); the
    refusal to resume without it, sql and compare (which import no plugin) here."""
    runs = tmp_path / "runs"
    words = ["model=mish20", "plugins=my_blocks", "iterations=20", "eval_every=10",
             "checkpoint_every=5", "log_every=5", "progress=lines", "wandb=disabled",
             f"runs_dir={runs}"]
    proc = subprocess.Popen([sys.executable, "-m", "resnet_ablate", "train", *words,
                             "run_id=m0"], cwd=plugin_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "iter 10/20" in line:
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    # a record never makes code run: resuming without naming the plugin is refused, in
    # one line that says how to name it
    unnamed = [w for w in words if not w.startswith("plugins=")]
    refused = cli_inproc("train", *unnamed, "run_id=m0", "resume=true")
    assert_usage_error(refused, "resume refused: run m0 was trained with plugin(s)",
                       f"plugins={plugin_dir / 'my_blocks.py'}")
    resumed = run_cli("train", *unnamed, f"plugins={plugin_dir / 'my_blocks.py'}", "run_id=m0",
                      "resume=true", cwd=plugin_dir)
    assert resumed.returncode == 0, resumed.stderr
    s = json.loads((runs / "m0" / "summary.json").read_text())
    assert s["status"] == "finished" and s["block"] == "mish_basic"
    assert s["plugins"] == [str(plugin_dir / "my_blocks.py")]  # found beside the user
    sweep = tmp_path / "mish.yaml"
    sweep.write_text("""
name: mish
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [mish20, mish20-half]}
  plugins: {value: my_blocks}
  seed: {value: 1}
  iterations: {value: 20}
  eval_every: {value: 10}
  progress: {value: "off"}
  wandb: {value: disabled}
""")
    swept = run_cli("sweep", sweep, "--runs-dir", runs, cwd=plugin_dir)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    # sql and compare elsewhere, told nothing about the plugin (they import none)
    read = cli_inproc("sql", runs, "select count(*) as runs, count(distinct condition) as "
                                   "conditions from runs", "--format", "csv")
    assert read.returncode == 0, read.stderr
    assert read.stdout == "runs,conditions\n3,2\n"  # mish20 at seeds 0 and 1: one
    assert "warning" not in read.stderr  # the runs' plugin, found by its recorded path
    compared = cli_inproc("compare", "--runs", runs, "--format", "json")
    assert compared.returncode == 0, compared.stderr
    rows = {r["condition"]: r for r in json.loads(compared.stdout)}
    assert sorted(rows) == ["ResNet-20 (mish_basic, B)",
                            "ResNet-20 (mish_basic, half, scale=0.5)"]
    assert rows["ResNet-20 (mish_basic, B)"]["runs"] == "2 finished of 2 (0 diverged, 0 failed)"


def test_the_readmes_add_your_own_block_works_when_pasted(tmp_path):
    """Its variant trains, with resnet20-B's layers and another activation: resnet20-B's
    exact count (272,474 at 3 channels) less the first conv's 2 x 16 x 3 x 3 weights, as
    digits has one channel."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Add your own block"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "my_blocks.py").write_text(code)
    train = run_cli("train", "model=mish20", "plugins=my_blocks", "dataset=digits",
                    "iterations=2", "eval_every=2", "wandb=disabled", "progress=off",
                    f"runs_dir={tmp_path / 'runs'}", "run_id=pasted", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    s = json.loads((tmp_path / "runs" / "pasted" / "summary.json").read_text())
    assert s["block"] == "mish_basic" and s["in_chans"] == 1
    assert s["params"] == 272_474 - 2 * 16 * 3 * 3


def test_plugins_from_the_environment_and_from_an_entry_point(plugin_dir, tmp_path):
    """An installed plugin that fails to load is a warning naming it: the other installed
    one still loads, and the command runs."""
    env = {"RESNET_ABLATE_PLUGINS": "my_blocks"}
    proc = run_cli("models", "mish*", cwd=plugin_dir, env=env)
    assert proc.returncode == 0 and "mish20" in proc.stdout, proc.stderr
    site = tmp_path / "site"
    for name, value in (("my_plugin", "mine = my_blocks"), ("broken", "broken = not_there")):
        dist = site / f"{name}-0.1.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[resnet_ablate.plugins]\n{value}\n")
    env = {"PYTHONPATH": f"{site}:{plugin_dir}", "RESNET_ABLATE_PLUGINS": ""}
    proc = run_cli("models", "mish*", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "mish20-half" in proc.stdout, proc.stderr
    assert "plugin broken (not_there) failed to load" in proc.stderr


def test_registry_names_close_matches_for_parts():
    import resnet_ablate as ra

    with pytest.raises(ValueError, match="unknown block 'botleneck'; closest: bottleneck"):
        ra.register_variant("x-bad", base="resnet20-A", block="botleneck")
    with pytest.raises(TypeError, match="needs a class attribute `expansion`"):
        ra.register_block("no-expansion")(type("NoExp", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        ra.register_shortcut("A")(lambda *a: None)


def test_an_unknown_model_a_plugin_registers_says_to_pass_plugins(plugin_dir, tmp_path):
    """`train model=mish20` beside my_blocks.py, without plugins=: the one line says which
    file names it and how to load it (the file is read as text, never run); an installed
    entry point that failed to load is named too."""
    proc = run_cli("train", "model=mish20", "--dry-run", cwd=plugin_dir,
                   env={"RESNET_ABLATE_PLUGINS": ""})
    assert_usage_error(proc, "unknown model 'mish20' (my_blocks.py in this directory names "
                             "it: pass plugins=my_blocks (or RESNET_ABLATE_PLUGINS=my_blocks) "
                             "to load it)")
    # an entry point naming a module only the working directory has: it fails to load
    site = tmp_path / "site"
    dist = site / "mine-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mine\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[resnet_ablate.plugins]\nmine = my_blocks\n")
    import os

    path = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run(  # -P: the working directory is not on sys.path, as for a script
        [sys.executable, "-P", "-m", "resnet_ablate", "complexity", "mish20", "--no-fvcore"],
        cwd=plugin_dir, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": path, "RESNET_ABLATE_PLUGINS": ""})
    assert proc.returncode == 2, proc.stderr
    warning, error = proc.stderr.splitlines()
    assert "plugin mine (my_blocks) failed to load" in warning
    assert "pass plugins=my_blocks" in error
    assert "installed plugin(s) mine (my_blocks) failed to load" in error
    # a name no file here holds: the closest names, as before
    proc = run_cli("train", "model=resnet57-A", "--dry-run", cwd=plugin_dir,
                   env={"RESNET_ABLATE_PLUGINS": ""})
    assert_usage_error(proc, "unknown model 'resnet57-A'; closest: resnet56-A")
    assert "plugins=" not in proc.stderr
