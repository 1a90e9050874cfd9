"""The workload state machine (DESIGN §3.2).

Pending -> Planned -> Running -> Verifying -> Aggregating -> Finalized; any of the first
five may go to Failed; Finalized <-> Disputed. An illegal transition is a programming
error and raises. Every transition is appended as an event by the storage layer.
"""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    PENDING = "Pending"
    PLANNED = "Planned"
    RUNNING = "Running"
    VERIFYING = "Verifying"
    AGGREGATING = "Aggregating"
    FINALIZED = "Finalized"
    FAILED = "Failed"
    DISPUTED = "Disputed"


_FORWARD = [State.PENDING, State.PLANNED, State.RUNNING, State.VERIFYING, State.AGGREGATING, State.FINALIZED]
ALLOWED: dict[State, frozenset[State]] = {
    **{state: frozenset({following, State.FAILED}) for state, following in zip(_FORWARD, _FORWARD[1:])},
    State.FINALIZED: frozenset({State.DISPUTED}),
    State.DISPUTED: frozenset({State.FINALIZED}),
    State.FAILED: frozenset(),
}


IN_FLIGHT = frozenset(_FORWARD[1:-1])  # claimed by a run and not yet ended


def reached(current: State, target: State) -> bool:
    """`current` is `target` or a later state of the forward path (Pending ... Finalized)."""
    return current in _FORWARD and target in _FORWARD and _FORWARD.index(current) >= _FORWARD.index(target)


class IllegalTransition(RuntimeError):
    pass


def check_transition(current: State, target: State) -> None:
    if target not in ALLOWED[current]:
        raise IllegalTransition(f"{current.value} -> {target.value} is not a legal workload transition")
