"""Personal data: caller numbers masked in log lines, old JSON records deleted by age, one caller's
JSON records and recordings forgotten, and a store that is down reported rather than raised."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from voiceplat.cli import main
from voiceplat.config import RobotConfig
from voiceplat.privacy.masking import MaskCallerFilter, mask_caller_numbers_in_logs, mask_numbers
from voiceplat.privacy.retention import keep_records
from voiceplat.privacy.stores import Selection, delete_json_records, safe_url
from voiceplat.storage.jsonfile import JsonFileSink
from voiceplat.storage.records import CallRecord, CallSnapshot

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ALICE, BOB = "+79161234567", "+79990001122"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("INVITE from +79161234567 accepted", "INVITE from +7***67 accepted"),
        ("From: <sip:+79161234567@10.0.0.1:5060>", "From: <sip:+7***67@10.0.0.1:5060>"),
        ("caller 8 (916) 123-45-67 hung up", "caller 8***67 hung up"),
        ("caller +7 916 123 45 67", "caller +7***67"),
        ('{"caller": "79161234567"}', '{"caller": "7***67"}'),
    ],
)
def test_phone_numbers_in_a_line_are_masked(line: str, masked: str) -> None:
    assert mask_numbers(line) == masked


@pytest.mark.parametrize(
    "line",
    [
        "listening on 192.168.100.200:5060",
        "wrote logs/20261202_143347_sip_abc.json",
        "ports 5060 5061 5062",
        "at 1733150000.123",
        "call 3f2a1b4c123456789",
    ],
)
def test_other_numbers_stay(line: str) -> None:
    assert mask_numbers(line) == line


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """A handler on a private logger, masked as `serve` masks the root logger's handlers."""
    logger = logging.getLogger("test_privacy")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        assert mask_caller_numbers_in_logs(logger) == 1
        assert mask_caller_numbers_in_logs(logger) == 1  # installing twice masks once
        assert sum(isinstance(f, MaskCallerFilter) for f in handler.filters) == 1
        yield out
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_the_log_filter_masks_messages_arguments_and_tracebacks(logged: io.StringIO) -> None:
    logger = logging.getLogger("test_privacy")
    logger.info("SIP INVITE from %s to %s", ALICE, "100")
    try:
        raise ValueError(f"no route to sip:{BOB}@pbx")
    except ValueError:
        logger.exception("call failed")
    text = logged.getvalue()
    assert "INFO SIP INVITE from +7***67 to 100" in text
    assert "no route to sip:+7***22@pbx" in text
    assert ALICE not in text and BOB not in text


def test_privacy_defaults_keep_records_and_log_numbers() -> None:
    privacy = RobotConfig().privacy
    assert privacy.mask_caller_in_logs is False and privacy.retention_days is None
    with pytest.raises(ValueError):
        RobotConfig.model_validate({"privacy": {"retention_days": 0}})


def test_a_selection_of_every_call_is_refused() -> None:
    with pytest.raises(ValueError, match="every call"):
        Selection(robot="robot")


def write_record(
    logs: Path, call_id: str, caller: str, started: datetime, robot: str = "robot", **fields: object
) -> Path:
    sink = JsonFileSink(logs)
    call = CallRecord(
        call_id=call_id, robot=robot, mode="pipeline", caller=caller, started_at=started, **fields
    )
    asyncio.run(sink.write(CallSnapshot(call=call)))
    return sink.path_for(call)


def test_retention_deletes_json_records_of_calls_started_too_long_ago(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    old = write_record(logs, "old", ALICE, NOW - timedelta(days=31))
    recent = write_record(logs, "recent", ALICE, NOW - timedelta(days=29))
    (logs / "notes.json").write_text("{}")  # not a record file: never touched
    deleted = delete_json_records(logs, Selection(started_before=NOW - timedelta(days=30)))
    assert deleted.calls == ["old"] and deleted.error is None
    assert not old.exists() and recent.exists() and (logs / "notes.json").exists()


async def test_the_retention_task_sweeps_at_start_and_then_every_interval(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    clock = iter([NOW.timestamp(), (NOW + timedelta(days=2)).timestamp()])
    await asyncio.to_thread(write_record, logs, "a", ALICE, NOW - timedelta(days=31))
    await asyncio.to_thread(write_record, logs, "b", ALICE, NOW - timedelta(days=29))
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            assert sorted(p.name.split("_")[-1] for p in logs.iterdir()) == ["b.json"]
            return
        raise asyncio.CancelledError  # the robot stops

    with pytest.raises(asyncio.CancelledError):
        await keep_records(
            "robot", logs, {}, 30, interval_s=3600, clock=lambda: next(clock), sleep=sleep
        )
    assert sleeps == [3600, 3600] and list(logs.iterdir()) == []  # b went at the second sweep


def robot_folder(tmp_path: Path, env: str = "") -> Path:
    robot = tmp_path / "robot"
    robot.mkdir()
    (robot / "config.json").write_text(json.dumps({"recording": {"enabled": True}}))
    (robot / ".env").write_text(env)
    return robot


def test_forget_deletes_one_callers_json_records_and_recordings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("POSTGRES_DSN", "MONGO_URI", "REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    robot = robot_folder(tmp_path)
    day = robot / "recordings" / "2026-12-02"
    day.mkdir(parents=True)
    outside = tmp_path / "keep.wav"  # a record naming a file outside the recordings folder
    for path in (day / "a1.wav", day / "a2.flac", day / "b1.wav", outside):
        path.write_bytes(b"RIFF")
    a1 = write_record(robot / "logs", "a1", ALICE, NOW, recording=str(day / "a1.wav"))
    a2 = write_record(robot / "logs", "a2", ALICE, NOW, recording=str(outside))
    b1 = write_record(robot / "logs", "b1", BOB, NOW, recording=str(day / "b1.wav"))

    assert main(["forget", ALICE, str(robot)]) == 0
    out = capsys.readouterr().out
    assert f"json records {robot / 'logs'}: 2 call(s) deleted" in out
    assert f"recordings {robot.absolute() / 'recordings'}: 2 recording file(s) deleted" in out
    assert f"forgot 2 call(s) of {ALICE}" in out
    assert not a1.exists() and not a2.exists() and b1.exists()
    assert not (day / "a1.wav").exists() and not (day / "a2.flac").exists()
    assert (day / "b1.wav").exists() and outside.exists()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_a_store_that_is_down_is_reported_and_the_rest_cleaned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("POSTGRES_DSN", "MONGO_URI", "REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    dsn = f"postgresql://voiceplat:secret@127.0.0.1:{closed_port()}/voiceplat"
    redis_url = f"redis://127.0.0.1:{closed_port()}/0"
    robot = robot_folder(tmp_path, f"POSTGRES_DSN={dsn}\nREDIS_URL={redis_url}\n")
    record = write_record(robot / "logs", "a1", ALICE, NOW)

    assert main(["forget", ALICE, str(robot)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert not record.exists()
    assert any(line.startswith(f"postgres {safe_url(dsn)}: NOT cleaned: ") for line in lines)
    assert any(line.startswith(f"redis {redis_url}: NOT cleaned: ") for line in lines)
    assert "secret" not in captured.out and "Traceback" not in captured.out + captured.err


def test_forget_reports_a_folder_that_is_not_a_robot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["forget", ALICE, str(tmp_path / "nowhere")]) == 1
    assert f"{tmp_path / 'nowhere'}: no such robot folder" in capsys.readouterr().err


def test_safe_url_hides_the_password_only() -> None:
    assert safe_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert safe_url("redis://h:6379/0") == "redis://h:6379/0"


def _unmask_root() -> None:
    for handler in logging.getLogger().handlers:
        for masking in [f for f in handler.filters if isinstance(f, MaskCallerFilter)]:
            handler.removeFilter(masking)


@pytest.mark.parametrize("masked", [True, False])
def test_serve_masks_caller_numbers_when_the_robot_says_so(
    masked: bool,
    make_robot: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    robot = make_robot(privacy={"mask_caller_in_logs": masked})
    monkeypatch.delenv("VOICEPLAT_WEB_TOKEN", raising=False)
    try:
        # A web service on 0.0.0.0 without a token: serve stops before anything listens, after
        # reading the robot's config (and installing the mask when it asks for one).
        assert main(["serve", str(robot), "--web-port", "1", "--web-host", "0.0.0.0"]) == 1
        logging.getLogger("voiceplat.test").warning("SIP INVITE from %s", ALICE)
    finally:
        _unmask_root()
    expected = "SIP INVITE from +7***67" if masked else f"SIP INVITE from {ALICE}"
    assert expected in caplog.text


async def test_the_robots_record_retention_starts_only_when_configured(
    make_robot: Callable[..., Path],
) -> None:
    from voiceplat.privacy.retention import start_record_retention
    from voiceplat.robot import load_robot

    assert start_record_retention(load_robot(make_robot("keeps"))) is None
    robot = load_robot(make_robot("forgets", privacy={"retention_days": 30}))
    old = await asyncio.to_thread(
        write_record,
        robot.logs_dir,
        "old",
        ALICE,
        datetime.now(UTC) - timedelta(days=31),
        robot.name,
    )
    swept = asyncio.Event()

    async def sleep(seconds: float) -> None:  # after the first sweep: until cancelled
        swept.set()
        await asyncio.Event().wait()

    task = start_record_retention(robot, sleep=sleep)
    assert task is not None
    try:
        async with asyncio.timeout(60):
            await swept.wait()
    finally:
        task.cancel()
    assert not old.exists()


def test_forget_says_when_a_spool_still_holds_the_callers_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voiceplat.storage.clean import encode_item
    from voiceplat.storage.records import CallOpened

    for variable in ("POSTGRES_DSN", "MONGO_URI", "REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    robot = robot_folder(tmp_path)
    spool = robot / "spool"
    spool.mkdir()

    def line(call_id: str, caller: str) -> bytes:
        call = CallRecord(call_id=call_id, robot="robot", mode="pipeline", caller=caller)
        return encode_item(CallOpened(call=call)).line

    written = line("a-written", ALICE)  # before the offset: the store has it
    (spool / "postgres.jsonl").write_bytes(written + line("a-pending", ALICE) + line("b", BOB))
    (spool / "postgres.offset").write_text(str(len(written)).zfill(20))

    assert main(["forget", ALICE, str(robot)]) == 1
    out = capsys.readouterr().out
    assert (
        f"spool {spool / 'postgres.jsonl'}: NOT cleaned: 1 call(s) of this caller not yet "
        "written to the store there; run forget again once the store has them"
    ) in out
    assert "a-written" not in out and f"forgot 0 call(s) of {ALICE}" in out
