"""W&B done by W&B: its own login check, offline without credentials, and collect's W&B
API path replayed from a recorded fixture of real runs (tests/fixtures)."""
import json
from pathlib import Path

import pytest

from conftest import run_python
from resnet_ablate.analysis.collect import collect
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
    """One recorded run, with the attributes collect reads from wandb.Api's runs."""

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
        self.made += found  # every run handed out, to see what collect asked of each
        return found


def test_collect_through_the_wandb_api_from_a_recorded_fixture(tmp_path):
    api = _Api(json.loads(FIXTURE.read_text()))
    store = tmp_path / "s.duckdb"
    c = collect([], wandb_path="me/resnet-ablate", group="g1", api=api, store=store)
    assert api.calls == [("me/resnet-ablate", {"group": "g1"})]
    # only the keys the store keeps, as this (0.2) run spelled them: training, evaluations
    assert [r.scans for r in api.made] == [
        [["iteration", "lr", "train/loss", "train/err"],
         ["iteration", "val/loss", "val/err", "test/loss", "test/err"]]] * 2
    assert sorted(c.runs["model"]) == ["plain20", "resnet20-A"]
    assert c.runs["condition"].nunique() == 2 and set(c.runs["status"]) == {"finished"}
    r = c.runs.set_index("model").loc["resnet20-A"]
    assert r["depth"] == 20 and r["protocol_fields.lr"] == 0.1 and r["dataset"] == "digits"
    assert r["final_train_err"] == r["final_train_err_running"]  # the paper's, by name
    # W&B's training numbers are means over log_every (10) iterations; evaluations exact
    history = c.history()
    train = history[history["train_err"].notna()]
    assert set(train["granularity"]) == {"window:10"}
    assert set(history.loc[history["test_err"].notna(), "granularity"]) == {"evaluation"}
    assert sorted(set(train["iteration"])) == [10, 20, 30, 40]
    first = json.loads(FIXTURE.read_text())[0]["history"][0]
    row = history[(history["iteration"] == first["iteration"]) & history["train_err"].notna()]
    assert first["train/err"] in set(row["train_err"])
    again = collect([], wandb_path="me/resnet-ablate", group="g1", api=api, store=store)
    assert [r.scans for r in api.made[2:]] == [[], []]  # unchanged runs: history not read
    assert len(again.history()) == len(history)


def test_collect_wandb_needs_a_login_or_a_good_path(tmp_path, no_credentials, cli_inproc):
    from conftest import assert_usage_error

    assert_usage_error(cli_inproc("collect", "--runs", tmp_path, "--wandb", "me/proj"),
                       "no W&B login found")

    class Broken(_Api):
        def runs(self, path, filters=None):
            raise ValueError("Could not find project proj")

    with pytest.raises(ValueError, match="collect --wandb me/proj: ValueError: Could not "
                                         "find project"):
        collect([], wandb_path="me/proj", api=Broken([]))
    with pytest.raises(ValueError, match="--wandb must be ENTITY/PROJECT"):
        collect([], wandb_path="just-a-project", api=_Api([]))


def test_a_local_run_and_its_wandb_record_count_once(tmp_path):
    """`collect --runs runs --wandb ...` over the same runs: the local record (full
    resolution) counts, the W&B one is noted as the same run, nothing is skipped."""
    from synthetic import write_run

    records = json.loads(FIXTURE.read_text())
    write_run(tmp_path / "runs", records[0]["name"], model="plain20")
    c = collect([tmp_path / "runs"], wandb_path="me/resnet-ablate", api=_Api(records),
                store=tmp_path / "s.duckdb")
    assert c.skipped == [] and len(c.runs) == len(records)
    assert any(f"wandb:me/resnet-ablate/{records[0]['id']}: the same run as" in w
               for w in c.warnings)
    local = c.runs.set_index("run_id").loc[records[0]["name"], "source"]
    assert not local.startswith("wandb:")
