"""The named limits of the intake boundary: every document (request, pool file, rate card) is
parsed under them, and each is checked before the work it bounds (README, "Intake limits and
canonical forms"). A value past a limit is refused with its field path, never truncated.

Sizes are bytes of UTF-8 text; lengths are characters; depths count nested mappings and lists.
"""

# Documents. JSON is parsed by CPython's C parser (~100 MB/s here); YAML by PyYAML's pure-Python
# loader (~0.1 MB/s here), whose safe subclass is the only one that can refuse aliases and count
# nodes while composing, so a YAML document is held to a smaller size: large inline data goes in
# JSON, or in a file under the organization's input area.
MAX_JSON_BYTES = 8 << 20
MAX_YAML_BYTES = 32 << 10
MAX_DEPTH = 32  # nesting of mappings and lists; the deepest contract (topk_similarity inline) uses 4
MAX_NODES = 2_000_000  # scalars, mappings and lists in one document (a 1M-component inline matrix)
MAX_STRING_CHARS = 4_096  # any string scalar or mapping key
MAX_LIST_ITEMS = 1_048_576  # any one list (primitives bound their own lists further)
MAX_MAPPING_KEYS = 1_024  # any one mapping

# Numbers, counted on the literal as written.
MAX_INTEGER_DIGITS = 40  # an integer literal's digits (uint64 has 20); base prefixes count as written
MAX_DECIMAL_DIGITS = 64  # a decimal's mantissa digits, leading zeros of the integer part excluded
MAX_DECIMAL_EXPONENT = 64  # |e| of an exponent written in a decimal (`1e-64` is the smallest such)

# Identifiers and free text.
MAX_IDENTIFIER_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
MAX_TAGS = 32
MAX_PATH_CHARS = 1_024  # an input file's name, relative to the organization's input area
