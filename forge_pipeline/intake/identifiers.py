"""One identifier grammar for every id (request, organization, project, workspace, adapter,
provider, Agent, region, tag key) and one rule for free text (tag values).

An identifier is 1 to `MAX_IDENTIFIER_CHARS` ASCII characters: a letter or digit, then letters,
digits and `_ . : -`, matched on the whole string (`re.fullmatch`: `$` would also match before a
final newline, letting `acme\\n` pass as a second `acme`). Free text is printable by
`str.isprintable`: no control characters (NUL, newline, tab, ESC), no format characters (bidi
overrides), no line or paragraph separators, no unassigned or private-use code points.
"""

from __future__ import annotations

import re

from forge_pipeline.intake.limits import MAX_IDENTIFIER_CHARS

IDENTIFIER = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{MAX_IDENTIFIER_CHARS - 1}}}")
IDENTIFIER_RULE = (f"must be 1 to {MAX_IDENTIFIER_CHARS} characters: a letter or digit, "
                   "then letters, digits and _ . : - (ASCII)")


def is_identifier(value: object) -> bool:
    return isinstance(value, str) and IDENTIFIER.fullmatch(value) is not None

