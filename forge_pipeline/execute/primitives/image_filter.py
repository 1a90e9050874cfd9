"""media_transformation/image_filter@1 and @2: integer 3x3 Gaussian blur, then a 2x box downsample.

Each uint8 grayscale image (generated from Philox bytes or read from a `.npy` file) is
blurred with [1,2,1;2,4,2;1,2,1] / 16, edges replicated, and averaged over 2x2 blocks;
an odd trailing row or column of the blurred image is dropped. @1 rounds twice (the blur
(sum + 8) >> 4, then the average (a + b + c + d + 2) >> 2); on uniform random pixels that
puts 15.6% of output pixels one above a single rounding of the exact value and 0.7% one
below. @2 rounds the exact blur-and-downsample once, half up: (Σ sums + 32) >> 6. Items
are images with global indices, so a shard's per-image digests and histogram do not
depend on where its range starts. docs/primitives/image_filter.md and image_filter_v2.md
are the full contracts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from forge_pipeline.execute.backend import NUMPY_BACKEND, Backend, launch_geometry, raw_kernel
from forge_pipeline.execute.primitives.base import Primitive
from forge_pipeline.execute.primitives.common import one_source, philox_words_on, pinned_file, require_unchanged
from forge_pipeline.intake.problems import Problems, join

UINT64_MAX = (1 << 64) - 1
MAX_IMAGES = 100_000  # the output lists one digest per image
MAX_SIDE = 8_192
MIN_SIDE = 2  # a 2x downsample of a side of 1 would leave nothing
MAX_PIXELS = 1 << 34  # input pixels per workload: Philox words stay far inside 2^66 per stream
PIXEL_STREAM = 0
# Input pixels per chunk: bounds the uint16 intermediates of the NumPy path and the device buffers.
CHUNK_PIXELS = 1 << 22


class ImageFilter(Primitive):
    family = "media_transformation"
    name = "image_filter"
    version = 1
    work_unit = "input_pixel"
    item = "image"
    default_shard_size = 128
    contract = "docs/primitives/image_filter.md"
    single_rounding = False  # @2 rounds the exact blur-and-downsample once

    def normalize_arguments(self, arguments: Any, problems: Problems, path: str = "arguments") -> dict | None:
        return one_source(arguments, problems, path, {"generate": self._generate, "npy": self._npy})

    @staticmethod
    def _generate(value: Any, problems: Problems, path: str) -> dict | None:
        fields = {"count", "height", "width", "seed"}
        if problems.mapping(value, path, fields, set()) is None:
            return None
        count = problems.integer(value.get("count"), join(path, "count"), 1, MAX_IMAGES) if "count" in value else None
        height = problems.integer(value.get("height"), join(path, "height"), MIN_SIDE, MAX_SIDE) \
            if "height" in value else None
        width = problems.integer(value.get("width"), join(path, "width"), MIN_SIDE, MAX_SIDE) \
            if "width" in value else None
        seed = problems.integer(value.get("seed"), join(path, "seed"), 0, UINT64_MAX) if "seed" in value else None
        if None in (count, height, width, seed):
            return None
        if count * height * width > MAX_PIXELS:
            problems.add(join(path, "count"), f"count x height x width must be <= {MAX_PIXELS} pixels")
            return None
        return {"count": count, "height": height, "width": width, "seed": seed}

    @staticmethod
    def _npy(value: Any, problems: Problems, path: str) -> dict | None:
        source = pinned_file(value, problems, path, ".npy", {"shape"})
        if source is None:
            return None
        try:
            images = np.load(source["path"], mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            problems.add(join(path, "path"), f"not a readable .npy array ({error})")
            return None
        shape = [int(side) for side in images.shape]
        if images.dtype != np.uint8 or len(shape) != 3:
            problems.add(join(path, "path"), f"must hold a (count, height, width) uint8 array, got {images.dtype} "
                                             f"{tuple(shape)}")
            return None
        count, height, width = shape
        if not 1 <= count <= MAX_IMAGES or not MIN_SIDE <= min(height, width) or max(height, width) > MAX_SIDE:
            problems.add(join(path, "path"), f"shape {tuple(shape)}: count must be in [1, {MAX_IMAGES}] and height, "
                                             f"width in [{MIN_SIDE}, {MAX_SIDE}]")
            return None
        if count * height * width > MAX_PIXELS:
            problems.add(join(path, "path"), f"count x height x width must be <= {MAX_PIXELS} pixels")
            return None
        if "shape" in value and value["shape"] != shape:
            problems.add(join(path, "shape"), f"the file holds shape {shape}, not {value['shape']!r}")
            return None
        return {**source, "shape": shape}

    def item_count(self, arguments: dict) -> int:
        return image_shape(arguments)[0]

    def work_units(self, arguments: dict, start: int, stop: int) -> int:
        _, height, width = image_shape(arguments)
        return (stop - start) * height * width

    def execute_shard(self, arguments: dict, seed: int, start: int, stop: int, backend: Backend) -> dict:
        """`seed` (the workload's replay seed) is unused: the images depend on the arguments alone."""
        histogram = np.zeros(256, dtype=np.int64)
        digests = []
        for first, last in image_chunks(arguments, start, stop):
            filtered = filtered_images(arguments, first, last, backend, self.single_rounding)
            histogram += np.bincount(filtered.reshape(-1), minlength=256)
            digests += [hashlib.sha256(image.tobytes()).hexdigest() for image in filtered]
        return {"start": start, "stop": stop, "images": stop - start, "digests": digests,
                "histogram": [int(count) for count in histogram]}

    def plausible_result(self, arguments: dict, start: int, stop: int) -> dict:
        _, height, width = output_shape(arguments)
        black = hashlib.sha256(bytes(height * width)).hexdigest()
        return {"start": start, "stop": stop, "images": stop - start, "digests": [black] * (stop - start),
                "histogram": [(stop - start) * height * width] + [0] * 255}

    def merge(self, arguments: dict, shard_results: list[dict]) -> dict:
        _, height, width = output_shape(arguments)
        digests = [image_digest for result in shard_results for image_digest in result["digests"]]
        histogram = [0] * 256
        for result in shard_results:
            histogram = [left + right for left, right in zip(histogram, result["histogram"])]
        return {
            "images": sum(result["images"] for result in shard_results),
            "input_height": image_shape(arguments)[1],
            "input_width": image_shape(arguments)[2],
            "height": height,
            "width": width,
            "digests": digests,
            "batch_digest": batch_digest(digests),
            "histogram": histogram,
        }

    def check_shard(self, arguments: dict, start: int, stop: int, result: dict) -> list[str]:
        problems = []
        count = stop - start
        _, height, width = output_shape(arguments)
        if result.get("images") != count:
            problems.append(f"images {result.get('images')} != shard size {count}")
        digests = result.get("digests")
        if not isinstance(digests, list) or len(digests) != count or not all(is_sha256_hex(d) for d in digests):
            problems.append("digests is not one lowercase sha256 hex digest per image")
        histogram = result.get("histogram")
        if not isinstance(histogram, list) or len(histogram) != 256:
            problems.append("histogram does not have 256 bins")
        elif any(type(bin_count) is not int or bin_count < 0 for bin_count in histogram):
            problems.append("histogram holds a negative or non-integer count")
        elif sum(histogram) != count * height * width:
            problems.append("histogram counts do not sum to the shard's output pixels")
        if not problems:  # one image of work (1/count of the shard): a lazy or corrupt first image is caught
            first = filtered_images(arguments, start, start + 1, NUMPY_BACKEND, self.single_rounding)[0]
            if hashlib.sha256(first.tobytes()).hexdigest() != digests[0]:
                problems.append(f"image {start} recomputed does not match its digest")
        return problems

    def write_artifacts(self, arguments: dict, seed: int, directory: Path, output: dict) -> dict:
        """The filtered images as `images.npy`, recomputed; refused unless they are the verified output."""
        facts = write_artifact(arguments, seed, directory, single_rounding=self.single_rounding)
        if facts["batch_digest"] != output["batch_digest"]:
            raise AssertionError(f"images.npy digest {facts['batch_digest']} != verified {output['batch_digest']}")
        return {"images.npy": facts}

    def benchmark_arguments(self, work_units: int) -> dict:
        side = 256
        return {"generate": {"count": max(1, min(MAX_IMAGES, work_units // (side * side))), "height": side,
                             "width": side, "seed": 20261125}}

    def output_summary(self, output: dict) -> dict[str, Any]:
        rows = ["| pixel values | output pixels |", "|---|---:|"]
        for low in range(0, 256, 32):
            rows.append(f"| {low}-{low + 31} | {sum(output['histogram'][low:low + 32])} |")
        return {
            "images": output["images"],
            "size": f"{output['input_height']}x{output['input_width']} -> {output['height']}x{output['width']}",
            "batch_digest": output["batch_digest"],
            "table_markdown": "\n".join(rows),
        }


class ImageFilterV2(ImageFilter):
    """@2: one rounding of the exact blur-and-downsample, (Σ of the four blur sums + 32) >> 6."""

    version = 2
    contract = "docs/primitives/image_filter_v2.md"
    single_rounding = True


def image_shape(arguments: dict) -> tuple[int, int, int]:
    """(count, height, width) of the input images."""
    if "generate" in arguments:
        generate = arguments["generate"]
        return generate["count"], generate["height"], generate["width"]
    count, height, width = arguments["npy"]["shape"]
    return count, height, width


def output_shape(arguments: dict) -> tuple[int, int, int]:
    """(count, height // 2, width // 2): the odd trailing row and column are dropped."""
    count, height, width = image_shape(arguments)
    return count, height // 2, width // 2


def image_chunks(arguments: dict, start: int, stop: int) -> list[tuple[int, int]]:
    """Image ranges of about CHUNK_PIXELS input pixels (at least one image each)."""
    _, height, width = image_shape(arguments)
    per_chunk = max(1, CHUNK_PIXELS // (height * width))
    return [(first, min(stop, first + per_chunk)) for first in range(start, stop, per_chunk)]


def batch_digest(digests: list[str]) -> str:
    """sha256 over the images' 32-byte digests concatenated in image order: one handle for the batch."""
    return hashlib.sha256(b"".join(bytes.fromhex(image_digest) for image_digest in digests)).hexdigest()


def is_sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def filtered_images(arguments: dict, first: int, last: int, backend: Backend,
                    single_rounding: bool = False) -> np.ndarray:
    """Images [first, last) filtered and downsampled, as a host (count, height // 2, width // 2) uint8 array;
    `single_rounding` selects @2's rounding."""
    images = input_images(arguments, first, last, backend)
    count, height, width = images.shape
    if backend.name == "numba":
        from forge_pipeline.execute import compiled  # numba is imported only where this backend was chosen

        out = np.empty((count, height // 2, width // 2), dtype=np.uint8)
        compiled.filter_images(np.ascontiguousarray(images), single_rounding, out)
        return out
    if backend.name != "cupy":
        return filter_numpy(images, single_rounding)
    xp = backend.xp
    out = xp.empty((count, height // 2, width // 2), dtype=xp.uint8)
    kernel = raw_kernel("image_filter.cu", "forge_image_filter_single_rounding" if single_rounding
                        else "forge_image_filter")
    grid, block = launch_geometry(out.size)
    kernel(grid, block, (images, np.int64(count), np.int64(height), np.int64(width), out))
    return backend.to_host(out)


def input_images(arguments: dict, first: int, last: int, backend: Backend) -> Any:
    """Input images [first, last) as a (count, height, width) uint8 array on the backend.

    Generated pixel p (global, image-major, row-major) is byte p mod 4 of Philox word
    p div 4 of stream 0 under generate.seed, bytes in little-endian order (byte 0 is bits 0-7).
    """
    count, height, width = last - first, *image_shape(arguments)[1:]
    if "npy" in arguments:
        require_unchanged(arguments["npy"], "arguments.npy")
        images = np.load(arguments["npy"]["path"], mmap_mode="r", allow_pickle=False)
        return backend.xp.asarray(np.ascontiguousarray(images[first:last]))
    first_pixel, pixels = first * height * width, count * height * width
    first_word = first_pixel // 4
    words = philox_words_on(backend, arguments["generate"]["seed"], PIXEL_STREAM, first_word,
                            (first_pixel + pixels + 3) // 4 - first_word)
    if backend.name != "cupy":
        words = words.astype("<u4", copy=False)  # byte order is part of the contract, not the machine's
    offset = first_pixel - 4 * first_word
    return words.view(backend.xp.uint8)[offset : offset + pixels].reshape(count, height, width)


def filter_numpy(images: np.ndarray, single_rounding: bool = False) -> np.ndarray:
    """The NumPy mirror of forge_image_filter: the separable form of the 3x3 kernel, in uint16.

    [1,2,1;2,4,2;1,2,1] is the outer product of [1,2,1] with itself, so a vertical then a
    horizontal [1,2,1] pass gives the same integer sum (at most 16 * 255 = 4080). Only the
    2 * (height // 2) rows and 2 * (width // 2) columns the downsample keeps are computed.
    `single_rounding` (@2): the four sums (at most 16,320) are added unrounded, then (Σ + 32) >> 6.
    """
    count, height, width = images.shape
    rows, columns = 2 * (height // 2), 2 * (width // 2)
    pixels = images.astype(np.uint16)
    vertical = _tap_121(pixels, axis=1, keep=rows)
    blurred = _tap_121(vertical, axis=2, keep=columns)
    if not single_rounding:
        blurred += 8
        blurred >>= 4
    out = blurred[:, 0::2, 0::2] + blurred[:, 0::2, 1::2]
    out += blurred[:, 1::2, 0::2]
    out += blurred[:, 1::2, 1::2]
    out += 32 if single_rounding else 2
    out >>= 6 if single_rounding else 2
    return out.astype(np.uint8)


def _tap_121(values: np.ndarray, axis: int, keep: int) -> np.ndarray:
    """[1,2,1] along `axis` with replicated edges, at positions [0, keep): v[i-1] + 2 v[i] + v[i+1]."""
    length = values.shape[axis]

    def along(array: np.ndarray, low: int, high: int) -> np.ndarray:
        return array[(slice(None),) * axis + (slice(low, high),)]

    out = along(values, 0, keep) * np.uint16(2)
    along(out, 1, keep)[...] += along(values, 0, keep - 1)  # left neighbours
    along(out, 0, 1)[...] += along(values, 0, 1)  # position 0 is its own left neighbour (replicated edge)
    inner = min(keep, length - 1)  # positions whose right neighbour lies inside the image
    along(out, 0, inner)[...] += along(values, 1, inner + 1)
    if keep == length:  # the last position is its own right neighbour
        along(out, length - 1, length)[...] += along(values, length - 1, length)
    return out


def write_artifact(arguments: dict, seed: int, directory: Path, backend: Backend = NUMPY_BACKEND,
                   single_rounding: bool = False) -> dict:
    """Write the filtered images to `directory/images.npy`; returns its facts for the evidence bundle.

    The file is derived, not trusted: it is recomputed from the arguments, and its
    `batch_digest` must equal the verified output's before anyone relies on it.
    """
    count, height, width = output_shape(arguments)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "images.npy"
    temporary = directory / ".images.npy.tmp"
    images = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(count, height, width))
    digests = []
    for first, last in image_chunks(arguments, 0, count):
        filtered = filtered_images(arguments, first, last, backend, single_rounding)
        images[first:last] = filtered
        digests += [hashlib.sha256(image.tobytes()).hexdigest() for image in filtered]
    images.flush()
    del images
    os.replace(temporary, path)
    return {"path": str(path), "bytes": path.stat().st_size, "shape": [count, height, width],
            "batch_digest": batch_digest(digests)}
