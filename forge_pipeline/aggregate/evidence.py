"""Aggregation and the evidence bundle (DESIGN §3.6).

The bundle is a folder: `manifest.json` (request, plan digest, every shard's digest,
Agent and attempt, verdicts, versions, backends, Merkle root, output digest) and
`output.json`. The bundle digest is the sha256 of the canonical manifest; the ledger
references it. The Merkle root over the shard digests is RFC 6962's (forge_pipeline.merkle,
the tree the ledger's checkpoints use too), so a shard's inclusion can be proven without the others.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from forge_pipeline.canonical import canonical_json, digest
from forge_pipeline.execute.backend import kernels_directory
from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.merkle import root_of_hex_leaves

BUNDLE_VERSION = 1


def kernel_digest() -> str:
    """sha256 over the CUDA sources, file by file in name order: the kernel version in the evidence."""
    directory = kernels_directory()
    hasher = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.suffix in (".cu", ".cuh"):
            hasher.update(path.name.encode() + b"\x00" + path.read_bytes())
    return hasher.hexdigest()


def aggregate(plan: dict, arguments: dict, report: dict) -> tuple[dict, str, str]:
    """(output, output_digest, merkle_root) from the accepted shard results, in shard order."""
    primitive = get_primitive(plan["primitive"])
    accepted = report["accepted"]
    output = primitive.merge(arguments, [attempt["result"] for attempt in accepted])
    return output, digest(output), root_of_hex_leaves([attempt["digest"] for attempt in accepted])


def build_manifest(workload_id: str, request: dict, plan: dict, report: dict, attempts: list[dict],
                   output_digest: str, root: str, artifacts: dict) -> dict:
    primitive = get_primitive(plan["primitive"])
    shards = [{"index": shard["index"], "start": shard["start"], "stop": shard["stop"],
               "digest": attempt["digest"], "agent_id": attempt["agent_id"], "provider_id": attempt["provider_id"],
               "attempt": attempt.get("attempt"), "backend": attempt["backend"], "work_units": shard["work_units"]}
              for shard, attempt in zip(plan["shards"], report["accepted"])]
    return {
        "bundle_version": BUNDLE_VERSION,
        "workload_id": workload_id,
        "request": request,
        "plan_digest": plan["plan_digest"],
        "seed": plan["seed"],
        "primitive": plan["primitive"],
        "primitive_contract": primitive.contract,
        "kernel_digest": kernel_digest(),
        "backends": sorted({attempt["backend"] for attempt in report["accepted"]}),
        "shards": shards,
        "attempts": [{key: value for key, value in attempt.items() if key != "result"} for attempt in attempts],
        "verification": {key: report[key] for key in ("mode", "sample_rate", "sample_rates", "sampled", "verdicts",
                                                      "rejected_shards")},
        "merkle_root": root,
        "output_digest": output_digest,
        "artifacts": artifacts,
    }


def evidence_path_of(workload_id: str) -> str:
    """Where a workload's bundle is, as recorded: relative to the artifact store, so a copy of the
    store on another machine (an auditor's) is replayed as it is."""
    return f"evidence/{workload_id}"


def evidence_directory(evidence_path: str, artifacts_root: Path) -> Path:
    """The bundle's folder under `artifacts_root` (an absolute recorded path, as records written
    before 2026-11-26 hold, is taken as it is)."""
    return artifacts_root / evidence_path


def write_bundle(directory: Path, manifest: dict, output: dict) -> str:
    """Write the bundle atomically (temporary files renamed into place); returns the bundle digest."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in (("output.json", output), ("manifest.json", manifest)):
        temporary = directory / f".{name}.tmp"
        temporary.write_bytes(canonical_json(document))
        temporary.replace(directory / name)
    return digest(manifest)
