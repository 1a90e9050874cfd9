"""`forge-pool pool` refuses what it cannot do with one clear line and an exit code, before it starts
anything; the executor settings refuse a missing broker or malformed options by name."""

import json

import pytest

from forge_pipeline.deploy import settings
from forge_pipeline.deploy.local_pool import group_members, main


@pytest.fixture
def pool_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("arguments, message", [
    (["--workers", "0"], "--workers must be in [1, 16], got 0"),
    (["--workers", "17"], "--workers must be in [1, 16], got 17"),
    (["--queues", "cpu,gpu"], "--queues must include 'dagster'"),
    (["--queues", "dagster,tpu"], "and name only dagster, gpu, cpu; got dagster,tpu"),
    (["--database-prefix", "Forge-Pool"], "--database-prefix must match"),
])
def test_up_refuses_settings_outside_its_limits_with_exit_2(pool_home, capsys, arguments, message):
    """Bad worker counts, queues and database names are refused (exit 2) and nothing is started or written."""
    assert main(["up", *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not (pool_home / "pool").exists()


def test_up_with_an_unreachable_broker_fails_before_starting_workers(pool_home, capsys):
    """A broker nobody listens on is named in one line (exit 1); no worker was started."""
    assert main(["up", "--broker", "redis://127.0.0.1:1/0"]) == 1
    assert "cannot reach the Celery broker redis://127.0.0.1:1/0" in capsys.readouterr().err
    assert not (pool_home / "pool" / "state.json").exists()


def test_commands_on_a_home_without_a_pool(pool_home, capsys):
    """run and resume need a pool that is up (exit 1); status, down and env say there is none."""
    assert main(["run"]) == 1
    assert "no pool is up" in capsys.readouterr().err
    assert main(["resume", "0123abcd"]) == 1
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["workers"] == []
    assert main(["down"]) == 0
    assert main(["env"]) == 1


def test_process_groups_are_read_from_proc():
    """group_members finds this test's own process group and nothing for a group that does not exist."""
    import os

    assert os.getpid() in group_members(os.getpgid(0))
    assert group_members(2 ** 22 + 12345) == []


def test_celery_executor_needs_a_broker(monkeypatch):
    """FORGE_EXECUTOR=celery without FORGE_CELERY_BROKER names the missing setting."""
    monkeypatch.delenv("FORGE_CELERY_BROKER", raising=False)
    with pytest.raises(settings.SettingInvalid, match="FORGE_CELERY_BROKER"):
        settings.celery_config()


@pytest.mark.parametrize("text, message", [("{visibility", "is not JSON"), ("[1, 2]", "must be a JSON object")])
def test_transport_options_must_be_a_json_object(monkeypatch, text, message):
    """FORGE_CELERY_TRANSPORT_OPTIONS that is not a JSON object is refused by name."""
    monkeypatch.setenv("FORGE_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("FORGE_CELERY_TRANSPORT_OPTIONS", text)
    with pytest.raises(settings.SettingInvalid, match=message):
        settings.celery_config()


def test_transport_options_override_the_defaults(monkeypatch):
    """A visibility timeout from the environment replaces the default; dagster-celery's retry options stay."""
    monkeypatch.setenv("FORGE_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("FORGE_CELERY_TRANSPORT_OPTIONS", '{"visibility_timeout": 600}')
    options = settings.celery_config()["config_source"]["broker_transport_options"]
    assert options["visibility_timeout"] == 600 and options["max_retries"] == 3
