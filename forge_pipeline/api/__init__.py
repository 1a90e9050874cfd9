"""Web Core: the authenticated, multi-tenant HTTP API (`forge-pool serve`; docs/api.md).

`keys` (API keys) and `service` (what each endpoint does) are plain core code; `app` is
the FastAPI shell around them.
"""
