"""Every ``candor`` command in README.md and docs/ is one the CLI accepts as written
(the README's calibrate/eval/serve flow also runs end to end:
tests/integration/test_docs_commands.py)."""

from __future__ import annotations

import pytest

from service.main import build_parser
from tests.docs_commands import DocCommand, doc_commands

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
