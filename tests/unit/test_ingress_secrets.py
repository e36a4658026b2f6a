"""`voiceplat check` names an ingress secret whose variable is not set (every connection would be
refused at the handshake, with no hint at startup)."""

from __future__ import annotations

from pathlib import Path

from voiceplat.cli import main
from voiceplat.robot import load_robot


def test_unset_secret_variables_are_named(make_robot, capsys) -> None:
    robot = make_robot(
        asterisk_ws={"password_env": "ASTERISK_WS_PASSWORD"},
        twilio={"auth_token_env": "TWILIO_AUTH_TOKEN"},
    )
    assert main(["check", str(robot)]) == 1
    err = capsys.readouterr().err
    assert "asterisk_ws.password_env: the variable ASTERISK_WS_PASSWORD is not set" in err
    assert "twilio.auth_token_env: the variable TWILIO_AUTH_TOKEN is not set" in err


def test_set_variables_and_disabled_ingresses_are_fine(make_robot) -> None:
    robot_dir: Path = make_robot(
        asterisk_ws={"password_env": "ASTERISK_WS_PASSWORD"},
        audio_stream={"enabled": False, "token_env": "AUDIO_STREAM_TOKEN"},
    )
    (robot_dir / ".env").write_text("ASTERISK_WS_PASSWORD=secret\n")
    assert load_robot(robot_dir).problems() == []
