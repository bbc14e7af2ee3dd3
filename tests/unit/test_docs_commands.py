"""Every ``candor`` command in README.md and docs/ is one the CLI accepts as written
(the README's calibrate/eval/serve flow also runs end to end:
tests/integration/test_docs_commands.py)."""

from __future__ import annotations

import pytest

from service.main import build_parser
from tests.docs_commands import DocCommand, doc_commands, script_commands

COMMANDS = doc_commands()


def test_the_docs_have_commands() -> None:
    sources = {c.source.split(":")[0] for c in COMMANDS}
    assert {"README.md", "calibration.md"} <= sources, sources


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.source for c in COMMANDS])
def test_doc_command_parses(cmd: DocCommand) -> None:
    try:
        args = build_parser().parse_args(cmd.argv)
    except SystemExit as exc:  # argparse: unknown flag, bad choice, missing value
        pytest.fail(f"{cmd.source}: `{cmd.line}` is rejected by the CLI ({exc})")
    assert callable(args.func)
    for key in cmd.env:
        assert key.startswith("CANDOR_") or key in ("PATH",), (cmd.source, key)


SCRIPTS = script_commands()


@pytest.mark.parametrize("cmd, script", SCRIPTS, ids=[c.source for c, _ in SCRIPTS])
def test_doc_script_exists_and_takes_its_flags(cmd: DocCommand, script: str) -> None:
    """Scripts named in the docs exist and accept every flag the docs pass (their --help
    lists it; running them needs the engine: the benchmarks are not run in the suite)."""
    import re
    import subprocess
    import sys

    from tests.docs_commands import REPO

    assert (REPO / script).is_file(), f"{cmd.source}: {script} does not exist"
    flags = set(re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", cmd.line))
    if not flags:
        return
    out = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"{script} --help failed: {out.stderr[-500:]}"
    missing = [f for f in flags if f not in out.stdout]
    assert not missing, f"{cmd.source}: {script} does not take {missing}"
