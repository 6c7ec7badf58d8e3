"""W&B mode resolution: online only with credentials, offline otherwise."""
import pytest

from resnet_ablate.tracking import logged_in, resolve_mode


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_offline_without_credentials(no_credentials):
    assert not logged_in()
    assert resolve_mode("auto") == "offline"
    assert resolve_mode("disabled") == "disabled" and resolve_mode("online") == "online"


def test_online_with_a_netrc_entry(no_credentials):
    no_credentials.write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    no_credentials.chmod(0o600)
    assert logged_in() and resolve_mode("auto") == "online"


def test_wandb_mode_environment_wins(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("auto") == "offline"
    with pytest.raises(ValueError, match="wandb must be one of"):
        resolve_mode("sometimes")
