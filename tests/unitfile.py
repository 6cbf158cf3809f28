"""Starts a service the way its systemd unit says, where systemd is installed
but not running (a container, CI): the unit file and its drop-ins read as
systemd reads them ([Service] only; an empty ExecStart= forgets the earlier
ones), then ExecStartPre and ExecStart run with the unit's User= and Group=
(setpriv, with the uid and gid of the install root's /etc/passwd), its
EnvironmentFile=, WorkingDirectory= and UMask=, in systemd's own minimal
environment. What systemd adds around a process (the sandboxing options,
the journal) is not reproduced: systemd-analyze verify checks those lines."""

import os
import shlex
import subprocess
from pathlib import Path

# What systemd gives every service (systemd.exec(5), "Environment").
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESETTABLE = ("ExecStart", "ExecStartPre", "EnvironmentFile", "ReadWritePaths")


def read_service(*paths):
    """The [Service] settings of a unit and its drop-ins, in that order."""
    settings = {}
    for path in paths:
        section = None
        for raw in Path(path).read_text().splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section != "[Service]":
                continue
            key, _, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if key in RESETTABLE:
                settings[key] = [] if not value else settings.get(key, []) + [value]
            else:
                settings[key] = value
    return settings


def passwd_entry(root, name):
    for line in (Path(root) / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return {
                "uid": int(fields[2]),
                "gid": int(fields[3]),
                "home": fields[5],
                "shell": fields[6],
            }
    raise AssertionError(f"no user {name} in {root}/etc/passwd")


def group_id(root, name):
    for line in (Path(root) / "etc" / "group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"no group {name} in {root}/etc/group")


def environment(settings, user, root):
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8"}
    if user:
        entry = passwd_entry(root, user)
        env.update(HOME=entry["home"], USER=user, LOGNAME=user, SHELL=entry["shell"])
    for path in settings.get("EnvironmentFile", []):
        optional = path.startswith("-")
        path = Path(path.lstrip("-"))
        if optional and not path.exists():
            continue
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                env[key.strip()] = value.strip()
    return env


def argv_of(settings, user, root, line):
    argv = shlex.split(line)
    if argv[0][0] in "-@+!:":
        raise AssertionError(f"prefix {argv[0][0]} not handled here: {line}")
    if not user or user == "root":
        return argv
    uid = passwd_entry(root, user)["uid"]
    gid = group_id(root, settings.get("Group", user))
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"] + argv


def start(settings, root, log):
    """Runs ExecStartPre (each must succeed), then starts ExecStart; returns
    its Popen (its own process group), output to `log`."""
    user = settings.get("User")
    env = environment(settings, user, root)
    kw = {
        "env": env,
        "cwd": settings.get("WorkingDirectory", "/"),
        "umask": int(settings.get("UMask", "0022"), 8),
    }
    with open(log, "ab") as out:
        for line in settings.get("ExecStartPre", []):
            done = subprocess.run(
                argv_of(settings, user, root, line),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                **kw,
            )
            assert done.returncode == 0, f"ExecStartPre {line} failed: see {log}"
        (line,) = settings["ExecStart"]
        return subprocess.Popen(
            argv_of(settings, user, root, line),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kw,
        )


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
