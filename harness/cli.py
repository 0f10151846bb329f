"""The command line: `sweep`, `run`, `report`, `list`. Parses arguments, prints the plan and where
results go, maps errors to exit codes (2: bad config, 1: failed runs, 130: interrupted).
Harness layer.
"""

import argparse
import os
import sys

from harness.cluster import ResourceError
from harness.config import GROUPS, ConfigError

EXIT_OK, EXIT_FAILED_RUNS, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = """\
overrides use Hydra's grammar:
  python -m harness sweep                               the default sweep (experiment=default)
  python -m harness sweep init=kaiming,normal           two runs, one per init
  python -m harness sweep init=normal init.c=1,2,3 seed=0,1    six runs (cartesian product)
  python -m harness sweep optimizer=sgd,adam 'optimizer.lr=range(0.01,0.05,0.01)'
  python -m harness sweep experiment=smoke              a preset (+experiment=smoke works too)
  python -m harness sweep init=kaiming,normal --dry-run list the runs, run nothing
  python -m harness run init=xavier model.depth=4       one run in this process, no Ray
  python -m harness report outputs/default              rebuild the report of a sweep folder
  python -m harness list                                config groups, options and presets

execution settings (not part of a run's identity, not sweepable):
  harness.output_dir=DIR   harness.ray_address=HOST:PORT (or RAY_ADDRESS)   harness.num_cpus=N
  harness.cpus_per_run=N   harness.gpus_per_run=F   harness.cuda_fallback=cpu
  harness.max_retries=N    harness.fail_fast=true   harness.ship_code=true

re-running a sweep into the same folder runs only what is missing; --rerun runs everything.
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m harness", epilog=EPILOG, formatter_class=argparse.RawTextHelpFormatter,
        description="Run deep-learning-systems experiments on our engine: Hydra-composed configs, "
                    "one Ray task per run, results as JSON/CSV and a report.")
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", help="run every combination of the overrides on Ray",
                                epilog=EPILOG, formatter_class=argparse.RawTextHelpFormatter)
    sweep.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. init=kaiming,normal")
    sweep.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    sweep.add_argument("--rerun", action="store_true", help="run even what is already done")
    run = commands.add_parser("run", help="one run in this process (no Ray), for debugging")
    run.add_argument("overrides", nargs="*")
    run.add_argument("--output-dir", default=None,
                     help="store the record in this sweep folder (default: print a summary only)")
    report = commands.add_parser("report", help="rebuild the report of a sweep folder")
    report.add_argument("folder")
    commands.add_parser("list", help="config groups, their options and the presets")
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sweep":
            return sweep_command(args, argv)
        if args.command == "run":
            return run_command(args)
        if args.command == "report":
            return report_command(args.folder)
        return list_command()
    except (ConfigError, ResourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG


def sweep_command(args, argv):
    from harness.runner import SweepInterrupted, run_plan
    from harness.store import SweepStore
    from harness.sweep import expand

    plan = expand(args.overrides, command=["python", "-m", "harness", *argv])
    store = SweepStore(plan.output_dir)
    done = set() if args.rerun else store.done_ids()
    todo = [run for run in plan.runs if run.run_id not in done]
    print(f"plan: {len(plan.runs)} run(s) of experiment '{plan.experiment}', "
          f"{len(plan.runs) - len(todo)} already done, {len(todo)} to run -> {plan.output_dir}")
    for run in plan.runs:
        state = "done" if run.run_id in done else "todo"
        print(f"  {run.run_id}  {state}  {run.task_name}")
    if args.dry_run:
        return EXIT_OK
    store.write_plan(plan)

    def announce(connection):
        where = "started a local Ray instance" if connection.started_here else \
            f"joined Ray at {connection.address}"
        print(f"ray: {where}; dashboard: {connection.dashboard_url or 'not available'}",
              flush=True)

    try:
        outcome = run_plan(plan, store, rerun=args.rerun, on_connect=announce)
    except SweepInterrupted as stop:
        store.write_results_csv(plan.swept_keys, [run.run_id for run in plan.runs])
        print(f"{stop}; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    results = store.write_results_csv(plan.swept_keys, [run.run_id for run in plan.runs])
    records = store.records([run.run_id for run in plan.runs])
    sources = {(record["data"] or {}).get("source") for record in records}
    for source in sorted(s for s in sources if s):
        print(f"data: {source}")
    if outcome.stopped_early:
        print("fail_fast: stopped at the first failed run", file=sys.stderr)
    print(f"results: {results} ({outcome.failed} failed; records in "
          f"{store.runs_dir}, failures in {store.failed_dir})")
    report_command(plan.output_dir)
    return EXIT_FAILED_RUNS if outcome.failed else EXIT_OK


def run_command(args):
    from harness.record import METRIC_KEYS
    from harness.sweep import single
    from harness.trial import run_one

    spec, harness = single(args.overrides)
    print(f"run {spec.run_id} {spec.name} in-process (device {spec.config['device']['name']})")
    record = run_one(spec, threads=max(1, int(harness["cpus_per_run"])))
    if args.output_dir:
        from harness.store import SweepStore

        print(f"record: {SweepStore(args.output_dir).write_record(record)}")
    final = ", ".join(f"{key}={_fmt(record['final'][key])}" for key in METRIC_KEYS)
    print(f"status: {record['status']}  {final}  ({record['wall_time_s']:.2f}s)")
    if record["error"]:
        print(record["error"], file=sys.stderr)
    return EXIT_FAILED_RUNS if record["status"] == "failed" else EXIT_OK


def report_command(folder):
    """The report package's build_report when present; otherwise a results table here."""
    from harness.store import SweepStore

    store = SweepStore(folder)
    if not os.path.exists(os.path.join(folder, "sweep.json")):
        raise ConfigError(f"{folder}: not a sweep folder (no sweep.json)")
    try:
        from harness.report import build_report
    except ImportError:
        build_report = None
    if build_report is not None:
        print(f"report: {build_report(folder)}")
        return EXIT_OK
    plan = store.read_plan()
    records = store.records([run["run_id"] for run in plan["runs"]])
    print(results_table(records))
    print(f"report: {store.write_results_csv(plan['swept_keys'], [r['run_id'] for r in records])}")
    return EXIT_OK


def results_table(records):
    columns = ["name", "status", "final_train_error", "final_test_error", "wall_time_s"]
    rows = [[r["name"], r["status"], _fmt(r["final"]["train_error"]),
             _fmt(r["final"]["test_error"]), f"{r['wall_time_s']:.1f}"] for r in records]
    widths = [max(len(str(x)) for x in [column] + [row[i] for row in rows])
              for i, column in enumerate(columns)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True))
             for row in [columns] + rows]
    return "\n".join(lines)


def list_command():
    import conf

    root = list(conf.__path__)[0]
    for group in GROUPS:
        options = sorted(name[:-5] for name in os.listdir(os.path.join(root, group))
                         if name.endswith(".yaml"))
        print(f"{group + ':':12s}{', '.join(options)}")
    print("plain keys:  seed, dropout.p; execution: harness.* (see --help)")
    print("presets:    experiment=NAME (or +experiment=NAME) picks one of the experiment options")
    return EXIT_OK


def _fmt(value):
    return "null" if value is None else f"{value:.4f}"
