import hashlib
import struct

import numpy as np
import pytest
from primitive_helpers import contract_word, scaffolding

from forge_pipeline.canonical import digest
from forge_pipeline.execute.backend import NUMPY_BACKEND, select_backend
from forge_pipeline.execute.primitives.sort_dedupe import OUTPUT_KEYS_MAX, SortDedupe, decode_keys, encode_keys
from forge_pipeline.intake.problems import Problems

PRIMITIVE = SortDedupe()
UINT64_MAX = 2**64 - 1
normalized, refusals, run = scaffolding(PRIMITIVE)


def generated(count=1_000, modulus=500, seed=0x0DDB_1A5E_5BAD_5EED):
    return normalized({"generate": {"count": count, "seed": seed, "modulus": modulus}})


def set_reference(keys):
    distinct = sorted(set(keys))
    return {"input_keys": len(keys), "unique_keys": len(distinct), "min": distinct[0], "max": distinct[-1],
            "digest": hashlib.sha256(b"".join(struct.pack("<Q", key) for key in distinct)).hexdigest(),
            "keys": distinct if len(distinct) <= OUTPUT_KEYS_MAX else None}


def generated_keys(count, modulus, seed):
    """The contract read literally: key i = (word 2i | word 2i+1 << 32) mod modulus, one Philox block per word."""
    return [(contract_word(seed, 0, 2 * i) | contract_word(seed, 0, 2 * i + 1) << 32) % modulus for i in range(count)]


@pytest.mark.parametrize("modulus", [1, 97, 2**40 + 3, 2**64])
def test_generated_output_matches_a_plain_python_set(modulus):
    """Count, min, max, digest and keys equal sorted(set(...)) over the contract's Philox keys."""
    arguments = generated(count=301, modulus=modulus, seed=2**64 - 1)
    assert run(arguments, 100) == set_reference(generated_keys(301, modulus, 2**64 - 1))


def test_inline_keys_keep_full_64_bit_values():
    """Keys above 2^63 and 2^53 survive as exact Python ints; repeats across shards are removed once."""
    keys = [UINT64_MAX, 0, 2**53 + 1, UINT64_MAX, 2**63, 7, 2**53 + 1, 0]
    output = run(normalized({"keys": keys}), 3)
    assert output == set_reference(keys)
    assert output["keys"] == [0, 7, 2**53 + 1, 2**63, UINT64_MAX]


@pytest.mark.parametrize("shard_size", [1, 333, 5_000])
def test_shard_count_does_not_change_the_output(shard_size):
    """Any shard size gives the digest of one shard: keys are addressed by global index."""
    arguments = generated(count=5_000, modulus=3_000)
    assert digest(run(arguments, shard_size)) == digest(run(arguments, 5_000))


def test_large_results_are_named_by_digest_not_listed():
    """Above OUTPUT_KEYS_MAX distinct keys the output drops the list but its digest still covers every key."""
    count = OUTPUT_KEYS_MAX + 500
    arguments = generated(count=count, modulus=2**64)
    output = run(arguments, 4_000)
    assert output["keys"] is None and output["unique_keys"] == count  # 64-bit keys: repeats are vanishingly rare
    expected = set_reference(generated_keys(count, 2**64, 0x0DDB_1A5E_5BAD_5EED))
    assert output["digest"] == expected["digest"] and output["min"] == expected["min"]


def test_bad_arguments_are_refused_with_field_paths():
    """Every problem is named by its path: counts, seeds, modulus, key range, two sources, unknown fields."""
    cases = [
        ({"generate": {"count": 0, "seed": -1, "modulus": 2**64 + 1}},
         {"arguments.generate.count", "arguments.generate.seed", "arguments.generate.modulus"}),
        ({"generate": {"count": 20_000_001, "seed": 1, "modulus": 0}},
         {"arguments.generate.count", "arguments.generate.modulus"}),
        ({"generate": {"count": 5, "seed": 1}}, {"arguments.generate.modulus"}),
        ({"keys": [1, -1, 2**64, "3", 1.0, None]},
         {"arguments.keys[1]", "arguments.keys[2]", "arguments.keys[3]", "arguments.keys[4]", "arguments.keys[5]"}),
        ({"keys": []}, {"arguments.keys"}),
        ({"keys": [1], "generate": {"count": 1, "seed": 1, "modulus": 1}}, {"arguments"}),
        ({"keys": [1], "sorted": True}, {"arguments.sorted"}),
        (None, {"arguments"}),
    ]
    for document, paths in cases:
        assert set(refusals(document)) == paths, document


def test_shard_checks_catch_a_tampered_result():
    """The spot check refuses unsorted, repeated, foreign or dropped keys, bad base64, wrong counts, a lazy result."""
    arguments = generated(count=200, modulus=50)
    shard = PRIMITIVE.execute_shard(arguments, 0, 0, 200, NUMPY_BACKEND)
    keys = decode_keys(shard["keys_base64"])
    assert PRIMITIVE.check_shard(arguments, 0, 200, shard) == []
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "keys_base64": encode_keys(keys[::-1])})
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "keys_base64": encode_keys(np.repeat(keys, 2)),
                                                     "unique_keys": 2 * keys.size})
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "keys_base64": "not base64!"})
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "unique_keys": keys.size + 1})
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "keys_base64": encode_keys(keys + np.uint64(50))})
    inline = normalized({"keys": [5, 6, 7]})
    assert PRIMITIVE.check_shard(inline, 0, 3, PRIMITIVE.plausible_result(inline, 0, 3))
    assert PRIMITIVE.check_shard(arguments, 0, 200, PRIMITIVE.plausible_result(arguments, 0, 200))
    first_input = generated_keys(1, 50, 0x0DDB_1A5E_5BAD_5EED)[0]  # index `start` is always sampled
    dropped = keys[keys != np.uint64(first_input)]
    assert PRIMITIVE.check_shard(arguments, 0, 200, {**shard, "keys_base64": encode_keys(dropped),
                                                     "unique_keys": dropped.size})


def test_results_are_json_native_and_the_hooks_are_sound():
    """Results hash as canonical JSON; keys round-trip through base64; the benchmark document validates."""
    arguments = generated(count=40)
    shard = PRIMITIVE.execute_shard(arguments, 0, 0, 40, NUMPY_BACKEND)
    output = PRIMITIVE.merge(arguments, [shard])
    digest(shard)
    digest(output)
    assert all(type(key) is int for key in output["keys"])
    assert decode_keys(encode_keys(np.array([UINT64_MAX, 1], dtype=np.uint64))).tolist() == [UINT64_MAX, 1]
    assert PRIMITIVE.work_units(arguments, 0, 40) == 40
    assert PRIMITIVE.normalize_arguments(PRIMITIVE.benchmark_arguments(10**9), Problems()) is not None
    assert "table_markdown" in PRIMITIVE.output_summary(output)


@pytest.mark.gpu
@pytest.mark.parametrize("count, modulus, start", [(1, 1, 0), (300_007, 2**64, 5), (2_000_003, 1_000_003, 999_999)])
def test_cupy_path_matches_numpy_bit_for_bit(count, modulus, start):
    """Device generation, modulus, sort and dedupe equal the NumPy shard: mid-block word offsets, ragged tails."""
    backend = select_backend("gpu")
    arguments = generated(count=start + count, modulus=modulus, seed=0xFEEDFACECAFEBEEF)
    assert (PRIMITIVE.execute_shard(arguments, 0, start, start + count, backend)
            == PRIMITIVE.execute_shard(arguments, 0, start, start + count, NUMPY_BACKEND))


@pytest.mark.gpu
def test_cupy_path_matches_numpy_on_inline_keys():
    """Inline keys above 2^63 sort and dedupe identically on the device."""
    backend = select_backend("gpu")
    keys = [UINT64_MAX - (i * 7919) % 5_000 for i in range(30_011)]
    arguments = normalized({"keys": keys})
    assert (PRIMITIVE.execute_shard(arguments, 0, 3, 30_011, backend)
            == PRIMITIVE.execute_shard(arguments, 0, 3, 30_011, NUMPY_BACKEND))
