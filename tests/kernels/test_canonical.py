import numpy as np
import pytest

from forge_pipeline.canonical import canonical_json, digest


def test_canonical_json_is_sorted_compact_utf8():
    """Keys sorted at every depth, no whitespace, UTF-8 (not \\u escapes): the bytes DESIGN §3.5 hashes."""
    assert canonical_json({"b": [1, {"d": 2, "c": "é"}], "a": None}) == '{"a":null,"b":[1,{"c":"é","d":2}]}'.encode()
    assert digest({"x": 1, "y": 2}) == digest({"y": 2, "x": 1})


@pytest.mark.parametrize("value", [1.5, {"a": [1, 2.0]}, [[{"x": (1, 0.1)}]], {"a": float("nan")},
                                   {"a": np.int64(3)}, {"a": {1, 2}}])
def test_floats_and_non_json_types_are_refused_at_any_depth(value):
    """A float (or a NumPy scalar, a set) anywhere in a hashed document raises instead of hashing."""
    with pytest.raises(TypeError):
        canonical_json(value)
