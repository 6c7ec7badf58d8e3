"""W&B done by W&B: its own login check, offline without credentials, and `pull` (a W&B
project's runs written as run directories) replayed from a recorded fixture of real runs
(tests/fixtures: two offline runs of today's harness, read back by W&B's own reader)."""
import json
import os
from pathlib import Path

import pytest

from conftest import run_python
from resnet_ablate.analysis.pull import pull
from resnet_ablate.analysis.rundirs import read_runs
from resnet_ablate.tracking import logged_in, resolve_mode

FIXTURE = Path(__file__).parent / "fixtures" / "wandb_api_runs.json"


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "netrc"


def test_offline_without_credentials(no_credentials):
    assert not logged_in()
    assert resolve_mode("auto") == "offline"
    assert resolve_mode("disabled") == "disabled" and resolve_mode("online") == "online"


def test_online_with_a_key_wandb_itself_finds(no_credentials):
    """In a process of its own: wandb.login keeps what it found for the process."""
    import os

    code = "from resnet_ablate.tracking import resolve_mode; print(resolve_mode('auto'))"
    env = {**os.environ, "WANDB_API_KEY": "a" * 40}
    out = run_python(code, env=env, timeout=120)
    assert out.stdout.strip() == "online", out.stderr


def test_wandb_mode_environment_wins(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("auto") == "offline"
    with pytest.raises(ValueError, match="wandb must be one of"):
        resolve_mode("sometimes")


class _Run:
    """One recorded run, with the attributes pull reads from wandb.Api's runs."""

    def __init__(self, rec):
        self.id, self.name, self.state = rec["id"], rec["name"], rec["state"]
        self.group = rec["group"]
        self.config, self.summary, self._history = rec["config"], rec["summary"], rec["history"]
        self.scans = []

    def scan_history(self, keys=None, page_size=1000, min_step=0, max_step=None):
        """As W&B's: with keys, only the rows that have all of them, and only those keys."""
        self.scans.append(keys)
        if keys is None:
            return iter(self._history)
        return iter([{k: row[k] for k in keys} for row in self._history
                     if all(k in row for k in keys)])


class _Api:
    def __init__(self, records):
        self.records, self.calls, self.made = records, [], []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        group = (filters or {}).get("group")
        found = [_Run(r) for r in self.records if group in (None, r["group"])]
        self.made += found  # every run handed out, to see what pull asked of each
        return found


def test_pull_writes_wandb_runs_as_run_directories(tmp_path, cli_inproc):
    api = _Api(json.loads(FIXTURE.read_text()))
    to = tmp_path / "pulled"
    written, skipped = pull("me/resnet-ablate", to, group="g1", api=api)
    assert api.calls == [("me/resnet-ablate", {"group": "g1"})] and skipped == []
    assert sorted(written) == ["fx-plain20", "fx-resnet20-A"]
    # only the keys the history keeps: the training windows, then the evaluations
    assert [r.scans for r in api.made] == [
        [["iteration", "lr", "train_loss", "train_err"],
         ["iteration", "val_loss", "val_err", "test_loss", "test_err"]]] * 2
    c = read_runs([to])  # read as local runs are: there is no second way in
    assert sorted(c.runs["model"]) == ["plain20", "resnet20-A"] and c.skipped == []
    assert c.runs["condition"].nunique() == 2 and set(c.runs["status"]) == {"finished"}
    r = c.runs.set_index("model").loc["resnet20-A"]
    assert r["depth"] == 20 and r["protocol_fields.lr"] == 0.1 and r["dataset"] == "digits"
    assert r["final_train_err"] == r["final_train_err_running"]  # the paper's, by name
    assert r["history_granularity"] == "window:10"
    # the local record's condition: W&B's config is a projection of the same record
    local = json.loads(FIXTURE.read_text())[1]["config"]["condition"]
    assert r["condition"] == local
    history = c.history()
    train = history[history["train_err"].notna()]
    assert set(train["granularity"]) == {"window:10"}
    assert sorted(set(train["iteration"])) == [10, 20, 30, 40]
    first = json.loads(FIXTURE.read_text())[0]["history"][0]
    row = history[(history["iteration"] == first["iteration"]) & history["train_err"].notna()]
    assert first["train_err"] in set(row["train_err"])
    curves = c.curves(c.runs)
    assert set(curves["iteration"]) == {20, 40}  # the evaluations, binned as local runs are
    stamps = {p: p.stat().st_mtime_ns for p in to.rglob("*")}
    again = pull("me/resnet-ablate", to, group="g1", api=api)
    assert sorted(again[0]) == sorted(written) and again[1] == []
    assert {p: p.stat().st_mtime_ns for p in to.rglob("*")} == stamps  # left as they are
    assert [r.scans for r in api.made[2:]] == [[], []]  # the same record: history not read


def test_pull_skips_what_it_cannot_write_in_one_line(tmp_path):
    records = json.loads(FIXTURE.read_text())
    bad = [dict(records[0], id="x1", name="../escape"),
           dict(records[1], id="x2", name="fx-bad", history=records[1]["history"] + [
               {"iteration": -3, "lr": 0.1, "train_loss": 1.0, "train_err": 5.0}])]
    taken = tmp_path / "pulled" / records[0]["name"]
    taken.mkdir(parents=True)
    (taken / "summary.json").write_text(json.dumps({"run_id": records[0]["name"],
                                                    "model": "x", "family": "resnet",
                                                    "depth": 1, "status": "failed"}))
    written, skipped = pull("me/p", tmp_path / "pulled", api=_Api(records + bad))
    assert written == [records[1]["name"]]
    why = dict(skipped)
    assert "holds another run of that name; not overwritten" in why["wandb:me/p/fx-plain20"]
    assert "run_id must be 1-128 ASCII letters" in why["wandb:me/p/x1"]
    assert "its history has iteration -3, outside [0, 40]" in why["wandb:me/p/x2"]
    assert sorted(os.listdir(tmp_path / "pulled")) == sorted(
        [records[0]["name"], records[1]["name"]])  # nothing half-written


def test_pull_needs_a_login_and_a_good_path(tmp_path, no_credentials, cli_inproc):
    from conftest import assert_usage_error

    assert_usage_error(cli_inproc("pull", "me/proj", "--to", tmp_path / "p"),
                       "no W&B login found")

    class Broken(_Api):
        def runs(self, path, filters=None):
            raise ValueError("Could not find project proj")

    with pytest.raises(ValueError, match="pull me/proj: ValueError: Could not find project"):
        pull("me/proj", tmp_path / "p", api=Broken([]))
    with pytest.raises(ValueError, match="pull takes ENTITY/PROJECT"):
        pull("just-a-project", tmp_path / "p", api=_Api([]))
    assert not (tmp_path / "p").exists()
