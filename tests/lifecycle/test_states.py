import pytest

from forge_pipeline.intake.request import validate_request
from forge_pipeline.states import ALLOWED, IllegalTransition, State, check_transition
from forge_pipeline.storage.database import open_engine
from forge_pipeline.storage.records import load_workload, store_request, transition, workload_events_of
from tests.lifecycle.requests import request


def test_the_machine_has_eight_states_and_the_designed_edges():
    """Forward chain, Failed from each of the first five, Finalized <-> Disputed, nothing else."""
    assert len(State) == 8
    forward = [State.PENDING, State.PLANNED, State.RUNNING, State.VERIFYING, State.AGGREGATING, State.FINALIZED]
    edges = {(a, b) for a, targets in ALLOWED.items() for b in targets}
    expected = set(zip(forward, forward[1:])) | {(s, State.FAILED) for s in forward[:5]} | {
        (State.FINALIZED, State.DISPUTED), (State.DISPUTED, State.FINALIZED)}
    assert edges == expected


@pytest.mark.parametrize("current, target", [(State.PENDING, State.RUNNING), (State.FAILED, State.PENDING),
                                             (State.FINALIZED, State.FAILED), (State.DISPUTED, State.PLANNED)])
def test_illegal_transitions_raise(current, target):
    """Skipping a stage or leaving a terminal state is a programming error."""
    with pytest.raises(IllegalTransition):
        check_transition(current, target)


def test_each_transition_appends_an_event_with_reason_and_time(forge_home):
    """Events are appended in order with from/to state, reason and timestamp; an illegal one writes nothing."""
    engine = open_engine()
    workload_id, _ = store_request(engine, validate_request(request()))
    transition(engine, workload_id, State.PLANNED, "planned")
    transition(engine, workload_id, State.FAILED, "no Agent")
    with pytest.raises(IllegalTransition):
        transition(engine, workload_id, State.RUNNING, "too late")
    events = workload_events_of(engine, workload_id)
    assert [(e["from_state"], e["to_state"], e["reason"]) for e in events] == [
        (None, "Pending", "submitted"), ("Pending", "Planned", "planned"), ("Planned", "Failed", "no Agent")]
    assert all(e["at"].endswith("Z") for e in events)
    assert load_workload(engine, workload_id)["state"] == "Failed"
