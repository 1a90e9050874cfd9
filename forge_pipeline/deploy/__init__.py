"""Deployment beyond one machine: production settings read from the environment, the
local production-like pool (PostgreSQL + Celery workers per hardware class) and the load run.

Nothing here changes what the pipeline computes; it only chooses where Dagster keeps its
records and where steps run (docs/deployment.md).
"""
