"""The supervisor's stop: SIGTERM to each process group, SIGKILL after the grace period, and
grandchildren that escaped their group are still found (the supervisor is a subreaper).

Runs the supervisor code in a separate Python process, since becoming a subreaper would change
how this pytest process adopts orphans for the rest of the session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from tradeos_pipelines.core.settings import PROJECT_ROOT

SUPERVISOR = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import psutil
    from tradeos_pipelines.devstack import processes
    from tradeos_pipelines.devstack.processes import ChildProcess

    logs = Path(sys.argv[1])
    processes.become_subreaper()
    stubborn = ChildProcess(
        "stubborn",
        # Ignores SIGTERM, and leaves a grandchild in a new session (outside its group).
        ["bash", "-c", "trap '' TERM; setsid sleep 300 & sleep 300 & wait"],
        logs / "stubborn.log",
        lambda: True,
    )
    polite = ChildProcess("polite", ["sleep", "300"], logs / "polite.log", lambda: True)
    for child in (stubborn, polite):
        processes.start_child(child, {"PATH": "/usr/bin:/bin"}, logs)
    time.sleep(1.0)
    tree = [p.pid for p in psutil.Process().children(recursive=True)]
    started = time.monotonic()
    killed = processes.stop_children([stubborn, polite], grace_seconds=1.0)
    elapsed = time.monotonic() - started
    left = [p.pid for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE]
    print(json.dumps({"tree": tree, "killed": killed, "elapsed": elapsed, "left": left}))
    """
)


def run_supervisor(script: str, tmp_path: Path) -> dict:
    """Run a supervisor script in a fresh interpreter; its last stdout line is a JSON report."""
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_stop_escalates_and_reaches_escaped_grandchildren(tmp_path: Path) -> None:
    report = run_supervisor(SUPERVISOR, tmp_path)
    assert len(report["tree"]) >= 4  # bash, two sleeps under it, the polite sleep
    assert report["killed"] == ["stubborn"]
    # At least the 1 s grace before escalating; a generous upper limit for a loaded machine.
    assert 1.0 <= report["elapsed"] < 20
    assert report["left"] == []
    alive = []
    for pid in report["tree"]:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.cmdline())
        except psutil.NoSuchProcess:
            pass
    assert alive == []


def test_polite_children_stop_without_waiting_for_the_grace_period(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys, time
        from pathlib import Path
        from tradeos_pipelines.devstack import processes
        from tradeos_pipelines.devstack.processes import ChildProcess

        logs = Path(sys.argv[1])
        children = [
            ChildProcess(f"sleeper{i}", ["sleep", "300"], logs / f"s{i}.log", lambda: True)
            for i in range(3)
        ]
        for child in children:
            processes.start_child(child, {"PATH": "/usr/bin:/bin"}, logs)
        started = time.monotonic()
        killed = processes.stop_children(children, grace_seconds=20)
        print(json.dumps({"killed": killed, "elapsed": time.monotonic() - started,
                          "codes": [c.exited() for c in children]}))
        """
    )
    report = run_supervisor(script, tmp_path)
    assert report["killed"] == []
    assert report["elapsed"] < 5
    assert report["codes"] == [-15, -15, -15]
