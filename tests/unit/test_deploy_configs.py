"""deploy/, checked without a container engine or a cluster: the Kamailio config passes
`kamailio -c`; the compose file's robots, stores, addresses and ports agree with each other, with
the dispatcher list and with the robots' configs; the Kubernetes manifests parse, probe /ready and
/health on the robot port, and name ConfigMaps, ports and services that exist; the robot in the
ConfigMap is a valid robot. (tests/integration/sip/test_kamailio_dispatch.py runs the Kamailio
config itself.)"""

from __future__ import annotations

import inspect
import ipaddress
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sip.kamailio import KAMAILIO_CFG, check_config
from tests.unit import compose_file
from tests.unit.compose_file import environment, robot_dirs
from voiceplat.config import RobotConfig, load_config
from voiceplat.providers.llm.openai import OpenAILLMSettings
from voiceplat.telephony.http_routes import RobotHttp

yaml = pytest.importorskip("yaml")  # PyYAML (a dependency of faster-whisper's ctranslate2)

DEPLOY = compose_file.ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
PUBLIC = "203.0.113.10"  # TEST-NET-3: what a user puts in KAMAILIO_PUBLIC_ADDRESS


def dispatcher_entries(path: Path) -> list[tuple[int, str, int, dict[str, str]]]:
    """(setid, sip uri, flags, attributes) per line of a dispatcher list; asserts the format."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        assert 2 <= len(fields) <= 5, f"{path.name}:{number}: {line!r}"
        assert fields[0].isdigit() and fields[1].startswith("sip:"), f"{path.name}:{number}"
        flags = int(fields[2]) if len(fields) > 2 else 0
        attrs = dict(a.split("=", 1) for a in fields[4].split(";")) if len(fields) > 4 else {}
        entries.append((int(fields[0]), fields[1], flags, attrs))
    return entries


def host_port(uri: str) -> tuple[str, int]:
    host, _, port = uri.removeprefix("sip:").partition(":")
    return host, int(port or 5060)


# -- Kamailio ---------------------------------------------------------------------------------


@pytest.mark.parametrize("defines", [(), ("DNS_MODE=5", "PING_INTERVAL=1", "FR_TIMER=1000")])
def test_kamailio_config_passes_kamailios_own_check(defines: tuple[str, ...]) -> None:
    done = check_config(KAMAILIO_CFG, *defines)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "config file ok" in (done.stdout + done.stderr).lower()


def test_kamailio_check_catches_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "kamailio.cfg"
    broken.write_text(KAMAILIO_CFG.read_text().replace('loadmodule "dispatcher.so"', ""))
    assert check_config(broken).returncode != 0  # ds_select_dst is then unknown


def test_the_config_balances_over_set_1_that_the_lists_fill() -> None:
    cfg = KAMAILIO_CFG.read_text()
    sets = {int(n) for n in re.findall(r'ds_select_dst\("(\d+)"', cfg)}
    assert sets == {1}
    for listing in (DEPLOY / "kamailio" / "dispatcher.list", K8S / "dispatcher.list"):
        entries = dispatcher_entries(listing)
        assert len(entries) >= 2 and {e[0] for e in entries} == sets, listing
        assert all(flags == 0 for _, _, flags, _ in entries)  # active and probed


# -- docker compose ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    env = compose_file.example_env() | {"KAMAILIO_PUBLIC_ADDRESS": PUBLIC}
    return compose_file.load(env, COMPOSE.read_text())


def robots_of(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if robot_dirs(s)}


def address(service: dict[str, Any]) -> str:
    return str(service["networks"]["voice"]["ipv4_address"])


def test_compose_needs_the_public_address_of_kamailio() -> None:
    env = compose_file.example_env()
    assert env.pop("KAMAILIO_PUBLIC_ADDRESS")  # .env.example names it with an example value
    with pytest.raises(compose_file.MissingVariable, match="KAMAILIO_PUBLIC_ADDRESS"):
        compose_file.load(env, COMPOSE.read_text())


def test_compose_runs_three_robots_each_with_its_own_volumes(compose: dict[str, Any]) -> None:
    robots = robots_of(compose)
    assert sorted(robots) == ["robot-1", "robot-2", "robot-3"]
    seen: dict[str, str] = {}
    for name, service in robots.items():
        for entry in service["volumes"]:
            source, target = str(entry).split(":")[:2]
            if target.endswith(("/spool", "/logs", "/recordings")):
                assert source not in seen, f"{name} shares {source} with {seen.get(source)}"
                seen[source] = name
                assert source in compose["volumes"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_robots_take_calls_only_from_kamailio_and_load(compose: dict[str, Any]) -> None:
    kamailio = compose["services"]["kamailio"]
    subnet = ipaddress.ip_network(compose["networks"]["voice"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(address(kamailio)) in subnet
    for name, service in robots_of(compose).items():
        assert ipaddress.ip_address(address(service)) in subnet
        env = environment(service)
        (robot_dir,) = robot_dirs(service)
        config = load_config(robot_dir, env)  # the env overrides on the shipped robot
        assert config.sip is not None and config.sip.enabled, name
        allowed = config.sip.networks()
        assert any(ipaddress.ip_address(address(kamailio)) in n for n in allowed), name
        assert not any(ipaddress.ip_address(PUBLIC) in n for n in allowed), name
        # All INVITEs come from Kamailio's one address: its rate must not refuse them.
        assert config.sip.invites_per_s >= 50, name
        for variable in ("POSTGRES_DSN", "REDIS_URL"):
            host = compose_file.url(env[variable]).hostname
            assert host in compose["services"], (name, variable)


def test_compose_dispatcher_list_names_each_robot_where_it_listens(
    compose: dict[str, Any],
) -> None:
    kamailio = compose["services"]["kamailio"]
    words = [str(w) for w in kamailio["command"]]
    sockets = [words[i + 1] for i, w in enumerate(words) if w == "-l"]
    inner = [s for s in sockets if "/" not in s]  # not the one advertised to callers
    assert [s.split("/")[-1] for s in sockets if "/" in s] == [f"{PUBLIC}:5060"]
    published = {str(p) for p in kamailio["ports"]}
    callers_port = next(s for s in sockets if "/" in s).split("/")[0].rsplit(":", 1)[1]
    assert published == {f"5060:{callers_port}/udp"}
    expected = set()
    for service in robots_of(compose).values():
        (robot_dir,) = robot_dirs(service)
        config = load_config(robot_dir, environment(service))
        assert config.sip is not None
        expected.add((address(service), config.sip.port))
    entries = dispatcher_entries(DEPLOY / "kamailio" / "dispatcher.list")
    assert {host_port(uri) for _, uri, _, _ in entries} == expected
    assert {attrs.get("socket") for *_, attrs in entries} == set(inner)
    mounted = {str(v).split(":")[1] for v in kamailio["volumes"]}
    list_path = next(w for w in words if w.startswith("DISPATCHER_LIST="))
    assert json.loads(list_path.split("=", 1)[1]) in mounted


def test_compose_robot_health_is_readiness_on_the_robot_port(compose: dict[str, Any]) -> None:
    for name, service in robots_of(compose).items():
        (robot_dir,) = robot_dirs(service)
        config = load_config(robot_dir, environment(service))
        probe = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{config.ws_port}/ready" in probe, name
        assert "--host" in service["command"], name  # not only loopback inside the container


# -- Kubernetes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def robot_from_configmap(manifests: list[dict[str, Any]], tmp_path: Path) -> RobotConfig:
    data = of_kind(manifests, "ConfigMap")["voiceplat-robot"]["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    env = of_kind(manifests, "ConfigMap")["voiceplat-robot-env"]["data"]
    return load_config(tmp_path, env)


def test_the_robot_in_the_configmap_is_a_valid_robot(
    manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = robot_from_configmap(manifests, tmp_path)
    assert config.sip is not None and config.sip.enabled
    # The LLM is the shared model server, through the OpenAI-compatible provider's own settings.
    llm = OpenAILLMSettings.model_validate(config.llm)
    assert llm.provider == "openai" and llm.base_url.startswith("http://llm:")


def test_the_robot_answers_the_probe_paths() -> None:
    source = inspect.getsource(RobotHttp)
    assert '"/ready"' in source and '"/health"' in source


def test_robot_workloads_probe_ready_on_the_robot_port_and_mount_what_exists(
    manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = robot_from_configmap(manifests, tmp_path)
    config_maps = of_kind(manifests, "ConfigMap")
    workloads = of_kind(manifests, "Deployment") | of_kind(manifests, "StatefulSet")
    robots = {n: w for n, w in workloads.items() if n.startswith("voiceplat-robot")}
    assert set(robots) == {"voiceplat-robot", "voiceplat-robot-sip"}
    assert workloads["voiceplat-robot"]["kind"] == "Deployment"
    for name, workload in robots.items():
        pod = workload["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        ready = container["readinessProbe"]["httpGet"]
        assert ready["path"] == "/ready" and ports[ready["port"]] == config.ws_port, name
        assert container["livenessProbe"]["httpGet"]["path"] == "/health", name
        if "sip" in ports:
            assert config.sip is not None and ports["sip"] == config.sip.port
        served = container["command"][container["command"].index("serve") + 1]
        for mount in container["volumeMounts"]:
            if "subPath" in mount:
                assert mount["mountPath"] == f"/app/{served}/{mount['subPath']}", name
        for source in container["envFrom"]:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_services_select_pods_and_ports_that_exist(manifests: list[dict[str, Any]]) -> None:
    workloads = of_kind(manifests, "Deployment") | of_kind(manifests, "StatefulSet")
    for name, service in of_kind(manifests, "Service").items():
        matching = [
            w
            for w in workloads.values()
            if service["spec"]["selector"].items()
            <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, name
        (container,) = matching[0]["spec"]["template"]["spec"]["containers"]
        names = {p["name"] for p in container["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names, name


def test_kamailio_lists_each_sip_robot_pod_by_its_name(manifests: list[dict[str, Any]]) -> None:
    robots = of_kind(manifests, "StatefulSet")["voiceplat-robot-sip"]
    headless = of_kind(manifests, "Service")[robots["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    (container,) = robots["spec"]["template"]["spec"]["containers"]
    sip_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "sip")
    pods = {
        (f"{robots['metadata']['name']}-{n}.{headless['metadata']['name']}", sip_port)
        for n in range(robots["spec"]["replicas"])
    }
    entries = dispatcher_entries(K8S / "dispatcher.list")
    assert {host_port(uri) for _, uri, _, _ in entries} == pods


def test_kustomization_builds_the_kamailio_configmap_from_the_shipped_files(
    manifests: list[dict[str, Any]],
) -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / resource).is_file(), resource
    assert {(DEPLOY / r).resolve() for r in kustomization["resources"]} == {
        p.resolve() for p in K8S.glob("*.yaml")
    }
    (generator,) = kustomization["configMapGenerator"]
    keys = {Path(f).name for f in generator["files"]}
    assert all((DEPLOY / f).is_file() for f in generator["files"])
    kamailio = of_kind(manifests, "Deployment")["voiceplat-kamailio"]
    pod = kamailio["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == generator["name"]
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    command = shlex.join(container["command"])
    assert f"{mount['mountPath']}/kamailio.cfg" in command and "kamailio.cfg" in keys
    assert f"{mount['mountPath']}/dispatcher.list" in command and "dispatcher.list" in keys
