"""Load calibration profiles, at startup and for a hot reload, the same way.

``load_calibration`` reads every artifact ``CANDOR_CALIBRATION`` (or a reload's source)
names (format, version, fitted model), checks each one's pinned serving settings
against the server's (a difference that changes a signal is refused, naming each; the
chat template once the engine is up) and derives the settings the pins imply
(``adopt_pins``). Explicit paths are strict: any failure raises ``CalibrationError``;
the shipped ``builtin`` profiles are lenient: one that does not fit is skipped, and
why is kept. The result is exactly the profiles the source names: ``none`` is no
profile at all (the uncalibrated fallback), and nothing loaded before survives.

A reload over HTTP names its source like ``CANDOR_CALIBRATION`` does; ``reload_sources``
confines its paths to ``CANDOR_CALIBRATION_DIR`` (``Settings.calibration_root``): each
path, and each ``.json`` in a folder it names, must lie inside the directory once
resolved (``..`` and symlinks followed), or the reload is a 400 ``PathRefused`` whose
message is one constant, so an answer never tells whether a file outside the directory
exists. Whoever can write inside the directory is trusted (a link swapped between the
check and the read is theirs to make). ``CANDOR_CALIBRATION`` itself (startup, SIGHUP,
a reload without a source) is the operator's and is not confined. ``validate_reload``
turns a bad artifact into ``ArtifactRejected`` (HTTP 400, ``param: source``); the
caller keeps the active profiles. ``CandorState`` does the swap, and ``reload_reply``
says what it changed (``ReloadResponse``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from service.calibration.pinning import compare, serving_settings
from service.calibration.profiles import load_profiles, parse_sources
from service.cascade.policy import UncalibratedModel
from service.cascade.profiles import Profiles
from service.config import Settings
from service.errors import ArtifactRejected, BadRequest, CalibrationError
from service.schemas import ReloadResponse

if TYPE_CHECKING:
    from service.calibration.artifact import CalibratedModel

MAX_ARTIFACT_BYTES = 64 * 2**20
PATH_REFUSED = ("source must be builtin, none, or .json files or folders inside "
                "CANDOR_CALIBRATION_DIR (relative paths start there)")
log = logging.getLogger(__name__)


class PathRefused(BadRequest):
    """A reload path outside ``CANDOR_CALIBRATION_DIR``: one message for every such path,
    whether or not it exists (not a ``CalibrationError``: no loader swallows it)."""

    def __init__(self) -> None:
        super().__init__(PATH_REFUSED, param="source")


def inside(path: Path, root: Path) -> Path:
    """``path`` resolved (``..`` and symlinks followed); ``PathRefused`` unless it lies in
    ``root`` (resolved already). Decided on names alone: nothing outside is opened."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
        raise PathRefused() from exc
    if not resolved.is_relative_to(root):
        raise PathRefused()
    return resolved


def reload_sources(value: str, root: Path) -> tuple[list[str], bool]:
    """(sources, strict) for a reload's ``source``, read as ``parse_sources`` reads
    ``CANDOR_CALIBRATION``; each path (relative ones start at ``root``) resolved inside
    ``root`` and a folder expanded to its ``*.json`` entries, each of them resolved inside
    ``root`` too (a link out of the folder is refused like the path itself)."""
    sources, strict = parse_sources(value)
    if not strict:  # builtin: the package's own files
        return sources, strict
    root = root.resolve()
    files: list[str] = []
    for source in sources:
        path = inside(root / source, root)  # root / an absolute path is that path
        try:
            is_dir = path.is_dir()
            entries = sorted(path.glob("*.json")) if is_dir else [path]
        except OSError as exc:  # inside the directory: saying why reveals nothing outside
            raise CalibrationError(f"cannot read {path}: {exc}") from exc
        if is_dir and not entries:
            raise CalibrationError(f"no calibration artifacts (*.json) in {path}")
        files += [str(inside(e, root)) for e in entries]
    return files, strict


def _reader(base: Settings, root: Path | None = None) -> Callable[[Path], CalibratedModel]:
    """Reads one artifact; with ``root``, only one that resolves inside it."""
    from service.calibration.artifact import load_artifact

    def read(path: Path) -> CalibratedModel:
        if root is not None:
            path = inside(path, root)
        try:
            if not path.exists():
                raise CalibrationError(f"cannot read calibration artifact {path}: no such file")
            if path.suffix != ".json" or not path.is_file():  # never /proc, devices or dirs
                raise CalibrationError(f"{path} is not a .json file")
            if path.stat().st_size > MAX_ARTIFACT_BYTES:
                raise CalibrationError(f"{path} is over 64 MiB; not a calibration artifact")
        except OSError as exc:
            raise CalibrationError(f"cannot read calibration artifact {path}: {exc}") from exc
        return load_artifact(path, expected_model=base.model_name,
                             fallback=(base.answer_threshold, base.abstain_threshold))
    return read


def pin_check(base: Settings, template: str | None) -> Callable[[CalibratedModel], None]:
    """Refuse an artifact whose signal settings differ from these (naming each); the chat
    template is compared only when the engine's is known (``template``)."""
    current = serving_settings(base, template)

    def check(model: CalibratedModel) -> None:
        refuse, warn = compare(model.spec.settings, current, check_template=template is not None)
        if refuse:
            raise CalibrationError(
                f"calibration artifact {model.id} (profile {model.spec.profile}) was fitted "
                f"under other serving settings; {'; '.join(refuse)}. Serve with the "
                "calibrated settings or recalibrate")
        for line in warn:
            log.warning("calibration %s: %s", model.id, line)
    return check


def adopt_pins(base: Settings, profiles: Profiles[CalibratedModel]) -> Settings:
    """Requests without ``max_tokens`` get their profile's calibrated one (``Cascade``),
    unless CANDOR_DEFAULT_MAX_TOKENS was set; the limit makes room for it."""
    pins = sorted({m.spec.settings.answer_max_tokens for m in profiles.models.values()})
    if not pins:
        return base
    if "default_max_tokens" in base.model_fields_set:
        for m in profiles.models.values():
            if m.spec.settings.answer_max_tokens != base.default_max_tokens:
                log.warning("calibration %s: CANDOR_DEFAULT_MAX_TOKENS=%d differs from the "
                            "calibrated %d: requests without max_tokens carry no promise",
                            m.id, base.default_max_tokens, m.spec.settings.answer_max_tokens)
        return base
    update: dict[str, object] = {"max_tokens_limit": max(base.max_tokens_limit, pins[-1])}
    if len(pins) == 1:
        update["default_max_tokens"] = pins[0]
    return base.model_copy(update=update)


def load_calibration(base: Settings, value: str | None = None,
                     template: str | None = None) -> tuple[Profiles[CalibratedModel], Settings]:
    """The profiles ``value`` (default: CANDOR_CALIBRATION) names, and the settings their
    pins imply."""
    sources, strict = parse_sources(base.calibration if value is None else value)
    return _load(base, sources, strict, template)


def _load(base: Settings, sources: list[str], strict: bool, template: str | None,
          root: Path | None = None) -> tuple[Profiles[CalibratedModel], Settings]:
    uncal = UncalibratedModel(base.answer_threshold, base.abstain_threshold)
    profiles = load_profiles(sources, strict, _reader(base, root), pin_check(base, template),
                             uncal)
    for line in profiles.skipped:
        log.warning("shipped calibration profile not served: %s", line)
    for m in profiles.models.values():
        if m.spec.guarantee and not m.spec.default_supported:
            log.warning("calibration %s (profile %s): the default target risk %g is not "
                        "certified; requests that set no policy.target_risk abstain",
                        m.id, m.spec.profile, m.spec.default_alpha)
    return profiles, adopt_pins(base, profiles)


def validate_reload(source: str | None, base: Settings,
                    template: str | None) -> tuple[Profiles[CalibratedModel], Settings, str]:
    """A reload's profiles, exactly those ``source`` names (nothing is kept from before),
    their settings, and the source as loaded. ``None``: re-read CANDOR_CALIBRATION (the
    operator's, unconfined); otherwise a client's source, its paths confined to
    ``base.calibration_root`` (``PathRefused``). A bad artifact: ``ArtifactRejected``."""
    try:
        if source is None:
            return (*load_calibration(base, None, template), base.calibration)
        root = base.calibration_root.resolve()
        sources, strict = reload_sources(source, root)
        loaded = ",".join(sources) if strict else sources[0]
        return (*_load(base, sources, strict, template, root if strict else None),
                loaded or "none")
    except CalibrationError as exc:
        raise ArtifactRejected(exc.message, param="source") from exc


def reload_reply(before: Mapping[str, str], after: Mapping[str, str], loaded: str,
                 skipped: Iterable[str] = ()) -> ReloadResponse:
    """What a reload changed, from the active sets (profile -> artifact id) before and
    after it: profiles added, removed, replaced (another id) and re-read (the same id)."""
    both = before.keys() & after.keys()
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    replaced = sorted(n for n in both if before[n] != after[n])
    unchanged = sorted(n for n in both if before[n] == after[n])
    changed = bool(added or removed or replaced)
    return ReloadResponse(
        reloaded=changed or bool(unchanged), changed=changed, source=loaded,
        profiles=dict(after), previous=dict(before), added=added, removed=removed,
        replaced=replaced, unchanged=unchanged, skipped=list(skipped))
