#!/usr/bin/env python3
"""Quick start without installing anything by hand.

    python3 dev.py chat    talk to the bot in this terminal (SQLite, the bundled example configuration)
    python3 dev.py test    run the whole test suite

The first run creates .venv and installs the project into it; later runs reuse it, and reinstall
only when pyproject.toml changes. Any further arguments go to `consultbot chat` or to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".consultbot-installed"


def main(arguments: list[str]) -> int:
    """Prepare the virtualenv, then run the requested command in it."""
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py is run by whatever python3 the user has)
        print(f"consultbot needs Python 3.11 or newer; this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    if not arguments or arguments[0] not in {"chat", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    _prepare_virtualenv()
    command, rest = arguments[0], arguments[1:]
    if command == "chat":
        return subprocess.call([str(_executable("consultbot")), "chat", *rest], cwd=ROOT)
    return subprocess.call([str(_executable("python")), "-m", "pytest", *rest], cwd=ROOT)


def _prepare_virtualenv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and _executable("consultbot").exists():
        return
    if not _executable("python").exists():
        print("creating .venv ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("installing consultbot and its test tools into .venv ...", file=sys.stderr)
    pip = [str(_executable("python")), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(wanted)


def _executable(name: str) -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / f"{name}.exe"
    return VENV / "bin" / name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
