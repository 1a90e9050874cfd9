"""`forge-pool`: the command line (DESIGN §3.7).

Output is for people and scripts: data on stdout (one workload id per line, JSON with
--json), messages on stderr. Exit codes: 0 success, 1 a check found a problem, 2 bad
input. A user's mistake is one line per problem, never a stack trace.
"""

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path

from forge_pipeline.intake.problems import Problem, RequestInvalid
from forge_pipeline.intake.request import WorkloadRequest, parse_document, validate_request
from forge_pipeline.states import State
from forge_pipeline.storage import records
from forge_pipeline.storage.database import open_engine

EXIT_OK, EXIT_PROBLEM, EXIT_BAD_INPUT = 0, 1, 2


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_requests(paths: list[str]) -> list[WorkloadRequest]:
    """Validate every file before storing any, so one bad file stores nothing."""
    valid, problems = [], []
    for path in paths:
        try:
            text = Path(path).read_bytes()
        except OSError as error:
            problems.append(Problem(path, f"cannot read: {error.strerror}"))
            continue
        try:
            valid.append(validate_request(parse_document(text, path)))
        except RequestInvalid as error:
            problems += [problem if problem.path.startswith(path) else Problem(f"{path}: {problem.path}", problem.message)
                         for problem in error.problems]
    if problems:
        raise RequestInvalid(problems)
    return valid


def submit(paths: list[str]) -> list[str]:
    engine = open_engine()
    requests = read_requests(paths)
    workload_ids = []
    for request in requests:
        workload_id, created = records.store_request(engine, request)
        say(f"{'submitted' if created else 'already submitted'}: {request.document['request_id']} -> {workload_id}")
        workload_ids.append(workload_id)
    return workload_ids


def command_submit(arguments) -> int:
    for workload_id in submit(arguments.files):
        print(workload_id)
    return EXIT_OK


def run(workload_ids: list[str]) -> dict[str, bool]:
    from forge_pipeline.orchestration.runs import forge_instance, run_lifecycles

    engine = open_engine()
    for workload_id in workload_ids:
        records.load_workload(engine, workload_id)  # unknown ids are refused before anything runs

    def progress(workload_id: str, success: bool, run_id: str) -> None:
        workload = records.load_workload(engine, workload_id)
        say(f"  {workload_id}  {workload['state']:<10} run {run_id[:8]}  {workload['state_reason']}")

    return run_lifecycles(workload_ids, forge_instance(), progress)


def command_run(arguments) -> int:
    engine = open_engine()
    workload_ids = arguments.workload_ids or records.list_workload_ids(engine, State.PENDING)
    if not workload_ids:
        say("no pending workloads")
        return EXIT_OK
    say(f"running {len(workload_ids)} workload(s) through Dagster")
    outcome = run(workload_ids)
    return EXIT_OK if all(outcome.values()) else EXIT_PROBLEM


def command_status(arguments) -> int:
    from forge_pipeline.status import workload_status

    engine = open_engine()
    if arguments.workload_id:
        statuses = [workload_status(engine, arguments.workload_id)]
    else:
        statuses = [workload_status(engine, workload_id) for workload_id in records.list_workload_ids(engine)]
    if arguments.json:
        print(json.dumps(statuses[0] if arguments.workload_id else statuses, indent=2))
        return EXIT_OK
    for status in statuses:
        charge = "-" if status["charge_ucr"] is None else f"{status['charge_ucr']} ucr"
        print(f"{status['workload_id']}  {status['state']:<10} {status['primitive']:<45} "
              f"units={status['work_units'] or '-':<12} charge={charge:<16} {status['state_reason']}")
    return EXIT_OK


def demo_requests() -> list[Path]:
    folder = resources.files("forge_pipeline.catalog").joinpath("demo")
    return sorted(Path(str(folder.joinpath(name))) for name in (entry.name for entry in folder.iterdir())
                  if name.endswith((".yaml", ".json")))


def command_demo(arguments) -> int:
    from forge_pipeline.status import workload_status

    say(f"Forge Pool demo — home {os.environ.get('FORGE_HOME', '.forge')}")
    say("1/3 submitting sample requests")
    workload_ids = submit([str(path) for path in demo_requests()])
    engine = open_engine()
    pending = [wid for wid in workload_ids if records.load_workload(engine, wid)["state"] == State.PENDING.value]
    say(f"2/3 running {len(pending)} lifecycle(s) through Dagster ({len(workload_ids) - len(pending)} already ran)")
    outcome = run(pending) if pending else {}
    say("3/3 summary")
    for workload_id in workload_ids:
        status = workload_status(engine, workload_id)
        print(f"{workload_id}  {status['organization']}/{status['project']}  {status['primitive']}\n"
              f"    state {status['state']}  work units {status['work_units']}  "
              f"output {str(status['output_digest'])[:16]}  evidence {str(status['evidence_digest'])[:16]}")
    return EXIT_OK if all(outcome.values()) else EXIT_PROBLEM


def command_ui(arguments) -> int:
    from forge_pipeline.orchestration.runs import forge_instance

    forge_instance()
    command = ["dagster", "dev", "-m", "forge_pipeline.definitions", "-p", str(arguments.port)]
    say(f"starting the Dagster UI on port {arguments.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    os.execvp(command[0], command)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="forge-pool", description="Forge Pool execution accounting")
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="sample requests through the whole lifecycle, then a summary") \
        .set_defaults(handler=command_demo)
    submit_parser = commands.add_parser("submit", help="validate and store requests; prints workload ids")
    submit_parser.add_argument("files", nargs="+")
    submit_parser.set_defaults(handler=command_submit)
    run_parser = commands.add_parser("run", help="run the lifecycle (default: every pending workload)")
    run_parser.add_argument("workload_ids", nargs="*")
    run_parser.set_defaults(handler=command_run)
    status_parser = commands.add_parser("status", help="one workload or all of them")
    status_parser.add_argument("workload_id", nargs="?")
    status_parser.add_argument("--json", action="store_true")
    status_parser.set_defaults(handler=command_status)
    ui_parser = commands.add_parser("ui", help="the Dagster UI on this home")
    ui_parser.add_argument("--port", type=int, default=3000)
    ui_parser.set_defaults(handler=command_ui)
    return root


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except RequestInvalid as error:
        for problem in error.problems:
            say(f"error: {problem}")
        return EXIT_BAD_INPUT
    except records.UnknownWorkload as error:
        say(f"error: {error}")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
