"""The CI entry point (.ci/run) runs the default suite and the slow suite, and a slow suite that
selects nothing fails it."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ci_runs_the_default_and_the_slow_suite_and_fails_when_slow_selects_nothing(tmp_path):
    script = open(os.path.join(ROOT, ".ci", "run")).read()
    lines = [line.strip() for line in script.splitlines()]
    assert ".venv/bin/python -m pytest tests -q" in lines
    slow = [line for line in lines if line.startswith(".venv/bin/python -m pytest tests -q -m slow")]
    assert slow, "the slow suite is not run by .ci/run"
    # Run the script with install and pytest replaced: pytest -m slow answering 5 (nothing collected)
    # must fail CI with a message, and the default suite must run first.
    fake = tmp_path / "repo"
    (fake / ".ci").mkdir(parents=True)
    (fake / "scripts").mkdir()
    (fake / ".venv" / "bin").mkdir(parents=True)
    (fake / ".ci" / "run").write_text(script)
    (fake / "scripts" / "install.sh").write_text("true\n")
    log = tmp_path / "calls"
    python = fake / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {log}\ncase "$*" in *slow*) exit 5;; esac\nexit 0\n')
    python.chmod(0o755)
    result = subprocess.run(["bash", str(fake / ".ci" / "run")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "collected no test" in result.stderr
    assert log.read_text().splitlines() == ["-m pytest tests -q", "-m pytest tests -q -m slow"]
