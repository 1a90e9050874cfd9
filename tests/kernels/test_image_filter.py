import hashlib

import numpy as np
import pytest
from primitive_helpers import assert_integer_only_kernel, contract_word, scaffolding

from forge_pipeline.canonical import digest
from forge_pipeline.execute.backend import NUMPY_BACKEND, select_backend
from forge_pipeline.execute.primitives.image_filter import (
    ImageFilter, filter_numpy, filtered_images, input_images, write_artifact,
)
from forge_pipeline.intake.problems import Problems, RequestInvalid

PRIMITIVE = ImageFilter()
normalized, refusals, run = scaffolding(PRIMITIVE)


def generated(count=5, height=5, width=7, seed=0xC0FFEE_0123456789):
    return normalized({"generate": {"count": count, "height": height, "width": width, "seed": seed}})


def loop_reference(count, height, width, seed):
    """The contract read literally: one Philox block per pixel, the 3x3 kernel as nine taps, Python ints."""

    def pixel(p):
        return (contract_word(seed, 0, p // 4) >> (8 * (p % 4))) & 0xFF

    weights = (1, 2, 1)
    digests, histogram = [], [0] * 256
    for image in range(count):
        source = [[pixel((image * height + row) * width + column) for column in range(width)] for row in range(height)]

        def blurred(row, column):
            total = sum(weights[a] * weights[b]
                        * source[min(max(row + a - 1, 0), height - 1)][min(max(column + b - 1, 0), width - 1)]
                        for a in range(3) for b in range(3))
            return (total + 8) >> 4

        out = bytearray()
        for y in range(height // 2):
            for x in range(width // 2):
                value = (blurred(2 * y, 2 * x) + blurred(2 * y, 2 * x + 1) + blurred(2 * y + 1, 2 * x)
                         + blurred(2 * y + 1, 2 * x + 1) + 2) >> 2
                out.append(value)
                histogram[value] += 1
        digests.append(hashlib.sha256(bytes(out)).hexdigest())
    return digests, histogram


def test_output_matches_a_plain_python_reading_of_the_contract():
    """Digests and histogram equal a pixel-by-pixel loop: Philox bytes, nine-tap blur, 2x2 mean, odd edges dropped."""
    arguments = generated(count=4, height=5, width=7)
    output = run(arguments, 4)
    digests, histogram = loop_reference(4, 5, 7, 0xC0FFEE_0123456789)
    assert output["digests"] == digests
    assert output["histogram"] == histogram
    assert (output["height"], output["width"], output["images"]) == (2, 3, 4)
    assert output["batch_digest"] == hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()


def test_hand_checkable_images():
    """A constant image stays constant; a single bright pixel spreads by the kernel's weights, rounded half up."""
    flat = np.full((1, 4, 4), 200, dtype=np.uint8)
    assert filter_numpy(flat).tolist() == [[[200, 200], [200, 200]]]
    spike = np.zeros((1, 4, 4), dtype=np.uint8)
    spike[0, 1, 1] = 255
    # Blurred (0,0), (0,1), (1,0), (1,1) see the spike with weights 1, 2, 2, 4:
    # (255 + 8) >> 4 = 16, (510 + 8) >> 4 = 32, 32, (1020 + 8) >> 4 = 64; their 2x2 mean is (144 + 2) >> 2 = 36.
    assert filter_numpy(spike)[0, 0, 0] == 36
    # Of blurred rows/columns 2-3 only (2,2) sees the spike (weight 1, 16): (16 + 2) >> 2 = 4.
    assert filter_numpy(spike)[0, 1, 1] == 4


@pytest.mark.parametrize("shard_size", [1, 3, 11])
def test_shard_count_does_not_change_the_output(shard_size):
    """Any shard size gives the digest of one shard: images are addressed by global index."""
    arguments = generated(count=11, height=9, width=6)
    assert digest(run(arguments, shard_size)) == digest(run(arguments, 11))


def test_pinned_npy_file_gives_the_same_output_as_the_generator(tmp_path):
    """A .npy file holding the generated images filters to the same digests; its sha256 is pinned."""
    arguments = generated(count=6, height=8, width=5)
    path = tmp_path / "images.npy"
    np.save(path, input_images(arguments, 0, 6, NUMPY_BACKEND))
    from_file = normalized({"npy": {"path": str(path)}}, tmp_path)
    assert from_file["npy"]["shape"] == [6, 8, 5]
    assert from_file["npy"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert normalized(from_file, tmp_path) == from_file  # re-validation of the stored request is idempotent
    assert run(from_file, 4)["digests"] == run(arguments, 6)["digests"]


def test_a_file_that_changed_since_admission_is_refused(tmp_path):
    """Changed bytes fail re-validation and execution by field path, rather than computing on other data."""
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((2, 4, 4), dtype=np.uint8))
    arguments = normalized({"npy": {"path": str(path)}}, tmp_path)
    np.save(path, np.ones((2, 4, 4), dtype=np.uint8))
    problems = Problems(input_area=tmp_path)
    assert PRIMITIVE.normalize_arguments(arguments, problems) is None
    assert [problem.path for problem in problems.found] == ["arguments.npy.sha256"]
    with pytest.raises(RequestInvalid, match=r"arguments\.npy\.sha256"):
        PRIMITIVE.execute_shard(arguments, 0, 0, 2, NUMPY_BACKEND)


def test_bad_arguments_are_refused_with_field_paths(tmp_path):
    """Every problem is named by its path: sizes, seeds, unknown fields, two sources, bad files."""
    cases = [
        ({"generate": {"count": 0, "height": 1, "width": 9000, "seed": -1}},
         {"arguments.generate.count", "arguments.generate.height", "arguments.generate.width",
          "arguments.generate.seed"}),
        ({"generate": {"count": 1, "height": 8, "width": 8}, "colour": True},
         {"arguments.colour", "arguments.generate.seed"}),
        ({"generate": {"count": 1, "height": 8, "width": 8}}, {"arguments.generate.seed"}),
        ({"generate": {"count": 100_000, "height": 8192, "width": 8192, "seed": 1}}, {"arguments.generate.count"}),
        ({"generate": {"count": 1, "height": 4, "width": 4, "seed": 1}, "npy": {"path": "x.npy"}}, {"arguments"}),
        ({}, {"arguments"}),
        ({"npy": {"path": str(tmp_path / "missing.npy")}}, {"arguments.npy.path"}),
        ({"npy": {"path": str(tmp_path / "images.txt")}}, {"arguments.npy.path"}),
        ("images", {"arguments"}),
    ]
    np.save(tmp_path / "floats.npy", np.zeros((2, 4, 4), dtype=np.float32))
    cases.append(({"npy": {"path": str(tmp_path / "floats.npy")}}, {"arguments.npy.path"}))
    np.save(tmp_path / "flat.npy", np.zeros((4, 4), dtype=np.uint8))
    cases.append(({"npy": {"path": str(tmp_path / "flat.npy")}}, {"arguments.npy.path"}))
    np.save(tmp_path / "ok.npy", np.zeros((2, 4, 4), dtype=np.uint8))
    cases.append(({"npy": {"path": str(tmp_path / "ok.npy"), "shape": [2, 4, 5]}}, {"arguments.npy.shape"}))
    for document, paths in cases:
        assert set(refusals(document, tmp_path)) == paths, document


def test_shard_checks_catch_a_tampered_result():
    """The spot check refuses a lost pixel, a bad or swapped digest, a wrong count and a lazy Agent's result."""
    arguments = generated(count=3)
    shard = PRIMITIVE.execute_shard(arguments, 0, 0, 3, NUMPY_BACKEND)
    assert PRIMITIVE.check_shard(arguments, 0, 3, shard) == []
    assert PRIMITIVE.check_shard(arguments, 0, 3, {**shard, "histogram": [shard["histogram"][0] - 1]
                                                   + shard["histogram"][1:]})
    assert PRIMITIVE.check_shard(arguments, 0, 3, {**shard, "digests": shard["digests"][:2] + ["00"]})
    assert PRIMITIVE.check_shard(arguments, 0, 3, {**shard, "images": 2})
    assert PRIMITIVE.check_shard(arguments, 0, 3, {**shard, "digests": shard["digests"][::-1]})
    assert PRIMITIVE.check_shard(arguments, 0, 3, PRIMITIVE.plausible_result(arguments, 0, 3))


def test_artifact_holds_the_images_the_output_digests(tmp_path):
    """write_artifact's images.npy hashes, image by image, to the verified output's digests."""
    arguments = generated(count=5, height=6, width=9)
    output = run(arguments, 2)
    facts = write_artifact(arguments, 0, tmp_path)
    images = np.load(facts["path"])
    assert images.shape == (5, 3, 4) and facts["shape"] == [5, 3, 4]
    assert [hashlib.sha256(image.tobytes()).hexdigest() for image in images] == output["digests"]
    assert facts["batch_digest"] == output["batch_digest"]


def test_results_are_json_native_integers_and_strings():
    """No NumPy scalar or float reaches a result: canonical JSON accepts the shard and the output."""
    arguments = generated(count=2)
    shard = PRIMITIVE.execute_shard(arguments, 0, 0, 2, NUMPY_BACKEND)
    assert all(type(count) is int for count in shard["histogram"])
    digest(shard)
    digest(PRIMITIVE.merge(arguments, [shard]))
    assert PRIMITIVE.work_units(arguments, 0, 2) == 2 * 5 * 7
    assert PRIMITIVE.normalize_arguments(PRIMITIVE.benchmark_arguments(10**7), Problems()) is not None
    assert "table_markdown" in PRIMITIVE.output_summary(PRIMITIVE.merge(arguments, [shard]))


@pytest.mark.gpu
@pytest.mark.parametrize("count, height, width, start", [(1, 2, 2, 0), (7, 257, 383, 3), (40, 64, 2001, 13)])
def test_cupy_path_matches_numpy_bit_for_bit(count, height, width, start):
    """The CUDA generator and filter give the NumPy images exactly, across many thread blocks and ragged tails."""
    backend = select_backend("gpu")
    arguments = generated(count=start + count, height=height, width=width, seed=0xFEEDFACECAFEBEEF)
    np.testing.assert_array_equal(filtered_images(arguments, start, start + count, backend),
                                  filtered_images(arguments, start, start + count, NUMPY_BACKEND))
    assert (PRIMITIVE.execute_shard(arguments, 0, start, start + count, backend)
            == PRIMITIVE.execute_shard(arguments, 0, start, start + count, NUMPY_BACKEND))


@pytest.mark.gpu
def test_cupy_path_matches_numpy_on_a_file_source(tmp_path):
    """Images read from a .npy file filter identically on the device (edge-heavy odd sizes)."""
    backend = select_backend("gpu")
    path = tmp_path / "images.npy"
    rng = np.random.default_rng(11)
    np.save(path, rng.integers(0, 256, size=(9, 33, 3), dtype=np.uint8))
    arguments = normalized({"npy": {"path": str(path)}}, tmp_path)
    assert PRIMITIVE.execute_shard(arguments, 0, 2, 9, backend) == PRIMITIVE.execute_shard(arguments, 0, 2, 9,
                                                                                          NUMPY_BACKEND)


def test_kernel_is_integer_only(tmp_path):
    """kernels/image_filter.cu names no floating-point type and compiles to float-free PTX with its filter entry."""
    assert_integer_only_kernel("image_filter.cu", ["forge_image_filter"], tmp_path)
