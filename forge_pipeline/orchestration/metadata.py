"""What the Dagster UI shows: the report builders' pictures and tables as MetadataValue objects.

Pictures go inline as markdown images with a `data:image/png;base64` URI, which the UI's
markdown renders in the asset's metadata and the materialization's event. Numbers meant
for the Plots tab are plain integers under the same key on every partition (charge_ucr,
work_units, wall_ms_total, rejected_shards), so the plot compares like with like; what is
specific to one family of primitives goes in a markdown table or JSON value instead.
"""

from __future__ import annotations

import base64
from pathlib import Path

import polars as pl
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from forge_pipeline.execute.primitives import get_primitive
from forge_pipeline.report.money import components_table, credits_text, split_table, usage_money, with_total

RUN_TAG_PREFIX = "forge/"


def image_markdown(png: bytes, caption: str) -> MetadataValue:
    return MetadataValue.md(f"![{caption}](data:image/png;base64,{base64.b64encode(png).decode()})")


def table_metadata(frame: pl.DataFrame) -> MetadataValue:
    """A Dagster table (rows and a typed schema) that the UI draws as a table, not text."""
    schema = TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])
    return MetadataValue.table([TableRecord(row) for row in frame.to_dicts()], schema=schema)


def problems_metadata(problems: list) -> MetadataValue:
    """A refused request's problems (intake.problems.Problem) as a table of field path and problem."""
    return table_metadata(pl.DataFrame({"field": [problem.path for problem in problems],
                                        "problem": [problem.message for problem in problems]},
                                       schema={"field": pl.String, "problem": pl.String}))


def evidence_metadata(planned: dict, evidence: dict, directory: Path) -> dict:
    """The bundle's digests and folder, the output summary table, its family's facts and its picture."""
    primitive, arguments = planned["plan"]["primitive"], planned["request"]["arguments"]
    summary = get_primitive(primitive).output_summary(evidence["output"])
    table = summary.pop("table_markdown")
    metadata = {
        "output_digest": evidence["output_digest"], "merkle_root": evidence["merkle_root"],
        "evidence_digest": evidence["evidence_digest"], "evidence_path": MetadataValue.path(str(directory)),
        "backends": ", ".join(evidence["backends"]), "organization": planned["request"]["organization"],
        "primitive": primitive, "output_summary": MetadataValue.md(table), "output_facts": MetadataValue.json(summary),
    }
    # Imported here: matplotlib is paid for by the steps that draw, not by every load of the definitions
    # (the UI's code server, the daemon, each step process).
    from forge_pipeline.report import pictures

    try:
        picture = pictures.workload_picture(primitive, arguments, evidence["output"], directory)
    except Exception as error:  # noqa: BLE001 - a picture is for people: drawing it never fails the workload
        metadata["picture_error"] = f"{type(error).__name__}: {error}"
        picture = None
    if picture is not None:
        metadata["picture"] = image_markdown(picture, f"{primitive} output of {planned['workload_id']}")
    return metadata


def usage_metadata(record: dict, report: dict) -> dict:
    """Work units, money (charge, components, rate card, payout split) and attribution of a usage record;
    the integers are the Plots tab's comparable series."""
    money = usage_money(record)
    return {
        "charge_ucr": money["charge_ucr"], "charge_credits": credits_text(money["charge_ucr"]),
        "rate_card_version": money["rate_card_version"], "work_units": record["work_units"],
        "wall_ms_total": sum(attempt["wall_ms"] for attempt in report["attempts"]),
        "rejected_shards": len(report["rejected_shards"]), "nonbillable_ucr": money["nonbillable_ucr"],
        "charge_components": table_metadata(components_table(money).collect()),
        "payout_split": table_metadata(split_table(money).collect()),
        "organization": record["organization"], "project": record["project"], "primitive": record["primitive"],
        "output_digest": record["output_digest"], "evidence_digest": record["evidence_digest"],
        "finalized_at": record["finalized_at"],
    }


def settlement_table_metadata(frame: pl.DataFrame, path: Path, label_column: str, amount_column: str,
                              title: str) -> dict:
    """A statement or payout table with its total row and credits, the Parquet file's real path, and a
    bar per row of `amount_column`."""
    metadata = {"parquet_path": MetadataValue.path(str(path)), "rows": frame.height,
                f"{amount_column}_total": int(frame[amount_column].sum()),
                "table": table_metadata(with_total(frame.lazy(), label_column).collect())}
    if frame.height:
        from forge_pipeline.report import pictures

        labels = frame.select(pl.concat_str(pl.col(pl.String), separator="/")).to_series().to_list()
        metadata["picture"] = image_markdown(pictures.amounts_by(labels, frame[amount_column].to_list(), title,
                                                                 "#66c2a5"), title)
    return metadata
