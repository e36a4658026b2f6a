"""The PBX side as far as it can be checked without a PBX: FreeSWITCH's XML parses and its routing
table sends each number to a robot of docker-compose.yml on that robot's port and path; the
Asterisk dialplans pass asterisklint (PyPI), and the pjsip sections refer to sections that exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT
from tests.unit import compose_file
from voiceplat.config import load_config
from voiceplat.telephony.ingress.audio_stream.settings import AudioStreamSettings

FREESWITCH = ROOT / "freeswitch"
ASTERISK = ROOT / "asterisk"
ROUTES = FREESWITCH / "dialplan" / "routes.xml"

# asterisklint 0.4.3 predates AudioSocket (Asterisk 18) and UUID() (func_uuid): registered here
# as known, everything else is its own checks (unknown apps and functions, syntax, balance).
LINT = """
import os, sys
from asterisklint.app.base import AppBase
from asterisklint.application import AppLoader
from asterisklint.func.base import FuncBase
from asterisklint.main import main
from asterisklint.varfun import FuncLoader

class AudioSocket(AppBase):
    pass

class UUID(FuncBase):
    pass

AppLoader().register(AudioSocket())
FuncLoader().register(UUID())
sys.exit(main(["dialplan-check", sys.argv[1]], os.environ))
"""
# The snippets go into an existing extensions.conf, which has [general] and [globals].
LINT_IGNORE = "H_DP_GENERAL_MISPLACED,H_DP_GLOBALS_MISPLACED"


def test_every_freeswitch_xml_file_parses() -> None:
    files = sorted(FREESWITCH.rglob("*.xml"))
    assert ROUTES in files and FREESWITCH / "conf" / "voiceplat_profile.xml" in files
    for path in files:
        ET.parse(path)  # raises ParseError naming the line


def routes() -> list[tuple[str, str, str]]:
    """(number, script, url) for each row of the routing table."""
    rows = []
    for extension in ET.parse(ROUTES).getroot().iter("extension"):
        condition = extension.find("condition")
        assert condition is not None and condition.get("field") == "destination_number"
        number = re.fullmatch(r"\^(\d+)\$", condition.get("expression") or "")
        actions = [(a.get("application"), a.get("data") or "") for a in condition.iter("action")]
        assert number and len(actions) == 1 and actions[0][0] == "lua", extension.get("name")
        script, url = actions[0][1].split()
        rows.append((number[1], script, url))
    return rows


def test_the_routing_table_sends_each_number_to_a_robot_of_the_compose_file() -> None:
    compose = compose_file.load(compose_file.example_env())
    rows = routes()
    numbers = [number for number, _, _ in rows]
    assert len(set(numbers)) == len(numbers)
    assert ("8800", "ws_bridge.lua", "ws://robot:5200/") in rows  # as before the compose file
    for number, script, url in rows:
        assert (FREESWITCH / script).is_file(), script
        parts = urlsplit(url)
        service = compose["services"].get(parts.hostname or "")
        assert service is not None, f"{number}: {parts.hostname} is no compose service"
        (folder,) = compose_file.robot_dirs(service)
        config = load_config(folder, compose_file.environment(service))
        assert parts.port == config.ws_port, number
        if script == "stream_bridge.lua":
            assert config.audio_stream is not None and config.audio_stream.enabled, number
            assert parts.path == config.audio_stream.path == AudioStreamSettings().path
        else:
            assert script == "ws_bridge.lua" and parts.path == "/", number


def test_the_image_answers_only_the_routing_table_from_private_networks() -> None:
    profile = ET.parse(FREESWITCH / "conf" / "voiceplat_profile.xml").getroot()
    params = {p.get("name"): p.get("value") for p in profile.iter("param")}
    assert params["context"] == "voiceplat"
    assert params["apply-inbound-acl"] == "rfc1918.auto"
    context = ET.parse(FREESWITCH / "conf" / "voiceplat_context.xml").getroot().find("context")
    assert context is not None and context.get("name") == "voiceplat"
    modules = ET.parse(FREESWITCH / "conf" / "modules.conf.xml").getroot()
    loaded = {m.get("module") for m in modules.iter("load")}
    assert {"mod_audio_fork", "mod_audio_stream", "mod_lua", "mod_event_socket"} <= loaded


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("asterisklint")
    env = {"ALINT_IGNORE": LINT_IGNORE, "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", LINT, str(path)],
        capture_output=True,
        text=True,
        timeout=60,  # a hang only
        env=env,
    )


@pytest.mark.parametrize(
    "path", sorted(ASTERISK.glob("extensions*.conf")), ids=lambda path: path.name
)
def test_the_asterisk_dialplans_pass_asterisklint(path: Path) -> None:
    done = lint(path)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_asterisklint_reports_a_misspelt_application_and_unbalanced_data(tmp_path) -> None:
    broken = tmp_path / "extensions.conf"
    broken.write_text(
        "[from-internal]\n"
        "exten => 8820,1,Answer()\n"
        " same => n,AudioSocket(${UUID()},robot:5270)\n"
        " same => n,Dail(PJSIP/robot@voiceplat)\n"
        " same => n,NoOp((\n"
    )
    done = lint(broken)
    assert done.returncode == 1
    assert "E_APP_MISSING: app 'Dail' does not exist" in done.stdout + done.stderr
    assert "W_APP_BALANCE" in done.stdout + done.stderr
    assert "AudioSocket" not in done.stdout + done.stderr


def pjsip_sections(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Asterisk's config format: [name] sections (a name may repeat, one per type), key=value."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(?<!\\);.*", "", raw).strip()
        if not line:
            continue
        if header := re.fullmatch(r"\[([^\]]+)\]", line):
            sections.append((header[1], {}))
            continue
        key, sep, value = line.partition("=")
        assert sep and sections, f"{path.name}: {raw!r} outside a section or without ="
        sections[-1][1][key.strip()] = value.strip()
    return sections


@pytest.mark.parametrize("path", sorted(ASTERISK.glob("pjsip*.conf")), ids=lambda path: path.name)
def test_each_pjsip_section_has_a_type_and_refers_to_sections_that_exist(path: Path) -> None:
    sections = pjsip_sections(path)
    by_type = {(name, values.get("type")) for name, values in sections}
    assert all(
        values.get("type") in {"endpoint", "aor", "auth", "identify", "transport", "registration"}
        for _, values in sections
    )
    for name, values in sections:
        for key, kind in [("aors", "aor"), ("auth", "auth"), ("endpoint", "endpoint")]:
            if key in values:
                assert (values[key], kind) in by_type, f"[{name}] {key}={values[key]}"


def entrypoint(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """freeswitch/docker-entrypoint.sh on a copy of the image's files; `echo started` as the CMD."""
    conf = tmp_path / "conf"
    (conf / "autoload_configs").mkdir(parents=True)
    (conf / "sip_profiles").mkdir()
    shutil.copy(FREESWITCH / "conf" / "event_socket.conf.xml", conf / "autoload_configs")
    shutil.copy(
        FREESWITCH / "conf" / "voiceplat_profile.xml", conf / "sip_profiles" / "voiceplat.xml"
    )
    done = subprocess.run(
        ["sh", str(FREESWITCH / "docker-entrypoint.sh"), "echo", "started"],
        capture_output=True,
        text=True,
        timeout=60,  # a hang only
        env={"PATH": "/usr/bin:/bin", "FREESWITCH_CONF": str(conf), **env},
    )
    return done, conf


def test_the_entrypoint_puts_the_esl_password_and_external_address_into_the_config(
    tmp_path,
) -> None:
    done, conf = entrypoint(
        tmp_path, FREESWITCH_ESL_PASSWORD="s3cret", FREESWITCH_EXTERNAL_IP="203.0.113.7"
    )
    assert (done.returncode, done.stdout) == (0, "started\n"), done.stderr
    socket = ET.parse(conf / "autoload_configs" / "event_socket.conf.xml").getroot()
    params = {p.get("name"): p.get("value") for p in socket.iter("param")}
    assert params["password"] == "s3cret" and params["listen-ip"] == "0.0.0.0"
    profile = ET.parse(conf / "sip_profiles" / "voiceplat.xml").getroot()
    params = {p.get("name"): p.get("value") for p in profile.iter("param")}
    assert params["ext-rtp-ip"] == params["ext-sip-ip"] == "203.0.113.7"


@pytest.mark.parametrize(
    ("password", "said"),
    [
        ("", "FREESWITCH_ESL_PASSWORD is not set"),
        ("a|b", "FREESWITCH_ESL_PASSWORD: letters and digits only"),
    ],
)
def test_the_entrypoint_refuses_a_missing_or_unsafe_password(tmp_path, password, said) -> None:
    done, conf = entrypoint(tmp_path, FREESWITCH_ESL_PASSWORD=password)
    assert done.returncode == 1 and said in done.stderr
    assert "started" not in done.stdout
    assert "@ESL_PASSWORD@" in (conf / "autoload_configs" / "event_socket.conf.xml").read_text()
