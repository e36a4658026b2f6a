"""docker-compose.yml, checked without a container engine: every store a service names exists with
the same credentials, migrations run before the robots, each robot serves a shipped robot folder on
the port it publishes and checks, call records and models are in named volumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

from tests.unit import compose_file
from tests.unit.compose_file import MissingVariable, environment, load, robot_dirs
from voiceplat.config import RobotConfig, load_config
from voiceplat.recording.settings import recordings_dir

pytest.importorskip("yaml")  # PyYAML (a dependency of faster-whisper's ctranslate2 and of tests)

STORE_URLS = ("POSTGRES_DSN", "MONGO_URI", "REDIS_URL")
ROBOTS_DIR = compose_file.ROOT / "robots"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(compose_file.example_env())


def store_problems(compose: dict[str, Any]) -> list[str]:
    """Each POSTGRES_DSN / MONGO_URI / REDIS_URL against the service it names."""
    services = compose["services"]
    problems = []
    for name, service in services.items():
        env = environment(service)
        for variable in STORE_URLS:
            if variable not in env:
                continue
            url = compose_file.url(env[variable])
            target = services.get(url.hostname or "")
            if target is None:
                problems.append(f"{name}: {variable} names {url.hostname!r}, which is no service")
                continue
            problems += [f"{name}: {variable}: {line}" for line in _credentials(url, target)]
    return problems


def _credentials(url: Any, store: dict[str, Any]) -> list[str]:
    env = environment(store)
    user, password = unquote(url.username or ""), unquote(url.password or "")
    if url.scheme == "postgresql":
        expected = (env.get("POSTGRES_USER"), env.get("POSTGRES_PASSWORD"), env.get("POSTGRES_DB"))
        got = (user, password, url.path.lstrip("/"))
        return [] if got == expected and url.port == 5432 else [f"{got} != {expected} (or port)"]
    if url.scheme == "mongodb":
        root = (env.get("MONGO_INITDB_ROOT_USERNAME"), env.get("MONGO_INITDB_ROOT_PASSWORD"))
        # The root user lives in the admin database, whatever database the URI selects.
        auth_source = parse_qs(url.query).get("authSource")
        if (user, password) != root or auth_source != ["admin"] or url.port != 27017:
            return [f"{(user, password, auth_source)} != {root}, authSource admin"]
        return []
    if url.scheme == "redis":
        words = compose_file.command(store)
        required = words[words.index("--requirepass") + 1] if "--requirepass" in words else None
        return (
            [] if password == required and url.port == 6379 else [f"{password!r} != {required!r}"]
        )
    return [f"unknown scheme {url.scheme!r}"]


def test_the_stores_are_postgres_16_mongo_7_redis_7_with_health_checks_and_data_volumes(
    compose,
) -> None:
    services = compose["services"]
    for name, image, data_dir in [
        ("postgres", "postgres:16", "/var/lib/postgresql/data"),
        ("mongo", "mongo:7", "/data/db"),
        ("redis", "redis:7", "/data"),
    ]:
        assert services[name]["image"] == image
        assert services[name]["healthcheck"]["test"][0] == "CMD"
        volume = compose_file.mounts(services[name])[data_dir]
        assert volume in compose["volumes"], f"{name}: {volume} is not a named volume"


def test_every_store_a_service_names_exists_with_the_same_credentials(compose) -> None:
    assert store_problems(compose) == []
    users = [n for n, s in compose["services"].items() if set(STORE_URLS) <= environment(s).keys()]
    assert {"migrate", "robot", "robot-english", "robot-script", "web"} <= set(users)
    # The redis health check logs in with the same password too.
    redis = compose["services"]["redis"]
    assert environment(redis)["REDISCLI_AUTH"] == compose_file.example_env()["REDIS_PASSWORD"]


def test_a_password_that_differs_from_the_store_is_reported(compose) -> None:
    broken = compose_file.resolve(compose, {})
    broken["services"]["robot"]["environment"]["MONGO_URI"] = (
        "mongodb://voiceplat:other@mongo:27017/voiceplat?authSource=admin"
    )
    broken["services"]["web"]["environment"]["REDIS_URL"] = "redis://:x@cache:6379/0"
    problems = store_problems(broken)
    assert any(line.startswith("robot: MONGO_URI:") and "other" in line for line in problems)
    assert "web: REDIS_URL names 'cache', which is no service" in problems


def test_every_variable_is_in_env_example_and_a_missing_password_stops_compose() -> None:
    used = compose_file.variables(compose_file.COMPOSE.read_text())
    example = compose_file.example_env()
    assert set(used) <= set(example), f"not in .env.example: {set(used) - set(example)}"
    required = {name for name, op in used.items() if op.endswith("?")}
    assert {"POSTGRES_PASSWORD", "MONGO_PASSWORD", "REDIS_PASSWORD", "VOICEPLAT_WEB_TOKEN"} <= (
        required
    )
    # The passwords go into URLs: the example's are letters and digits, as it asks.
    secrets = {name for name in required if name.endswith(("PASSWORD", "TOKEN"))}
    assert len(secrets) == 5 and all(example[name].isalnum() for name in secrets)
    with pytest.raises(MissingVariable, match=r"POSTGRES_PASSWORD: set POSTGRES_PASSWORD in \.env"):
        load({**example, "POSTGRES_PASSWORD": ""})


def test_migrations_run_once_before_every_robot_and_the_web_service(compose) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert compose_file.command(migrate) == [".venv/bin/voiceplat", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "mongo": {"condition": "service_healthy"},
    }
    runners = [name for name, service in services.items() if robot_dirs(service)]
    assert {"robot", "robot-english", "robot-script", "robot-realtime", "web"} == set(runners)
    for name in runners:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def robot_services(compose: dict[str, Any]) -> dict[str, tuple[Path, RobotConfig]]:
    """Service -> (robot folder, its config as that service's environment makes it)."""
    found = {}
    for name, service in compose["services"].items():
        words = compose_file.command(service)
        if words[:2] == [".venv/bin/voiceplat", "serve"]:
            (folder,) = robot_dirs(service)
            found[name] = (folder, load_config(folder, environment(service)))
    return found


def test_every_shipped_robot_has_a_service_serving_it_on_the_port_it_publishes(compose) -> None:
    robots = robot_services(compose)
    shipped = {path.parent for path in ROBOTS_DIR.glob("*/config.json")}
    assert {folder for folder, _ in robots.values()} == shipped
    for name, (_folder, config) in robots.items():
        service = compose["services"][name]
        assert config.ws_port in compose_file.container_ports(service), name
        health = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{config.ws_port}/health" in health, name
        if config.sip is not None:
            assert config.sip.port in compose_file.container_ports(service), name
        if config.audiosocket is not None:
            assert config.audiosocket.port in compose_file.container_ports(service), name


def test_the_default_robot_serves_mod_audio_stream_and_audiosocket_for_the_pbx_recipes(
    compose,
) -> None:
    folder, config = robot_services(compose)["robot"]
    assert folder.name == "pipeline_russian"
    assert config.audio_stream is not None and config.audio_stream.enabled
    assert config.audiosocket is not None and config.audiosocket.port == 5270


def test_models_and_call_records_are_in_named_volumes(compose) -> None:
    volumes = compose["volumes"]
    for name, (folder, config) in robot_services(compose).items():
        mounted = compose_file.mounts(compose["services"][name])
        app = Path("/app") / folder.relative_to(compose_file.ROOT)
        # The same paths inside the container as the robot computes for its folder.
        records = {
            app / config.logs_dir,
            app / recordings_dir(folder, config.recording).relative_to(folder),
            app / "spool",
        }
        assert {str(path) for path in records} <= set(mounted), name
        assert mounted["/root/.cache/voiceplat"] == "models"
        assert set(mounted.values()) <= set(volumes), name
    for name, service in compose["services"].items():
        named = {src for src in compose_file.mounts(service).values() if not src.startswith(".")}
        assert named <= set(volumes), f"{name}: undeclared volumes {named - set(volumes)}"


def test_the_web_service_shows_the_robots_on_any_address_with_a_token(compose) -> None:
    web = compose["services"]["web"]
    words = compose_file.command(web)
    assert words[:2] == [".venv/bin/voiceplat", "web"]
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert (
        environment(web)["VOICEPLAT_WEB_TOKEN"] == compose_file.example_env()["VOICEPLAT_WEB_TOKEN"]
    )
    assert int(words[words.index("--port") + 1]) in compose_file.container_ports(web)
    served = {folder for folder, _ in robot_services(compose).values()}
    assert set(robot_dirs(web)) <= served
    # The call pages play the robots' recordings: the same volumes as the robots write.
    for folder in robot_dirs(web):
        path = f"/app/robots/{folder.name}/recordings"
        assert compose_file.mounts(web)[path] == f"{folder.name.replace('_', '-')}-recordings"


def test_freeswitch_is_built_from_the_freeswitch_folder_with_the_robots_esl_password(
    compose,
) -> None:
    freeswitch = compose["services"]["freeswitch"]
    assert freeswitch["build"] == "./freeswitch"
    password = environment(freeswitch)["FREESWITCH_ESL_PASSWORD"]
    robot = environment(compose["services"]["robot"])
    assert robot[robot["VOICEPLAT_AUDIO_STREAM__ESL_PASSWORD_ENV"]] == password
    assert robot["VOICEPLAT_AUDIO_STREAM__ESL_HOST"] == "freeswitch"
    # Every file the image copies exists in the build context.
    dockerfile = compose_file.ROOT / "freeswitch" / "Dockerfile"
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (compose_file.ROOT / "freeswitch" / source).is_file(), source
