"""Which interpreter `make install` builds the virtualenv from (scripts/python-for-venv.sh):
the first candidate that is Python 3.11+ and can make a virtualenv, else `python3`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "python-for-venv.sh"


def chosen(candidates: str) -> str:
    answer = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "PYTHON_CANDIDATES": candidates},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return answer.stdout.strip()


def fake_python(folder: Path, name: str, version: tuple[int, int]) -> Path:
    """An executable that runs this interpreter's code but reports `version`."""
    path = folder / name
    path.write_text(
        "#!/usr/bin/env bash\n"
        f'exec {sys.executable} -c "import sys; sys.version_info = {version!r}; '
        'exec(sys.stdin.read())"\n'
    )
    path.chmod(0o755)
    return path


def test_the_first_usable_candidate_is_chosen_and_missing_ones_are_passed_over(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no-such-python"
    good = fake_python(tmp_path, "good", (3, 11))
    later = fake_python(tmp_path, "later", (3, 12))
    assert chosen(f"{missing} {good} {later}") == str(good)


def test_an_older_python_is_passed_over_and_with_none_left_python3_is_used(
    tmp_path: Path,
) -> None:
    old = fake_python(tmp_path, "old", (3, 10))
    assert chosen(f"{old} {tmp_path / 'absent'}") == "python3"
    newer = fake_python(tmp_path, "newer", (3, 13))
    assert chosen(f"{old} {newer}") == str(newer)


def test_on_this_machine_the_choice_is_a_python_that_can_make_a_virtualenv() -> None:
    python = chosen("/usr/bin/python3 /usr/local/bin/python3")
    answer = subprocess.run(
        [python, "-c", "import sys, venv, ensurepip; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.stdout.strip() == "True", answer.stderr
