"""The one parsing boundary: request documents, pool files and rate cards are read here, under the
limits of `forge_pipeline.intake.limits`, into plain data that the validators can trust to be small.

- Size first: a document over its format's limit is refused before it is decoded or parsed.
- JSON (a document starting with `{` or `[`): its nesting depth is counted on the text before
  CPython's parser runs (that parser recurses); integers longer than `MAX_INTEGER_DIGITS` are
  never converted; numbers with a fraction or exponent become `DecimalNumber` (their text, no
  float); `NaN`/`Infinity` and duplicate keys are refused.
- YAML (anything else): PyYAML's safe loader, composing with a depth and node count, refusing
  anchors and aliases (so no alias bomb can expand), keeping dates and decimals as their text,
  and refusing duplicate keys, long strings and long integers before they are constructed.

Every value that breaks a limit is reported with its field path, all at once (`RequestInvalid`);
a syntax error is one problem naming its line. The result holds only dict, list, str, int, bool,
None and `DecimalNumber`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent

from forge_pipeline.intake.decimals import DecimalNumber
from forge_pipeline.intake.limits import (MAX_DEPTH, MAX_INTEGER_DIGITS, MAX_JSON_BYTES, MAX_LIST_ITEMS,
                                          MAX_MAPPING_KEYS, MAX_NODES, MAX_STRING_CHARS, MAX_YAML_BYTES)
from forge_pipeline.intake.problems import Problem, Problems, RequestInvalid, join

# A JSON string (unrolled, so a long string is one linear match) or a bracket outside strings.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


@dataclass(frozen=True)
class Refused:
    """Put in place of a value the parser would not build; the limits walk reports it by path."""

    message: str


def load_document(text: str | bytes, source: str = "(document)") -> Any:
    """Parse a JSON or YAML document under the intake limits; raises RequestInvalid naming every problem."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_JSON_BYTES:
        raise RequestInvalid([Problem(source, f"{size} bytes; a document is at most {MAX_JSON_BYTES} bytes")])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestInvalid([Problem(source, f"not UTF-8 text ({error.reason} at byte {error.start})")]) from None
    if text.lstrip().startswith(("{", "[")):
        document = _load_json(text, source)
    else:
        if size > MAX_YAML_BYTES:
            raise RequestInvalid([Problem(source, f"{size} bytes of YAML; YAML is at most {MAX_YAML_BYTES} bytes "
                                                  f"(JSON at most {MAX_JSON_BYTES})")])
        document = _load_yaml(text, source)
    check_limits(document)
    return document


def check_limits(document: Any) -> None:
    """Walk a parsed document (or one built in Python) once, iteratively: depth, node count, string,
    list and mapping sizes, refused literals and non-JSON types; raises RequestInvalid with every path."""
    problems = Problems()
    pending = [(document, "", 0)]
    nodes = 0
    while pending:
        value, path, depth = pending.pop()
        nodes += 1
        if nodes > MAX_NODES:
            problems.add("(document)", f"more than {MAX_NODES} values")
            break
        where = path or "(document)"
        if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
            problems.add(where, f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(value, dict):
            if len(value) > MAX_MAPPING_KEYS:
                problems.add(where, f"{len(value)} keys; a mapping has at most {MAX_MAPPING_KEYS}")
                continue
            for key, item in value.items():
                if isinstance(key, Refused):
                    problems.add(join(path, "(key)"), key.message)
                elif isinstance(key, str) and len(key) > MAX_STRING_CHARS:
                    problems.add(join(path, key[:32] + "..."), f"a key is at most {MAX_STRING_CHARS} characters")
                else:
                    pending.append((item, join(path, str(key)), depth + 1))
        elif isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                problems.add(where, f"{len(value)} items; a list has at most {MAX_LIST_ITEMS}")
                continue
            pending.extend((item, join(path, index), depth + 1) for index, item in enumerate(value))
        elif isinstance(value, Refused):
            problems.add(where, value.message)
        elif isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                problems.add(where, f"{len(value)} characters; a string is at most {MAX_STRING_CHARS}")
        elif isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > MAX_INTEGER_DIGITS * 10 // 3:
                problems.add(where, f"an integer of more than {MAX_INTEGER_DIGITS} digits")
        elif not (value is None or isinstance(value, (bool, float, DecimalNumber))):
            problems.add(where, f"a {type(value).__name__} is not a JSON value")
    problems.found.sort(key=lambda problem: problem.path)
    problems.raise_if_any()


def _load_json(text: str, source: str) -> Any:
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, token.start()) + 1
                raise RequestInvalid([Problem(source, f"nested deeper than {MAX_DEPTH} levels (line {line})")])
        elif bracket in "]}":
            depth -= 1
    try:
        return json.loads(text, parse_int=_json_integer, parse_float=DecimalNumber,
                          parse_constant=lambda name: Refused(f"{name} is not a number"),
                          object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise RequestInvalid([Problem(source, f"malformed JSON at line {error.lineno} column {error.colno}: "
                                              f"{error.msg}")]) from None


def _json_integer(text: str) -> int | Refused:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        return Refused(f"an integer of {len(text.lstrip('-'))} digits; at most {MAX_INTEGER_DIGITS}")
    return int(text)


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict:
    mapping: dict = {}
    for key, value in pairs:
        mapping[key] = Refused(f"duplicate key {str(key)[:64]!r}") if key in mapping else value
    return mapping


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with the intake limits applied while composing and constructing."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0

    def fetch_flow_collection_start(self, token_class):
        # The scanner reads ahead over a whole flow collection while a simple key may be pending,
        # checking every open level per token: bounded here, before the composer sees any of it.
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) or event.anchor is not None:
            raise yaml.composer.ComposerError(None, None, "anchors and aliases are not accepted", event.start_mark)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise yaml.composer.ComposerError(None, None, f"more than {MAX_NODES} values", event.start_mark)
        nested = isinstance(event, (MappingStartEvent, SequenceStartEvent))
        self.depth += nested
        if self.depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        node = super().compose_node(parent, index)
        self.depth -= nested
        return node

    def construct_yaml_str(self, node):
        if len(node.value) > MAX_STRING_CHARS:
            return Refused(f"{len(node.value)} characters; a string is at most {MAX_STRING_CHARS}")
        return super().construct_yaml_str(node)

    def construct_yaml_int(self, node):
        digits = len(node.value.lstrip("+-").replace("_", ""))
        if digits > MAX_INTEGER_DIGITS:
            return Refused(f"an integer of {digits} digits; at most {MAX_INTEGER_DIGITS}")
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return Refused(f"not an integer: {node.value!r}")

    def construct_yaml_float(self, node):
        return DecimalNumber(node.value)

    def construct_mapping(self, node, deep=False):
        self.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in mapping
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar",
                                                        key_node.start_mark) from None
            mapping[key] = Refused(f"duplicate key {str(key)[:64]!r}") if duplicate \
                else self.construct_object(value_node, deep=deep)
        return mapping


BoundedLoader.add_constructor("tag:yaml.org,2002:str", BoundedLoader.construct_yaml_str)
BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
BoundedLoader.add_constructor("tag:yaml.org,2002:float", BoundedLoader.construct_yaml_float)
BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", BoundedLoader.construct_yaml_str)
BoundedLoader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node))


def _load_yaml(text: str, source: str) -> Any:
    loader = None
    try:
        loader = BoundedLoader(text)  # the reader refuses control characters as it is built
        return loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RequestInvalid([Problem(source, f"malformed YAML{where}: {reason}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
