"""Inputs by reference, confined: a request names an input file relative to its organization's
input area, `FORGE_HOME/inputs/<organization>/` (or by its absolute path inside that area, which
is how the canonical document records it), and nothing outside that folder can be read through
it: not another organization's inputs, not the artifact store, not the database, neither through
`..`, `~` nor a symbolic link that leads out.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from forge_pipeline.home import forge_home
from forge_pipeline.intake.limits import MAX_PATH_CHARS

INPUTS_FOLDER = "inputs"


def input_area(organization: str) -> Path:
    """The folder an organization's requests read their input files from (`organization` is an identifier)."""
    return forge_home() / INPUTS_FOLDER / organization


def confined_input(name: str, area: Path) -> Path:
    """The resolved file that `name` (`/`-separated, relative to `area` or absolute inside it) names;
    raises ValueError with a one-line reason when the name is malformed, leads out of the area, or
    names no regular file."""
    if len(name) > MAX_PATH_CHARS:
        raise ValueError(f"at most {MAX_PATH_CHARS} characters")
    if not name.isprintable():
        raise ValueError("must not hold control characters (NUL, newline, ...)")
    relative = PurePosixPath(name)
    if name.startswith("~") or ".." in relative.parts or "\\" in name:
        raise ValueError(f"must name a file in the organization's input area {INPUTS_FOLDER}/<organization>/ "
                         "(no ~, .. or backslash)")
    try:
        root = area.resolve()
        resolved = (root / relative).resolve()  # an absolute `relative` replaces root
        if not resolved.is_relative_to(root):
            raise ValueError(f"is outside the organization's input area {INPUTS_FOLDER}/<organization>/")
        if not resolved.is_file():
            raise ValueError(f"no such file in the organization's input area: {name}")
    except OSError as error:  # a component too long, a loop of links, a folder we may not list
        raise ValueError(f"cannot be opened: {error.strerror or error}") from None
    return resolved
