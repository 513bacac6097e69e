"""Linux diagnose: iscsid and multipathd through systemctl (or pidof where systemd is not
PID 1), iscsid.conf's values or open-iscsi's built-in defaults, the initiator name."""

from pathlib import Path

from saltext_win_iscsi import diagnosis
from saltext_win_iscsi.openiscsi.readiness import Programs, facts

NO_SYSTEMD = "System has not been booted with systemd as init system (PID 1). Can't operate."


def fake(path: Path, script: str) -> str:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def etc(tmp_path: Path, conf: str, name: str | None = "iqn.2003-01.org.example:host") -> str:
    (tmp_path / "iscsid.conf").write_text(conf)
    if name is not None:
        (tmp_path / "initiatorname.iscsi").write_text(f"# generated\nInitiatorName={name}\n")
    return str(tmp_path / "iscsid.conf")


def test_without_systemd_pidof_decides_and_defaults_are_named(tmp_path):
    systemctl = fake(
        tmp_path / "systemctl",
        f'case "$1" in is-active) echo "{NO_SYSTEMD}" >&2; exit 1;;\n'
        '  is-enabled) case "$2" in iscsid.socket) echo enabled;; *) echo disabled;; esac;;\n'
        "esac\n",
    )
    pidof = fake(tmp_path / "pidof", '[ "$1" = iscsid ] && { echo 42; exit 0; }; exit 1\n')
    conf = etc(tmp_path, "node.startup = automatic\nnode.session.timeo.replacement_timeout = 15\n")
    items = diagnosis.linux(facts(conf, Programs(systemctl, pidof, 10))).result()["items"]
    assert items["iscsid.running"]["verdict"] == "ok"
    assert "pidof iscsid" in items["iscsid.running"]["value"]["seen_by"]
    assert items["iscsid.enabled"]["value"] == {
        "iscsid.service": "disabled",
        "iscsid.socket": "enabled",
    }
    assert items["iscsid.enabled"]["verdict"] == "ok"
    assert items["iscsid_conf.node.startup"] == {"value": "automatic", "verdict": "ok"}
    assert items["iscsid_conf.node.session.timeo.replacement_timeout"]["value"] == "15"
    noop = items["iscsid_conf.node.conn[0].timeo.noop_out_interval"]
    assert noop["value"] == "5" and "default" in noop["why"]
    assert items["initiator.names"]["value"] == ["iqn.2003-01.org.example:host"]
    assert items["multipathd.running"]["verdict"] == "warn"


def test_systemd_units_and_an_unreadable_name_file(tmp_path):
    systemctl = fake(
        tmp_path / "systemctl",
        'case "$1" in is-active) [ "$2" = iscsid.socket ] && echo active || echo inactive;;\n'
        '  is-enabled) echo "Failed to get unit file state for $2: No such file" >&2; exit 1;;\n'
        "esac\n",
    )
    pidof = fake(tmp_path / "pidof", "exit 1\n")
    conf = etc(tmp_path, "", name=None)
    items = diagnosis.linux(facts(conf, Programs(systemctl, pidof, 10))).result()["items"]
    assert items["iscsid.running"]["verdict"] == "ok"
    assert "iscsid.socket active" in items["iscsid.running"]["value"]["seen_by"]
    assert items["iscsid.enabled"]["verdict"] == "warn"
    assert items["initiator.names"]["verdict"] == "unknown"
    assert "initiatorname.iscsi" in items["initiator.names"]["why"]
    assert items["multipathd.running"]["verdict"] == "warn"


def test_in_a_chroot_systemctl_ignores_is_active_and_pidof_decides(tmp_path):
    systemctl = fake(
        tmp_path / "systemctl",
        "echo \"Running in chroot, ignoring command '$1'\" >&2; exit 0\n",
    )
    pidof = fake(tmp_path / "pidof", '[ "$1" = iscsid ] && { echo 7; exit 0; }; exit 1\n')
    conf = etc(tmp_path, "")
    items = diagnosis.linux(facts(conf, Programs(systemctl, pidof, 10))).result()["items"]
    assert items["iscsid.running"]["value"]["seen_by"] == ("pidof iscsid (systemd is not PID 1): 7")
