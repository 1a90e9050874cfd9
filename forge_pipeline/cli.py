"""`forge-pool`: the command line (DESIGN §3.7).

Output is for people and scripts: data on stdout (one workload id per line, JSON with
--json), messages on stderr. Exit codes: 0 success, 1 a check found a problem, 2 bad
input. A user's mistake is one line per problem, never a stack trace.
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from importlib import resources
from pathlib import Path

from forge_pipeline.intake.identifiers import IDENTIFIER_RULE, is_identifier
from forge_pipeline.intake.problems import Problem, RequestInvalid
from forge_pipeline.ledger.checkpoints import CheckpointInvalid
from forge_pipeline.ledger.ledger import LedgerCorrupt
from forge_pipeline.ledger.signing import SigningKeyProblem
from forge_pipeline.operator import print_statements, say, submit
from forge_pipeline.replay import ReplayImpossible
from forge_pipeline.states import IllegalTransition, State
from forge_pipeline.storage import records
from forge_pipeline.settings import check_settings
from forge_pipeline.storage.database import DatabaseUnreachable, database_url, open_engine

EXIT_OK, EXIT_PROBLEM, EXIT_BAD_INPUT = 0, 1, 2


def existing_engine():
    """The database of commands that read what earlier commands wrote: a mistyped FORGE_HOME
    must not quietly create an empty database and report on it."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url())
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise RequestInvalid([Problem("FORGE_HOME", f"no Forge database at {url.database}: "
                                                    "run `forge-pool submit` or `forge-pool demo` first")])
    return open_engine()




def command_submit(arguments) -> int:
    for workload_id in submit(arguments.files):
        print(workload_id)
    return EXIT_OK


def run(workload_ids: list[str]) -> dict[str, bool]:
    from forge_pipeline.orchestration.runs import RunInterrupted, forge_instance, run_lifecycles

    engine = existing_engine()
    for workload_id in workload_ids:
        records.load_workload(engine, workload_id)  # unknown ids are refused before anything runs

    def progress(workload_id: str, success: bool, run_id: str) -> None:
        workload = records.load_workload(engine, workload_id)
        say(f"  {workload_id}  {workload['state']:<10} run {run_id[:8]}  {workload['state_reason']}")
        if TERMINATED.is_set():
            raise RunInterrupted(run_id)

    return run_lifecycles(workload_ids, forge_instance(), progress)


def refuse_unusable_device() -> None:
    """FORGE_DEVICE=gpu where no device is visible: refused before any workload is claimed (exit 2)."""
    from forge_pipeline.execute.backend import BackendUnavailable, select_backend

    try:
        select_backend()
    except BackendUnavailable as error:
        raise RequestInvalid([Problem("FORGE_DEVICE", f"{error}; nothing was claimed")]) from None


TERMINATED = threading.Event()


def stop_on_sigterm(_signal_number, _frame) -> None:
    """SIGTERM between runs: start no other. (Within a run Dagster takes the signal itself and
    ends the run as interrupted: runs.RunInterrupted.) A second SIGTERM ends the process."""
    TERMINATED.set()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def command_run(arguments) -> int:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    from forge_pipeline.orchestration.runs import RunInterrupted, forge_instance, stranded_workloads

    engine = existing_engine()
    refuse_unusable_device()
    if arguments.resume:
        if arguments.workload_ids:
            raise RequestInvalid([Problem("--resume", "takes no workload ids: it finds the stranded ones")])
        workload_ids = stranded_workloads(engine, forge_instance())
        if not workload_ids:
            say("no stranded workloads")
            return EXIT_OK
    else:
        workload_ids = arguments.workload_ids or records.list_workload_ids(engine, State.PENDING)
    ended = {workload_id: records.load_workload(engine, workload_id) for workload_id in workload_ids}
    ended = {workload_id: workload for workload_id, workload in ended.items()
             if workload["state"] in (State.FINALIZED.value, State.FAILED.value, State.DISPUTED.value)}
    for workload_id, workload in ended.items():
        say(f"  {workload_id}  already {workload['state']}: {workload['state_reason']}")
    to_run = [workload_id for workload_id in workload_ids if workload_id not in ended]
    if not to_run:
        say("no pending workloads" if not workload_ids else "nothing left to run")
        return EXIT_OK if all(w["state"] != State.FAILED.value for w in ended.values()) else EXIT_PROBLEM
    say(f"running {len(to_run)} workload(s) through Dagster")
    try:
        outcome = run(to_run)
    except RunInterrupted as interrupted:
        say(f"stopped by a signal after run {interrupted}: `forge-pool run --resume` finishes its workloads; "
            "those not started stay Pending for the next `forge-pool run`")
        return EXIT_PROBLEM
    return EXIT_OK if all(outcome.values()) and all(w["state"] != State.FAILED.value for w in ended.values()) \
        else EXIT_PROBLEM


def command_status(arguments) -> int:
    from forge_pipeline.status import workload_status

    engine = existing_engine()
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
    say("1/4 submitting sample requests")
    workload_ids = submit([str(path) for path in demo_requests()])
    engine = open_engine()
    pending = [wid for wid in workload_ids if records.load_workload(engine, wid)["state"] == State.PENDING.value]
    say(f"2/4 running {len(pending)} lifecycle(s) through Dagster ({len(workload_ids) - len(pending)} already ran)")
    outcome = run(pending) if pending else {}
    import datetime as dt
    cycle_key = cycle_argument(dt.datetime.now(dt.timezone.utc).date().isoformat())
    say(f"3/4 settling billing cycle {cycle_key} through Dagster")
    settled = settle(cycle_key)
    say("4/4 summary")
    for workload_id in workload_ids:
        status = workload_status(engine, workload_id)
        print(f"{workload_id}  {status['organization']}/{status['project']}  {status['primitive']}\n"
              f"    state {status['state']}  work units {status['work_units']}  charge {status['charge_ucr']} ucr  "
              f"output {str(status['output_digest'])[:16]}  evidence {str(status['evidence_digest'])[:16]}")
    print_statements(cycle_key)
    return EXIT_OK if all(outcome.values()) and settled else EXIT_PROBLEM


def cycle_argument(text: str) -> str:
    """A billing cycle given as a date; refused (exit 2) when it is not one."""
    from forge_pipeline.settle.settlement import parse_cycle

    return parse_cycle(text)


def settle(cycle_key: str) -> bool:
    from forge_pipeline.definitions import defs
    from forge_pipeline.orchestration.runs import QUIET_RUN_CONFIG, forge_instance

    result = defs.resolve_job_def("billing_cycle_settlement").execute_in_process(
        partition_key=cycle_key, instance=forge_instance(), raise_on_error=False, run_config=QUIET_RUN_CONFIG)
    summary = result.output_for_node("settlement_postings") if result.success else None
    if summary:
        say(f"cycle {cycle_key}: {summary['billable_workloads']} billable workload(s), "
            f"{summary['newly_posted']} newly posted")
    else:
        failures = [event.step_failure_data.error.message.strip() for event in result.get_step_failure_events()]
        say(f"cycle {cycle_key}: settlement failed: {'; '.join(failures) or 'a blocking check failed'}")
    return result.success


def command_settle(arguments) -> int:
    cycle_key = cycle_argument(arguments.cycle)
    if not settle(cycle_key):
        return EXIT_PROBLEM
    print_statements(cycle_key)
    return EXIT_OK


def command_ledger_verify(arguments) -> int:
    from forge_pipeline.ledger.integrity import check_ledger

    report = check_ledger(existing_engine(), [(path, read_checkpoint(path)) for path in arguments.checkpoint])
    if report.ok:
        print(f"ledger intact: {report.ledger.entries_checked} entries, head {report.ledger.head_hash}, "
              f"merkle root {report.ledger.merkle_root}; signatures, {len(arguments.checkpoint) or 'logged'} "
              "checkpoint(s) and derived tables agree")
        return EXIT_OK
    print(f"ledger NOT intact: {report.first_problem}")
    for problem in report.derived[1:]:
        print(f"  also: {problem}")
    return EXIT_PROBLEM


def read_checkpoint(path: str) -> dict:
    """A checkpoint file given on the command line (exit 2 when it is not one)."""
    from forge_pipeline.ledger.checkpoints import CheckpointInvalid, read_checkpoint_file

    try:
        return read_checkpoint_file(Path(path))
    except CheckpointInvalid as error:
        raise RequestInvalid([Problem("--checkpoint", str(error))]) from None


def command_ledger_checkpoint(arguments) -> int:
    from forge_pipeline.ledger.integrity import checkpoint_ledger

    checkpoint = checkpoint_ledger(existing_engine())
    print(json.dumps(checkpoint, indent=2))
    if arguments.output:
        Path(arguments.output).write_text(json.dumps(checkpoint, indent=2) + "\n")
    say(f"checkpoint of {checkpoint['size']} entries signed and logged; keep a copy to verify against later")
    return EXIT_OK


def logged_or_file_checkpoint(text: str | None) -> dict:
    """A checkpoint named on the command line: a file, a size in the checkpoint log, or (None) the newest logged."""
    from forge_pipeline.ledger.checkpoints import read_checkpoint_log

    if text is not None and not text.isdigit():
        return read_checkpoint(text)
    logged = [checkpoint for _, checkpoint in read_checkpoint_log()]
    matching = [checkpoint for checkpoint in logged if text is None or checkpoint["size"] == int(text)]
    if not matching:
        raise RequestInvalid([Problem("checkpoint", "no checkpoint in the log" if text is None else
                                      f"no logged checkpoint of size {text}; run `forge-pool ledger checkpoint`")])
    return matching[-1]


def command_ledger_prove(arguments) -> int:
    from forge_pipeline.ledger import integrity

    engine = existing_engine()
    if arguments.consistency:
        old, new = (logged_or_file_checkpoint(text) for text in arguments.consistency)
        try:
            proof = integrity.consistency_proofs(engine, [old], new)[0]
        except ValueError as error:
            raise RequestInvalid([Problem("--consistency", str(error))]) from None
        print(json.dumps(proof, indent=2))
        return EXIT_OK
    if arguments.entry is None:
        raise RequestInvalid([Problem("ENTRY", "name an entry (sequence number or transaction id) or use --consistency")])
    checkpoint = logged_or_file_checkpoint(arguments.checkpoint)
    sequences = ([int(arguments.entry)] if arguments.entry.isdigit()
                 else integrity.transaction_sequences(engine, arguments.entry))
    if not sequences:
        raise RequestInvalid([Problem("ENTRY", f"no entry or transaction {arguments.entry!r} in the ledger")])
    try:
        proofs = integrity.inclusion_proofs(engine, sequences, checkpoint)
    except LookupError as error:
        raise RequestInvalid([Problem("ENTRY", str(error))]) from None
    print(json.dumps(proofs[0] if arguments.entry.isdigit() else proofs, indent=2))
    return EXIT_OK


def command_ledger_rotate_key(arguments) -> int:
    from forge_pipeline.ledger.integrity import rotate_signing_key

    old, new = rotate_signing_key(existing_engine())
    say(f"signing key rotated: {old[:16]}… announced {new[:16]}… in the ledger; give auditors the new public key "
        "(`forge-pool ledger public-key`)")
    return EXIT_OK


def command_ledger_public_key(arguments) -> int:
    from forge_pipeline.ledger.signing import load_signer, public_key_pem

    signer = load_signer(create=False)
    sys.stdout.write(public_key_pem(signer.public_key).decode())
    say(f"key id {signer.key_id}")
    return EXIT_OK


def command_export(arguments) -> int:
    """Every line carries the checkpoint signed for this export (settlement.export_lines)."""
    import polars as pl

    from forge_pipeline.settle.settlement import export_lines

    cycle_key = cycle_argument(arguments.cycle)
    problems = []
    if not arguments.output.isprintable() or arguments.output.startswith("~"):
        problems.append(Problem("-o", "must be a file name without control characters or a leading ~"))
    elif Path(arguments.output).is_dir():
        problems.append(Problem("-o", f"{arguments.output} is a folder: name the file to write"))
    if arguments.org is not None and not is_identifier(arguments.org):
        problems.append(Problem("--org", IDENTIFIER_RULE))
    if problems:
        raise RequestInvalid(problems)
    lines = export_lines(existing_engine(), cycle_key, arguments.org)
    output = Path(arguments.output)
    temporary = output.with_name(f".{output.name}.tmp")
    try:
        if arguments.format == "csv":
            lines.write_csv(temporary)
        else:
            lines.write_parquet(temporary)
        temporary.replace(output)
    except (OSError, pl.exceptions.PolarsError) as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RequestInvalid([Problem("-o", f"cannot write {output}: {reason}")]) from None
    say(f"exported {lines.height} statement line(s) of cycle {cycle_key}"
        f"{f' for {arguments.org}' if arguments.org else ''} to {output}")
    return EXIT_OK


def command_replay(arguments) -> int:
    from forge_pipeline.definitions import defs
    from forge_pipeline.orchestration.runs import QUIET_RUN_CONFIG, forge_instance
    from forge_pipeline.replay import replay_references

    replay_references(existing_engine(), arguments.workload_id)  # refuses (exit 2) what cannot be replayed
    instance = forge_instance()
    if arguments.workload_id not in instance.get_dynamic_partitions("workloads"):
        instance.add_dynamic_partitions("workloads", [arguments.workload_id])
    run = defs.resolve_job_def("replay_workload").execute_in_process(
        partition_key=arguments.workload_id, instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False)
    if not run.success:
        failures = [event.step_failure_data.error.message.strip() for event in run.get_step_failure_events()]
        print(f"{arguments.workload_id}: replay could not run: {'; '.join(failures)}")
        return EXIT_PROBLEM
    result = run.output_for_node("workload_replay")
    if arguments.json:
        print(json.dumps(result, indent=2))
    elif result["reproduced"]:
        print(f"{arguments.workload_id}: reproduced bit for bit on {result['backend']} in {result['wall_s']} s "
              f"(output {result['output_digest'][:16]}, merkle {result['merkle_root'][:16]}, "
              f"charge {result['charge_ucr']} ucr)")
    else:
        print(f"{arguments.workload_id}: NOT reproduced")
        for difference in result["differences"]:
            print(f"  {difference}")
    return EXIT_OK if result["reproduced"] else EXIT_PROBLEM


def command_agents(arguments) -> int:
    from forge_pipeline.assign.pool import load_pool
    from forge_pipeline.assign.reliability import reliability_of

    pool = load_pool()
    history = reliability_of(existing_engine(), [agent.agent_id for agent in pool.agents])
    for agent in pool.agents:
        record = history[agent.agent_id]
        print(f"{agent.agent_id:<16} {agent.provider_id:<12} {agent.hardware}  verified {record.verified:<6} "
              f"rejected {record.rejected:<4} failed {record.failed:<4} streak {record.streak:<4} "
              f"score {float(record.score):.3f}{'  QUARANTINED' if record.quarantined else ''}")
    return EXIT_OK


def command_dispute(arguments) -> int:
    from forge_pipeline.settle.settlement import dispute

    dispute(existing_engine(), arguments.workload_id, arguments.reason)
    say(f"{arguments.workload_id} is Disputed: held out of settlement until resolved")
    return EXIT_OK


def command_resolve(arguments) -> int:
    from forge_pipeline.settle.settlement import resolve

    try:
        refunded = resolve(existing_engine(), arguments.workload_id, arguments.reason, arguments.refund)
    except ValueError as error:
        raise RequestInvalid([Problem("--refund", str(error))]) from None
    say(f"{arguments.workload_id} is Finalized again{': its settlement was reversed' if refunded else ''}")
    return EXIT_OK


def command_pool(arguments) -> int:
    from forge_pipeline.deploy.local_pool import main as pool_main

    return pool_main(arguments.pool_arguments)


def command_db_upgrade(arguments) -> int:
    from forge_pipeline.storage.database import database_url, upgrade_database

    upgrade_database(database_url())
    say("database schema is at the newest revision")
    return EXIT_OK


def command_ui(arguments) -> int:
    """The Dagster UI and its daemon on the instance under FORGE_HOME (orchestration.ui.serve_ui)."""
    from forge_pipeline.orchestration.ui import serve_ui
    from forge_pipeline.home import dagster_home

    home = dagster_home()
    say(f"starting the Dagster UI on http://{arguments.host}:{arguments.port}, then its daemon "
        f"(DAGSTER_HOME={home}); Ctrl-C stops both")
    return serve_ui(arguments.host, arguments.port)


def command_serve(arguments) -> int:
    import uvicorn

    from forge_pipeline.api.app import ApiSettings, create_app

    app = create_app(ApiSettings.from_environment())  # bad settings, pool file or database: exit 2 before serving
    say(f"Forge Pool Web Core API on http://{arguments.host}:{arguments.port} (OpenAPI at /openapi.json)")
    uvicorn.run(app, host=arguments.host, port=arguments.port, log_level="warning", timeout_keep_alive=5,
                limit_concurrency=arguments.max_connections, backlog=1024)
    return EXIT_OK


def command_keys_create(arguments) -> int:
    from forge_pipeline.api.keys import Kind, create_key

    kind, owner = ((Kind.ORGANIZATION, arguments.org) if arguments.org else
                   (Kind.PROVIDER, arguments.provider) if arguments.provider else (Kind.OPERATOR, ""))
    key_id, key = create_key(open_engine(), kind, owner, arguments.scope)
    say(f"created {kind.value} key {key_id}{f' for {owner}' if owner else ''}; "
        "it is shown once, here, and stored only as a salted hash")
    print(key)
    return EXIT_OK


def command_keys_list(arguments) -> int:
    from forge_pipeline.api.keys import list_keys

    for key in list_keys(existing_engine()):
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        print(f"{key['key_id']}  {key['kind']:<12} {key['owner'] or '-':<16} {key['scopes']:<30} "
              f"created {key['created_at']}  {state}")
    return EXIT_OK


def command_keys_revoke(arguments) -> int:
    from forge_pipeline.api.keys import revoke_key

    revoked = revoke_key(existing_engine(), arguments.key_id)
    say(f"{arguments.key_id} {'revoked' if revoked else 'was already revoked'}")
    return EXIT_OK


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
    run_parser.add_argument("--resume", action="store_true",
                            help="finish the workloads whose run died mid-lifecycle (crash, kill, failure)")
    run_parser.set_defaults(handler=command_run)
    status_parser = commands.add_parser("status", help="one workload or all of them")
    status_parser.add_argument("workload_id", nargs="?")
    status_parser.add_argument("--json", action="store_true")
    status_parser.set_defaults(handler=command_status)
    settle_parser = commands.add_parser("settle", help="settle one billing cycle (idempotent)")
    settle_parser.add_argument("cycle", metavar="YYYY-MM-DD")
    settle_parser.set_defaults(handler=command_settle)
    ledger_parser = commands.add_parser("ledger", help="ledger commands").add_subparsers(dest="ledger", required=True)
    verify_parser = ledger_parser.add_parser(
        "verify", help="exit 0 when the chain, signatures, checkpoints and derived tables agree; 1 naming the first "
                       "bad entry or the contradicted checkpoint")
    verify_parser.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                               help="a checkpoint kept elsewhere, checked besides the local log (repeatable)")
    verify_parser.set_defaults(handler=command_ledger_verify)
    checkpoint_parser = ledger_parser.add_parser("checkpoint", help="verify, then sign and log a checkpoint (JSON)")
    checkpoint_parser.add_argument("-o", dest="output", metavar="FILE", help="also write the checkpoint to FILE")
    checkpoint_parser.set_defaults(handler=command_ledger_checkpoint)
    prove_parser = ledger_parser.add_parser(
        "prove", help="inclusion proof of an entry (sequence or transaction id), or --consistency OLD NEW")
    prove_parser.add_argument("entry", nargs="?", metavar="ENTRY")
    prove_parser.add_argument("--checkpoint", metavar="FILE|SIZE", help="prove against this checkpoint (default: "
                                                                        "the newest logged)")
    prove_parser.add_argument("--consistency", nargs=2, metavar=("OLD", "NEW"),
                              help="checkpoints (files or logged sizes): prove NEW extends OLD")
    prove_parser.set_defaults(handler=command_ledger_prove)
    ledger_parser.add_parser("rotate-key", help="announce a new signing key in the ledger, then sign with it") \
        .set_defaults(handler=command_ledger_rotate_key)
    ledger_parser.add_parser("public-key", help="print the current signing public key (PEM)") \
        .set_defaults(handler=command_ledger_public_key)
    export_parser = commands.add_parser("export", help="a cycle's statement lines as CSV or Parquet")
    export_parser.add_argument("--cycle", required=True, metavar="YYYY-MM-DD")
    export_parser.add_argument("--org", help="only this organization's lines")
    export_parser.add_argument("--format", required=True, choices=("csv", "parquet"))
    export_parser.add_argument("-o", dest="output", required=True, metavar="FILE")
    export_parser.set_defaults(handler=command_export)
    replay_parser = commands.add_parser("replay", help="exit 0 when outputs and amounts reproduce bit for bit, 1 when not")
    replay_parser.add_argument("workload_id")
    replay_parser.add_argument("--json", action="store_true")
    replay_parser.set_defaults(handler=command_replay)
    dispute_parser = commands.add_parser("dispute", help="hold a finalized workload out of settlement")
    dispute_parser.add_argument("workload_id")
    dispute_parser.add_argument("--reason", required=True)
    dispute_parser.set_defaults(handler=command_dispute)
    resolve_parser = commands.add_parser("resolve", help="end a dispute; --refund reverses a settled charge")
    resolve_parser.add_argument("workload_id")
    resolve_parser.add_argument("--reason", required=True)
    resolve_parser.add_argument("--refund", action="store_true")
    resolve_parser.set_defaults(handler=command_resolve)
    commands.add_parser("agents", help="the pool's Agents and their reliability history") \
        .set_defaults(handler=command_agents)
    pool_parser = commands.add_parser(
        "pool", add_help=False,
        help="a local production-like pool (PostgreSQL + Celery workers): up|run|settle|resume|status|env|down")
    pool_parser.add_argument("pool_arguments", nargs=argparse.REMAINDER)
    pool_parser.set_defaults(handler=command_pool)
    db_parser = commands.add_parser("db", help="database commands").add_subparsers(dest="db", required=True)
    db_parser.add_parser("upgrade", help="migrate the database to the newest schema (Alembic)") \
        .set_defaults(handler=command_db_upgrade)
    serve_parser = commands.add_parser("serve", help="the Web Core HTTP API (docs/api.md)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8080)
    serve_parser.add_argument("--max-connections", type=int, default=1000,
                              help="concurrent connections before the server answers 503")
    serve_parser.set_defaults(handler=command_serve)
    keys_parser = commands.add_parser("keys", help="API keys of the HTTP API") \
        .add_subparsers(dest="keys", required=True)
    keys_create = keys_parser.add_parser("create", help="a new key, printed once on stdout")
    owner = keys_create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--org", help="an organization's key (scopes submit, read, export, dispute)")
    owner.add_argument("--provider", help="a provider's key (scope payouts)")
    owner.add_argument("--operator", action="store_true", help="an operator's key (every endpoint, every organization)")
    keys_create.add_argument("--scope", action="append", help="a scope to grant (repeatable; default: all of the kind)")
    keys_create.set_defaults(handler=command_keys_create)
    keys_parser.add_parser("list", help="every key (never its secret)").set_defaults(handler=command_keys_list)
    keys_revoke = keys_parser.add_parser("revoke", help="revoke a key by its id")
    keys_revoke.add_argument("key_id")
    keys_revoke.set_defaults(handler=command_keys_revoke)
    ui_parser = commands.add_parser("ui", help="the Dagster UI on this home")
    ui_parser.add_argument("--port", type=int, default=3000)
    ui_parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    ui_parser.set_defaults(handler=command_ui)
    return root


def undecodable_arguments(argv: list[str]) -> list[Problem]:
    """Arguments that are not UTF-8 text (Python keeps their bytes as lone surrogates): refused,
    since an id, an organization or a reason must print and compare as the text it is."""
    problems = []
    for index, argument in enumerate(argv, start=1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError as error:
            shown = argument.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
            problems.append(Problem(f"argument {index}", f"not UTF-8 text at character {error.start}: {shown}"))
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if problems := undecodable_arguments(argv):
        for problem in problems:
            say(f"error: {problem}")
        return EXIT_BAD_INPUT
    arguments = parser().parse_args(argv)
    try:
        check_settings()
        return arguments.handler(arguments)
    except BrokenPipeError:  # `forge-pool ... | head`: the reader has gone, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except RequestInvalid as error:
        for problem in error.problems:
            say(f"error: {problem}")
        return EXIT_BAD_INPUT
    except (records.UnknownWorkload, ReplayImpossible) as error:
        say(f"error: {error}")
        return EXIT_BAD_INPUT
    except IllegalTransition as error:
        say(f"error: {error}")
        return EXIT_BAD_INPUT
    except DatabaseUnreachable as error:
        say(f"error: FORGE_DATABASE_URL: {error}")
        return EXIT_BAD_INPUT
    except (LedgerCorrupt, SigningKeyProblem, CheckpointInvalid) as error:
        say(f"error: {error}")
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
