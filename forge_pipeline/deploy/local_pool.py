"""`forge-pool pool up|run|settle|resume|status|env|down`: a production-like pool on one machine.

The same configuration as production, shrunk onto localhost: Dagster's instance storage
and the ledger on PostgreSQL, steps on N `dagster-celery` worker processes listening on
the default queue and one queue per hardware class, runs orchestrated by this command
(`forge_pipeline.deploy.launch`). `up` prepares the databases, writes the instance's
dagster.yaml and the workers' worker.yaml, starts the workers, runs every pending workload
and settles today's billing cycle through them, then stops everything it started
(`--keep` leaves the workers up for `run`, `settle`, `resume` and `down`).

What the pool started is recorded in FORGE_HOME/pool/state.json; `down` stops exactly
those process groups, with SIGTERM (a warm shutdown lets the step in hand finish) and
SIGKILL after STOP_TIMEOUT_S. docs/deployment.md is the runbook.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from forge_pipeline.deploy import settings

EXIT_OK, EXIT_PROBLEM, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_SERVER_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_PREFIX = "forge_pool"
WORKERS_MAX = 16  # a limit on everything: this is a local pool, not a cluster
WORKER_READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,50}")
# Settings that change what workers compute or how they reach the broker: taken from the
# environment of `up` and given to every later process of the pool, so a `pool run` from
# another shell cannot disagree with the workers.
CARRIED_SETTINGS = ("FORGE_CELERY_BACKEND", "FORGE_CELERY_TRANSPORT_OPTIONS", "FORGE_POOL_FILE", "FORGE_DEVICE",
                    "FORGE_GPU_BATCHES", "FORGE_BILLING_CYCLE", "FORGE_SIGNING_KEY")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class PoolProblem(RuntimeError):
    """The pool cannot start or act here; the message says why and what to do."""


class PoolArgumentInvalid(ValueError):
    """The command was given a setting outside its limits (exit 2)."""


@dataclass
class Worker:
    name: str
    queues: list[str]
    pid: int  # also its process group id: each worker is started in a session of its own
    log: str


@dataclass
class Pool:
    """Where a pool keeps its records and how its processes reach them."""

    home: str
    server_url: str = DEFAULT_SERVER_URL
    database_prefix: str = DEFAULT_DATABASE_PREFIX
    broker: str = DEFAULT_BROKER
    carried: dict[str, str] = field(default_factory=lambda: {name: os.environ[name] for name in CARRIED_SETTINGS
                                                             if os.environ.get(name)})
    workers: list[Worker] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return Path(self.home) / "pool"

    @property
    def dagster_home(self) -> Path:
        return self.folder / "dagster"

    def database_url(self, purpose: str) -> str:
        return f"{self.server_url.rstrip('/')}/{self.database_prefix}_{purpose}"

    def environment(self) -> dict[str, str]:
        """The settings every process of the pool shares: the CLI, the run orchestrators, the workers."""
        return {
            **self.carried,
            "FORGE_HOME": self.home,
            "DAGSTER_HOME": str(self.dagster_home),
            settings.DAGSTER_STORAGE_URL_VARIABLE: self.database_url("dagster"),
            "FORGE_DATABASE_URL": self.database_url("ledger"),
            "FORGE_EXECUTOR": "celery",
            "FORGE_CELERY_BROKER": self.broker,
            # dagster-celery starts `celery` by name: it must be this interpreter's.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / "state.json.tmp"
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(self.folder / "state.json")

    @classmethod
    def load(cls, home: str) -> Pool | None:
        path = Path(home) / "pool" / "state.json"
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        state["workers"] = [Worker(**worker) for worker in state["workers"]]
        return cls(**state)


# -- processes ------------------------------------------------------------------------------

def group_members(group_id: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (command) ": state, ppid, pgrp, ...
        if int(fields[2]) == group_id and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def is_pool_worker(worker: Worker) -> bool:
    """Whether the worker's process group still runs that worker (a recycled id is someone else's group)."""
    for pid in group_members(worker.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"celery" in command and worker.name.encode() in command:
            return True
    return False


def stop_group(group_id: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the group (Celery's warm shutdown), SIGKILL whatever is left after timeout_s."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(group_id, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while group_members(group_id):
            _reap(group_id)
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        else:
            return
    left = group_members(group_id)
    if left:
        raise PoolProblem(f"process group {group_id} survived SIGKILL: {left}")


def _reap(pid: int) -> None:
    """Collect the group leader's exit when this process started it, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # started by another process (`pool down`): init collects it
        pass


def start_worker(pool: Pool, name: str, queues: list[str], concurrency: int) -> Worker:
    log = pool.folder / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # One -q with every queue, comma-separated: Celery 5 keeps only the last of several -Q options.
    command = [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
               "-y", str(pool.folder / "worker.yaml"), "-n", name, "-q", ",".join(queues),
               "--", f"--concurrency={concurrency}"]
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **pool.environment()}, start_new_session=True)
    return Worker(name=name, queues=list(queues), pid=process.pid, log=str(log))


def wait_until_ready(workers: list[Worker], timeout_s: float = WORKER_READY_TIMEOUT_S) -> None:
    """Celery logs `NAME@host ready.` once the worker consumes; a worker that exits first is a failure."""
    deadline = time.monotonic() + timeout_s
    waiting = list(workers)
    while waiting:
        for worker in list(waiting):
            text = Path(worker.log).read_text(errors="replace") if Path(worker.log).exists() else ""
            if re.search(rf"\b{re.escape(worker.name)}@\S+ ready\.", text):
                waiting.remove(worker)
            elif not group_members(worker.pid):
                raise PoolProblem(f"worker {worker.name} exited while starting; its log {worker.log} ends:\n"
                                  + "\n".join(text.splitlines()[-15:]))
        if waiting and time.monotonic() > deadline:
            raise PoolProblem(f"workers {', '.join(w.name for w in waiting)} not ready after {timeout_s:.0f} s")
        time.sleep(0.25)


# -- preparing ------------------------------------------------------------------------------

def check_broker(broker: str) -> None:
    from kombu import Connection

    try:
        with Connection(broker, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # kombu raises the transport's own errors: any of them means unreachable
        raise PoolProblem(f"cannot reach the Celery broker {broker}: {type(error).__name__}: {error}") from None


def prepare_databases(pool: Pool) -> None:
    """Create the pool's two databases when missing; migrate the ledger (Dagster migrates its own)."""
    from sqlalchemy import create_engine, text

    from forge_pipeline.storage.database import upgrade_database

    admin = create_engine(f"{pool.server_url.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for purpose in ("dagster", "ledger"):
                name = f"{pool.database_prefix}_{purpose}"
                exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                            {"name": name}).first()
                if not exists:
                    connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as error:  # any driver or network error: the server is not usable from here
        raise PoolProblem(f"cannot prepare databases on {pool.server_url}: {type(error).__name__}: {error}") from None
    finally:
        admin.dispose()
    upgrade_database(pool.database_url("ledger"))


def write_configuration(pool: Pool) -> None:
    pool.dagster_home.mkdir(parents=True, exist_ok=True)
    (pool.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(settings.instance_config(), sort_keys=False))
    (pool.folder / "worker.yaml").write_text(yaml.safe_dump(settings.worker_config(), sort_keys=False))


@contextmanager
def entered(pool: Pool) -> Iterator[Pool]:
    """This process (and every child it spawns) uses the pool's settings while inside."""
    saved = dict(os.environ)
    os.environ.update(pool.environment())
    try:
        yield pool
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start(pool: Pool, worker_count: int, queues: list[str], concurrency: int) -> Pool:
    """Prepare and start; on any failure, stop what was started and re-raise."""
    if not 1 <= worker_count <= WORKERS_MAX:
        raise PoolArgumentInvalid(f"--workers must be in [1, {WORKERS_MAX}], got {worker_count}")
    if not 1 <= concurrency <= WORKERS_MAX:
        raise PoolArgumentInvalid(f"--concurrency must be in [1, {WORKERS_MAX}], got {concurrency}")
    if not DATABASE_NAME.fullmatch(pool.database_prefix):
        raise PoolArgumentInvalid(f"--database-prefix must match {DATABASE_NAME.pattern}, got {pool.database_prefix!r}")
    unknown = sorted(set(queues) - set(settings.WORKER_QUEUES))
    if unknown or settings.DEFAULT_QUEUE not in queues:
        raise PoolArgumentInvalid(f"--queues must include {settings.DEFAULT_QUEUE!r} and name only "
                                  f"{', '.join(settings.WORKER_QUEUES)}; got {','.join(queues)}")
    running = Pool.load(pool.home)
    if running and any(is_pool_worker(worker) for worker in running.workers):
        raise PoolProblem(f"a pool is already up in {pool.folder}: `forge-pool pool down` first")
    check_broker(pool.broker)
    prepare_databases(pool)
    with entered(pool):
        write_configuration(pool)
        try:
            for index in range(worker_count):
                pool.workers.append(start_worker(pool, f"forge-worker-{index + 1}", queues, concurrency))
                pool.save()
            wait_until_ready(pool.workers)
        except BaseException:
            stop(pool)
            raise
    return pool


def stop(pool: Pool) -> None:
    """Stop each worker's process group that still runs that worker; forget them all."""
    for worker in pool.workers:
        if is_pool_worker(worker):
            stop_group(worker.pid)
        _reap(worker.pid)
    pool.workers = []
    pool.save()


# -- running --------------------------------------------------------------------------------
# Runs are orchestrated in spawned run processes that start with the pool's settings, so
# `forge_pipeline.definitions` is first imported there with FORGE_EXECUTOR=celery (the
# executor is chosen when `defs` is built) and no connection is inherited by a fork.

_INSTANCE = None


def _run_instance():
    global _INSTANCE
    from dagster import DagsterInstance

    from forge_pipeline.definitions import defs

    executor_name = defs.resolve_job_def("workload_lifecycle").executor_def.name
    if executor_name != "celery":  # a run process must never quietly run the steps itself
        raise PoolProblem(f"run process built its jobs with the {executor_name!r} executor, not celery")
    _INSTANCE = _INSTANCE or DagsterInstance.get()
    return _INSTANCE


def _lifecycle_in_run_process(workload_id: str) -> tuple[str, bool, str]:
    from forge_pipeline.deploy.launch import launch_lifecycle

    return (workload_id, *launch_lifecycle(workload_id, _run_instance()))


def _settlement_in_run_process(cycle_key: str) -> tuple[str, bool, str]:
    from forge_pipeline.deploy.launch import launch_settlement

    return (cycle_key, *launch_settlement(cycle_key, _run_instance()))


def _resume_in_run_process(run_id: str) -> tuple[str, bool, str]:
    from forge_pipeline.deploy.launch import resume_run

    return (run_id, *resume_run(run_id, _run_instance()))


def in_run_processes(pool: Pool, function, arguments: list[str], parallel_runs: int) -> Iterator[tuple[str, bool, str]]:
    """(argument, success, run id) for each argument, as each run ends, `parallel_runs` at a time."""
    with entered(pool):
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, min(parallel_runs, len(arguments))), mp_context=context) as runs:
            futures = [runs.submit(function, argument) for argument in arguments]
            for future in as_completed(futures):
                yield future.result()


def run_workloads(pool: Pool, workload_ids: list[str], parallel_runs: int) -> dict[str, tuple[bool, str]]:
    """Each workload's lifecycle through the workers; {workload id: (success, run id)}."""
    from forge_pipeline.storage import records
    from forge_pipeline.storage.database import open_engine

    outcome: dict[str, tuple[bool, str]] = {}
    if not workload_ids:
        return outcome
    with entered(pool):
        engine = open_engine()
    for workload_id, success, run_id in in_run_processes(pool, _lifecycle_in_run_process, workload_ids, parallel_runs):
        outcome[workload_id] = (success, run_id)
        workload = records.load_workload(engine, workload_id)
        say(f"  {workload_id}  {workload['state']:<10} run {run_id[:8]}  {workload['state_reason']}")
    return outcome


def settle(pool: Pool, day: dt.date) -> tuple[str, bool]:
    """Settle the billing cycle holding `day` through the workers; (cycle key, success)."""
    cycle_key = cycle_key_of(day)
    [(_, success, run_id)] = in_run_processes(pool, _settlement_in_run_process, [cycle_key], 1)
    say(f"cycle {cycle_key}: settlement run {run_id[:8]} {'succeeded' if success else 'FAILED'}")
    return cycle_key, success


def resume(pool: Pool, run_id: str) -> tuple[bool, str]:
    """Re-execute a run from where it stopped, through the workers; (success, new run id)."""
    [(_, success, new_run_id)] = in_run_processes(pool, _resume_in_run_process, [run_id], 1)
    return success, new_run_id


def today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def cycle_key_of(day: dt.date) -> str:
    """The key of the billing cycle (FORGE_BILLING_CYCLE cadence) holding `day`."""
    from forge_pipeline.orchestration.billing_assets import CADENCE
    from forge_pipeline.settle.settlement import cycle_of

    return cycle_of(day, CADENCE).key


def report(pool: Pool, workload_ids: list[str], cycle_key: str | None) -> bool:
    """Each workload's state, charge and digests; the cycle's statements; the ledger check. True when intact."""
    from forge_pipeline.operator import print_statements
    from forge_pipeline.ledger.ledger import verify_chain
    from forge_pipeline.status import workload_status
    from forge_pipeline.storage.database import open_engine

    with entered(pool):
        engine = open_engine()
        for workload_id in workload_ids:
            status = workload_status(engine, workload_id)
            print(f"{workload_id}  {status['state']:<10} {status['primitive']:<45} charge {status['charge_ucr']} ucr  "
                  f"output {str(status['output_digest'])[:16]}")
        if cycle_key:
            print_statements(cycle_key)
        verified = verify_chain(engine)
    print(f"ledger {'intact' if verified.ok else 'NOT intact'}: {verified.entries_checked} entries"
          + ("" if verified.ok else f", first bad entry {verified.first_bad_sequence}: {verified.reason}"))
    return verified.ok


def pending_workloads(pool: Pool) -> list[str]:
    from forge_pipeline.states import State
    from forge_pipeline.storage import records
    from forge_pipeline.storage.database import open_engine

    with entered(pool):
        return records.list_workload_ids(open_engine(), State.PENDING)


def submit_files(pool: Pool, paths: list[str]) -> list[str]:
    from forge_pipeline.operator import submit

    with entered(pool):
        return submit(paths)


# -- command line ---------------------------------------------------------------------------

def home_argument() -> str:
    return str(Path(os.environ.get("FORGE_HOME", ".forge")).resolve())


def running_pool(home: str) -> Pool:
    pool = Pool.load(home)
    if pool is None or not any(is_pool_worker(worker) for worker in pool.workers):
        raise PoolProblem(f"no pool is up in {Path(home) / 'pool'}: `forge-pool pool up --keep` first")
    return pool


def command_up(arguments) -> int:
    pool = Pool(home=home_argument(), server_url=arguments.postgres, database_prefix=arguments.database_prefix,
                broker=arguments.broker)
    queues = [queue for queue in arguments.queues.split(",") if queue]
    say(f"pool: {arguments.workers} worker(s) on {arguments.broker}, queues {','.join(queues)}, "
        f"databases {pool.database_prefix}_dagster and {pool.database_prefix}_ledger")
    start(pool, arguments.workers, queues, arguments.concurrency)
    say(f"pool: workers ready ({', '.join(f'{w.name} pid {w.pid}' for w in pool.workers)})")
    try:
        workload_ids = submit_files(pool, arguments.files) if arguments.files else []
        pending = pending_workloads(pool)
        say(f"pool: running {len(pending)} pending workload(s) through the workers")
        outcome = run_workloads(pool, pending, arguments.parallel_runs or arguments.workers)
        cycle_key, settled = settle(pool, today())
        intact = report(pool, list(dict.fromkeys(workload_ids + pending)), cycle_key)
    finally:
        if not arguments.keep:
            stop(pool)
            say("pool: stopped every worker it started")
    if arguments.keep:
        say("pool: workers left up; `forge-pool pool down` stops them")
    return EXIT_OK if all(success for success, _ in outcome.values()) and settled and intact else EXIT_PROBLEM


def command_run(arguments) -> int:
    pool = running_pool(home_argument())
    workload_ids = arguments.workload_ids or pending_workloads(pool)
    outcome = run_workloads(pool, workload_ids, arguments.parallel_runs or len(pool.workers))
    return EXIT_OK if all(success for success, _ in outcome.values()) else EXIT_PROBLEM


def command_settle(arguments) -> int:
    pool = running_pool(home_argument())
    try:
        day = dt.date.fromisoformat(arguments.day)
    except ValueError:
        say(f"error: day must be a date YYYY-MM-DD, got {arguments.day!r}")
        return EXIT_BAD_INPUT
    cycle_key, settled = settle(pool, day)
    return EXIT_OK if settled and report(pool, [], cycle_key) else EXIT_PROBLEM


def command_resume(arguments) -> int:
    pool = running_pool(home_argument())
    try:
        success, run_id = resume(pool, arguments.run_id)
    except LookupError as error:
        say(f"error: {error}")
        return EXIT_BAD_INPUT
    say(f"run {arguments.run_id[:8]} resumed as {run_id[:8]}: {'succeeded' if success else 'FAILED'}")
    return EXIT_OK if success else EXIT_PROBLEM


def command_status(arguments) -> int:
    pool = Pool.load(home_argument())
    workers = [{**asdict(worker), "alive": is_pool_worker(worker)} for worker in (pool.workers if pool else [])]
    if arguments.json:
        print(json.dumps({"home": pool.home if pool else home_argument(), "workers": workers}, indent=2))
    elif not workers:
        print("no pool workers")
    for worker in [] if arguments.json else workers:
        print(f"{worker['name']}  pid {worker['pid']}  {'up' if worker['alive'] else 'DOWN'}  "
              f"queues {','.join(worker['queues'])}  log {worker['log']}")
    return EXIT_OK


def command_env(arguments) -> int:
    pool = Pool.load(home_argument())
    if pool is None:
        say(f"error: no pool in {Path(home_argument()) / 'pool'}")
        return EXIT_PROBLEM
    for name, value in pool.environment().items():
        if name != "PATH":
            print(f"export {name}={value!r}" if " " in value else f"export {name}={value}")
    return EXIT_OK


def command_down(arguments) -> int:
    pool = Pool.load(home_argument())
    if pool is None or not pool.workers:
        say("no pool workers to stop")
        return EXIT_OK
    names = ", ".join(worker.name for worker in pool.workers)
    stop(pool)
    say(f"stopped {names}")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="forge-pool pool", description=__doc__.split("\n\n")[0])
    actions = root.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="prepare, start workers, run pending workloads and settle today, stop")
    up.add_argument("files", nargs="*", help="request files to submit first")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--queues", default=",".join(settings.WORKER_QUEUES),
                    help=f"queues every worker listens on (default {','.join(settings.WORKER_QUEUES)})")
    up.add_argument("--concurrency", type=int, default=1, help="steps each worker runs at once (default 1)")
    up.add_argument("--parallel-runs", type=int, help="runs orchestrated at once (default: one per worker)")
    up.add_argument("--postgres", default=os.environ.get("FORGE_POOL_POSTGRES", DEFAULT_SERVER_URL),
                    help="PostgreSQL server URL without a database (env FORGE_POOL_POSTGRES)")
    up.add_argument("--database-prefix", default=DEFAULT_DATABASE_PREFIX,
                    help="databases PREFIX_dagster and PREFIX_ledger (default %(default)s)")
    up.add_argument("--broker", default=os.environ.get("FORGE_CELERY_BROKER", DEFAULT_BROKER),
                    help="Celery broker URL (env FORGE_CELERY_BROKER, default %(default)s)")
    up.add_argument("--keep", action="store_true", help="leave the workers up (stop them with `pool down`)")
    up.set_defaults(handler=command_up)
    run = actions.add_parser("run", help="run workloads (default: every pending one) through a pool left up")
    run.add_argument("workload_ids", nargs="*")
    run.add_argument("--parallel-runs", type=int)
    run.set_defaults(handler=command_run)
    settle_parser = actions.add_parser("settle", help="settle the billing cycle holding a day through the pool")
    settle_parser.add_argument("day", metavar="YYYY-MM-DD")
    settle_parser.set_defaults(handler=command_settle)
    resume = actions.add_parser("resume", help="re-execute a run from where it stopped (its orchestrator died)")
    resume.add_argument("run_id")
    resume.set_defaults(handler=command_resume)
    status = actions.add_parser("status", help="the pool's workers, alive or not")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=command_status)
    actions.add_parser("env", help="export lines for the pool's settings (eval them to use forge-pool on the pool)") \
        .set_defaults(handler=command_env)
    actions.add_parser("down", help="stop every worker the pool started").set_defaults(handler=command_down)
    return root


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    from forge_pipeline.intake.problems import RequestInvalid

    try:
        return arguments.handler(arguments)
    except PoolProblem as error:
        say(f"error: {error}")
        return EXIT_PROBLEM
    except (settings.SettingInvalid, PoolArgumentInvalid) as error:
        say(f"error: {error}")
        return EXIT_BAD_INPUT
    except RequestInvalid as error:
        for problem in error.problems:
            say(f"error: {problem}")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
