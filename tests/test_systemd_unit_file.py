"""The shipped systemd files: the unit verifies cleanly, scores <= 1.5 on systemd-analyze
security, carries the hardening the design names; the node and sysctl drop-ins work."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need
from fixtures_systemd import unit_python

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD_DIR / "cluster-watchdog.service"
INSTALLED_EXE = "/opt/cluster-watchdog/bin/cluster-watchdog"


def need_analyze() -> None:
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze (systemd package)")


def service_section(path: Path) -> dict[str, list[str]]:
    """``[Service]`` keys of a unit file, each with all its values (keys may repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def installable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's program swapped for one that exists on this machine.

    ``systemd-analyze verify`` fails when ExecStart's program is missing, and
    /opt/cluster-watchdog exists only after installation. The venv's ``cluster-watchdog``
    script is used when present (the arguments stay as shipped), else /bin/true.
    """
    venv_exe = Path(sys.prefix) / "bin" / "cluster-watchdog"
    exe = str(venv_exe) if venv_exe.exists() else "/bin/true"
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_EXE} " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={INSTALLED_EXE} ", f"ExecStart={exe} "))
    return copy


def test_the_unit_runs_the_installed_daemon_as_specified() -> None:
    service = service_section(UNIT)
    assert service["ExecStart"] == [f"{INSTALLED_EXE} run -c /etc/cluster-watchdog/config.yaml"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30s",
        "Restart": "always",
        "RestartSec": "5s",
        "RestartPreventExitStatus": "78",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "StateDirectory": "cluster-watchdog",
        "ConfigurationDirectory": "cluster-watchdog",
    }
    assert {k: service[k][-1] for k in expected} == expected
    env = " ".join(service["Environment"])
    assert "PYTHONFAULTHANDLER=1" in env and "PYTHONUNBUFFERED=1" in env
    # LoadCredential= lines are examples only: a missing credential file fails every start.
    assert "LoadCredential" not in service
    assert "#LoadCredential=vllm-api-key:" in UNIT.read_text()


def test_the_unit_carries_the_hardening_the_design_names() -> None:
    service = service_section(UNIT)
    hardening = {
        "DynamicUser": "yes",
        "CapabilityBoundingSet": "",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "RestrictNamespaces": "yes",
        "PrivateDevices": "yes",
        "PrivateTmp": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "ProtectClock": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectProc": "invisible",
        "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
    }
    assert {k: service.get(k, ["<missing>"])[-1] for k in hardening} == hardening
    assert "@system-service" in service["SystemCallFilter"]


def test_systemd_analyze_verify_prints_nothing(tmp_path: Path) -> None:
    need_analyze()
    # verify exits 0 on unknown keys and bad values, printing only a warning: demand silence.
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(installable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_would_catch_a_typo_in_the_unit(tmp_path: Path) -> None:
    need_analyze()
    copy = installable_copy(tmp_path)
    copy.write_text(copy.read_text().replace("ProtectClock=yes", "ProtectClok=yes"))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert "Unknown key 'ProtectClok'" in result.stderr


def exposure(unit: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit.parent,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_the_exposure_score_is_at_most_1_5(tmp_path: Path) -> None:
    need_analyze()
    score = exposure(installable_copy(tmp_path))
    assert score <= 1.5, f"systemd-analyze security: {score}"


def test_the_exposure_score_would_notice_lost_hardening(tmp_path: Path) -> None:
    need_analyze()
    copy = installable_copy(tmp_path)
    copy.write_text(
        re.sub(r"(?m)^(CapabilityBoundingSet|SystemCallFilter)=.*$", "", copy.read_text())
    )
    assert exposure(copy) > 1.5 + 1.0


def test_the_node_drop_in_verifies_against_ssh_service(tmp_path: Path) -> None:
    need_analyze()
    shipped = Path("/lib/systemd/system/ssh.service")
    ssh = tmp_path / "ssh.service"
    if shipped.exists():
        shutil.copy(shipped, ssh)
    else:  # openssh-server not installed: a stand-in is enough to parse the drop-in
        ssh.write_text("[Service]\nExecStart=/bin/true\n")
    (tmp_path / "ssh.service.d").mkdir()
    shutil.copy(SYSTEMD_DIR / "node-sshd-oom.conf", tmp_path / "ssh.service.d" / "cw.conf")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(ssh)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    service = service_section(SYSTEMD_DIR / "node-sshd-oom.conf")
    # Sessions inherit the unit's oom_score_adj through sshd: it must not be lowered here.
    assert "OOMScoreAdjust" not in service
    assert service["MemoryMin"] == ["64M"]


def test_the_sysctl_drop_in_parses_and_opens_the_full_group_range() -> None:
    parser = configparser.ConfigParser()
    parser.read_string("[sysctl]\n" + (SYSTEMD_DIR / "99-cluster-watchdog-ping.conf").read_text())
    assert parser["sysctl"]["net.ipv4.ping_group_range"] == "0 2147483647"


@pytest.mark.parametrize("apply", [False, True])
def test_the_sysctl_drop_in_lets_an_unprivileged_user_open_a_ping_socket(apply: bool) -> None:
    # In a throw-away network namespace (net.* sysctls are per namespace), as nobody.
    tools = [shutil.which(t) for t in ("unshare", "setpriv", "sysctl")]
    python = unit_python()
    need(all(tools) and python is not None, "unshare, setpriv, sysctl and a world-usable python")
    assert python is not None
    conf = SYSTEMD_DIR / "99-cluster-watchdog-ping.conf"
    probe = (
        "import socket as s\n"
        "try:\n s.socket(s.AF_INET, s.SOCK_DGRAM, s.IPPROTO_ICMP); print('ok')\n"
        "except OSError as e: print(e.strerror)"
    )
    script = (
        f"{'sysctl -q -p ' + str(conf) + ' && ' if apply else ''}"
        'exec setpriv --reuid=65534 --regid=65534 --clear-groups "$0" -c "$1"'
    )
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, python[0], probe],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout.strip() == ("ok" if apply else "Permission denied"), result.stderr
