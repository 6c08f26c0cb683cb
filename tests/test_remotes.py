"""Push to and pull from real remotes: a local folder, OpenSSH on 127.0.0.1, S3 (moto) on 127.0.0.1.

Each round trip: dvc repro -> dvc push -> delete every output and the DVC cache -> dvc pull ->
every output byte-identical and `dvc status` clean.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import SSHD, SlowProxy, SshServer, free_port
from tests.test_pipeline import _make_project, _run

OUTPUTS = ("data/interim", "data/processed", "models")


def _snapshot(project: Path) -> dict[str, bytes]:
    files = {}
    for folder in OUTPUTS:
        for path in sorted((project / folder).rglob("*")) if (project / folder).exists() else []:
            if path.is_file() and path.name != ".gitignore":
                files[str(path.relative_to(project))] = path.read_bytes()
    return files


def _forget(project: Path) -> None:
    shutil.rmtree(project / ".dvc" / "cache", ignore_errors=True)
    for folder in OUTPUTS:
        for path in (project / folder).iterdir() if (project / folder).exists() else []:
            if path.name != ".gitignore":
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    return _run(["dvc", *args], project)


def _dvc_may_fail(project: Path, *args: str) -> subprocess.CompletedProcess:
    import os
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["dvc", *args], cwd=project, env=env, capture_output=True, text=True)


def _round_trip(project: Path, remote: str) -> None:
    expected = _snapshot(project)
    assert len(expected) > 10
    _dvc(project, "push", "-r", remote)
    _forget(project)
    assert _snapshot(project) == {}
    _dvc(project, "pull", "-r", remote)
    assert _snapshot(project) == expected
    assert "up to date" in _dvc(project, "status").stdout
    assert "are in sync" in _dvc(project, "status", "--cloud", "-r", remote).stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return _make_project(tmp_path_factory)


@pytest.fixture(scope="module")
def ssh(tmp_path_factory):
    if not Path(SSHD).exists():
        pytest.skip("OpenSSH server not installed (.ci/run installs Debian's openssh-server)")
    with SshServer(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def test_local_remote_round_trip(project, tmp_path):
    _dvc(project, "remote", "add", "-f", "local", str(tmp_path / "store"))
    _round_trip(project, "local")
    objects = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert 10 < len(objects) < 60, (
        "a dataset version is a handful of shard objects, not one per image"
    )


def test_ssh_remote_round_trip(project, ssh):
    _dvc(project, "remote", "add", "-f", "ssh", ssh.url())
    _dvc(project, "remote", "modify", "--local", "ssh", "keyfile", str(ssh.user_key))
    _round_trip(project, "ssh")
    assert any(ssh.storage.rglob("*.dir")), "objects live on the SSH server"


def test_s3_remote_round_trip(project):
    moto_server = pytest.importorskip("moto.server")
    import boto3

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket="fer-data")
        _dvc(project, "remote", "add", "-f", "s3", "s3://fer-data/datasets")
        _dvc(project, "remote", "modify", "s3", "endpointurl", endpoint)
        _dvc(project, "remote", "modify", "s3", "region", "us-east-1")
        _dvc(project, "remote", "modify", "--local", "s3", "access_key_id", "testing")
        _dvc(project, "remote", "modify", "--local", "s3", "secret_access_key", "testing")
        _round_trip(project, "s3")
    finally:
        server.stop()
    assert "secret_access_key" not in (project / ".dvc" / "config").read_text(), (
        "credentials stay local"
    )


def test_interrupted_push_resumes_and_verifies(project, ssh):
    """The server dies mid-push (its connection is cut); a second push completes."""
    shutil.rmtree(ssh.storage)
    ssh.storage.mkdir()
    proxy = SlowProxy(ssh.port, bytes_per_second=4_000_000)
    _dvc(project, "remote", "add", "-f", "slow", ssh.url(proxy.port))
    _dvc(project, "remote", "modify", "--local", "slow", "keyfile", str(ssh.user_key))
    _dvc(project, "remote", "add", "-f", "ssh", ssh.url())
    _dvc(project, "remote", "modify", "--local", "ssh", "keyfile", str(ssh.user_key))
    import os
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    push = subprocess.Popen(
        ["dvc", "push", "-r", "slow", "-j", "1"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [p for p in ssh.storage.rglob("*") if p.is_file()]:
        time.sleep(0.1)
    time.sleep(1.0)
    assert push.poll() is None, "the push finished before it could be interrupted"
    proxy.stop()
    output, _ = push.communicate(timeout=120)
    assert push.returncode != 0, output
    missing = _dvc_may_fail(project, "status", "--cloud", "-r", "ssh")
    assert "new:" in missing.stdout or "missing" in missing.stdout.lower(), missing.stdout

    _dvc(project, "push", "-r", "ssh")
    expected = _snapshot(project)
    _forget(project)
    _dvc(project, "pull", "-r", "ssh")
    assert _snapshot(project) == expected
    assert "up to date" in _dvc(project, "status").stdout


def test_corrupted_remote_object_is_detected(project, tmp_path):
    _dvc(project, "remote", "add", "-f", "backup", str(tmp_path / "backup"))
    _dvc(project, "push", "-r", "backup")
    _dvc(project, "remote", "add", "-f", "checked", str(tmp_path / "store"))
    _dvc(project, "remote", "modify", "checked", "verify", "true")
    _dvc(project, "push", "-r", "checked")
    objects = sorted(
        (p for p in (tmp_path / "store").rglob("*") if p.is_file() and p.suffix != ".dir"),
        key=lambda p: p.stat().st_size,
    )
    victim = objects[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    expected = _snapshot(project)
    _forget(project)
    result = _dvc_may_fail(project, "pull", "-r", "checked")
    assert result.returncode != 0, result.stdout
    assert "failed to pull" in (result.stdout + result.stderr).lower()
    restored = _snapshot(project)
    assert all(restored[k] == expected[k] for k in restored), "nothing corrupted was checked out"
    assert len(restored) < len(expected)
    shutil.rmtree(project / ".dvc" / "cache")  # drop the corrupted download, then recover
    _dvc(project, "pull", "-r", "backup")
    assert _snapshot(project) == expected


def test_ssh_remote_refusing_authentication_says_so(project, ssh):
    _dvc(project, "remote", "add", "-f", "stranger", ssh.url())
    _dvc(project, "remote", "modify", "--local", "stranger", "keyfile", str(ssh.other_key))
    result = _dvc_may_fail(project, "push", "-r", "stranger")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "Permission denied" in message and "127.0.0.1" in message
