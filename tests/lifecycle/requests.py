"""Request documents for the lifecycle tests."""

import copy

BASE_REQUEST = {
    "request_id": "t-001",
    "organization": "acme",
    "project": "risk",
    "workspace": "prod",
    "adapter": "sdk",
    "primitive": "probabilistic_simulation/portfolio_loss@1",
    "profile": "standard@1",
    "policy": {"shard_size": 400},
    "replay": {"seed": 20261125},
    "arguments": {
        "scenarios": 2000,
        "bins": 6,
        "quantiles": ["0.95", "0.99"],
        "obligors": [{"exposure": 500, "pd": "0.05"}, {"exposure": 300, "pd": "0.1"}, {"exposure": 900, "pd": "0.02"}],
    },
}


def request(**changes) -> dict:
    """BASE_REQUEST with top-level fields replaced; `policy` and `arguments` are merged."""
    document = copy.deepcopy(BASE_REQUEST)
    for key, value in changes.items():
        if key in ("policy", "arguments") and isinstance(value, dict):
            document[key].update(value)
        else:
            document[key] = value
    return document
