"""The producer side: never loads worker code or onnxruntime; CLI help, settings, Celery config."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis
from click.testing import CliRunner
from pydantic import ValidationError

from infra.celery_app import celery_config
from infra.errors import BatchConflict
from infra.params import BlurParams
from infra.settings import Settings
from infra.status import BatchStatus, StatusStore
from producer.cli import main
from producer.cli.progress import render
from producer.client import Client


def test_producer_imports_no_worker_code_and_no_onnxruntime() -> None:
    code = (
        "import sys, producer.cli, producer.client, producer.local.stack, producer.local.demo\n"
        "import infra.models\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(producer.cli.main, ['submit', '--help'])\n"
        "bad = [m for m in sys.modules if m.startswith(('workers', 'onnxruntime'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_every_command_with_examples() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in (
        "submit",
        "status",
        "watch",
        "cancel",
        "worker",
        "flower",
        "models",
        "blur",
        "matte",
        "dev",
        "demo",
    ):
        assert f"  {command} " in result.output
    assert "blurq submit --prefix s3://" in result.output


def test_submit_refuses_bad_options_with_one_line() -> None:
    result = CliRunner().invoke(main, ["submit", "--out", "s3://b/o/", "--strength", "300"])
    assert result.exit_code == 2 and "strength" in result.output


def test_flower_off_loopback_needs_auth() -> None:
    result = CliRunner().invoke(main, ["flower", "--address", "0.0.0.0"])
    assert result.exit_code == 1 and "--basic-auth" in result.output


def test_settings_keep_visibility_above_hard_limit() -> None:
    with pytest.raises(ValidationError, match="visibility_timeout"):
        Settings(task_time_limit=600, visibility_timeout=500)
    with pytest.raises(ValidationError, match="soft"):
        Settings(task_soft_time_limit=300, task_time_limit=300)


def test_celery_config_follows_the_design() -> None:
    config = celery_config(Settings(redis_url="redis://example:1/0"))
    assert config["accept_content"] == ["json"] and config["task_serializer"] == "json"
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["worker_cancel_long_running_tasks_on_connection_loss"]
    assert config["worker_send_task_events"] and config["task_send_sent_event"]
    transport = config["broker_transport_options"]
    assert (
        transport["visibility_timeout"] > config["task_time_limit"] > config["task_soft_time_limit"]
    )
    assert transport["queue_order_strategy"] == "priority"
    queues = [queue.name for queue in config["task_queues"]]
    assert queues == ["interactive", "bulk", "webhooks", "expand"]
    assert config["broker_url"] == "redis://example:1/0"


def test_progress_line_counts_and_eta() -> None:
    running = BatchStatus(
        "b",
        total=10,
        queued=5,
        running=1,
        done=3,
        failed=1,
        created_at=100.0,
        started_at=101.0,
        finished_at=None,
        submitted=True,
        output="s3://o/",
    )
    line = render(running, now=108.0)
    assert "4/10" in line and "done 3" in line and "failed 1" in line and "queued 5" in line
    assert "estimating" in line and "ETA" not in line  # 4 images in 7 s: too short to tell
    line = render(running, now=117.0)
    assert "0.25 img/s" in line and "ETA 24s" in line  # 4 images in the 16 s since the start
    finished = BatchStatus(
        "b",
        total=2,
        queued=0,
        running=0,
        done=2,
        failed=0,
        created_at=0.0,
        started_at=1.0,
        finished_at=90.0,
        submitted=True,
        output="",
    )
    assert "ETA" not in render(finished) and "in 1m30s" in render(finished)


def test_follow_writes_a_line_per_change_when_not_a_terminal() -> None:
    import io

    from producer.cli.progress import follow, shown

    def snapshot(done: int) -> BatchStatus:
        return BatchStatus(
            "b",
            total=2,
            queued=2 - done,
            running=0,
            done=done,
            failed=0,
            created_at=0.0,
            started_at=0.0,
            finished_at=None if done < 2 else 5.0,
            submitted=True,
            output="",
        )

    states = iter([snapshot(0), snapshot(0), snapshot(1), snapshot(1), snapshot(2)])
    out = io.StringIO()
    final = follow(lambda: shown(next(states)), out, poll=0)
    lines = out.getvalue().splitlines()
    assert final.done == 2 and len(lines) == 3 and "\r" not in out.getvalue()
    assert lines[-1].startswith("[" + "#" * 30 + "] 2/2")


def test_submit_refuses_a_bad_aperture_before_connecting() -> None:
    result = CliRunner().invoke(
        main, ["submit", "s3://b/x.jpg", "--out", "s3://b/o/", "--aperture", "2"]
    )
    assert result.exit_code == 2 and "3..12 blades" in result.output


def test_resubmitting_a_batch_id_differently_is_a_conflict(
    settings: Settings, status_store: StatusStore, redis_client: redis.Redis
) -> None:
    client = Client(settings, status=status_store)

    def submit(output: str = "s3://out/x/", strength: int = 40, key: str = "a.jpg") -> str:
        params = BlurParams(strength=strength)
        uris = [f"s3://inp/{key}"]
        return client.submit(uris=uris, output=output, params=params, batch_id="b1")

    assert submit() == "b1" and submit() == "b1"  # the same again: the same batch
    with pytest.raises(BatchConflict, match="exists with other inputs, output, parameters"):
        submit(strength=41)
    with pytest.raises(BatchConflict):
        submit(output="s3://out/y/")
    with pytest.raises(BatchConflict):
        submit(key="b.jpg")  # other inputs under the same id
    assert redis_client.llen("interactive") == 1  # one message: nothing sent again
    argv = ["submit", "s3://inp/a.jpg", "--out", "s3://out/x/", "--batch-id", "b1"]
    result = CliRunner().invoke(main, [*argv, "--redis-url", settings.redis_url])
    assert result.exit_code == 1 and "exists with other" in result.output
