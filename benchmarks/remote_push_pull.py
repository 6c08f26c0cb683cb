"""Benchmark: push and pull one dataset version to a local folder remote and an SSH remote.

usage: python benchmarks/remote_push_pull.py PROJECT

PROJECT is a repro'd copy of this project (benchmarks/pipeline_real.py --keep DIR gives one with
the full real FER2013 data at DIR/project). For each remote: files and bytes one version pushes,
push time, then pull time into an empty cache and workspace, and a byte-for-byte check. The SSH
remote is Debian's OpenSSH on 127.0.0.1 (needs openssh-server).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import SshServer  # noqa: E402
from tests.test_remotes import _dvc, _dvc_may_fail, _forget, _snapshot  # noqa: E402


def measure(project: Path, remote: str, storage: Path) -> None:
    expected = _snapshot(project)
    start = time.perf_counter()
    _dvc(project, "push", "-r", remote)
    pushed = time.perf_counter() - start
    files = [p for p in storage.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files) / 2**20
    _forget(project)
    start = time.perf_counter()
    _dvc(project, "pull", "-r", remote)
    pulled = time.perf_counter() - start
    same = _snapshot(project) == expected
    print(
        f"{remote:6s}: {len(files)} objects, {size:.1f} MiB; push {pushed:.1f} s, pull {pulled:.1f} s; "
        f"byte-identical after pull: {same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project")
    args = parser.parse_args()
    project = Path(args.project)
    outputs = sum(
        1
        for folder in ("data/interim", "data/processed")
        for p in (project / folder).rglob("*")
        if p.is_file()
    )
    print(f"{project}: {outputs} output files")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _dvc(project, "remote", "add", "-f", "bench_local", str(tmp / "local"))
        measure(project, "bench_local", tmp / "local")
        with SshServer(tmp / "sshd") as ssh:
            _dvc(project, "remote", "add", "-f", "bench_ssh", ssh.url())
            _dvc(project, "remote", "modify", "--local", "bench_ssh", "keyfile", str(ssh.user_key))
            measure(project, "bench_ssh", ssh.storage)
        _dvc_may_fail(project, "remote", "modify", "--local", "--unset", "bench_ssh", "keyfile")
        for remote in ("bench_local", "bench_ssh"):
            _dvc_may_fail(project, "remote", "remove", remote)


if __name__ == "__main__":
    main()
