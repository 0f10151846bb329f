"""Fan a plan out as one Ray task per run, keep the cluster full, store each record as it comes
back, show a progress line; retries (worker deaths), fail-fast and Ctrl-C. Harness layer.
"""

import sys
import time
import traceback
from dataclasses import dataclass, field

from harness.cluster import capacity, connect, disconnect, fit_requests
from harness.record import check, failed_record
from harness.trial import run_one


class SweepInterrupted(Exception):
    """Ctrl-C: in-flight tasks were cancelled; what finished is stored and a re-run resumes."""


@dataclass
class Outcome:
    total: int
    skipped: int
    finished: dict = field(default_factory=dict)  # run_id -> status
    stopped_early: bool = False
    dashboard_url: str | None = None

    @property
    def failed(self):
        return sum(status == "failed" for status in self.finished.values())


def _execute(spec, threads, device, trial_fn):
    """The body of one Ray task: run the trial, return its record (never touch shared files)."""
    return run_one(spec, threads=threads, device=device, trial_fn=trial_fn)


class Progress:
    """One status line: done / running / failed / ETA (rewritten in place on a terminal)."""

    def __init__(self, total, out):
        self.total, self.out, self.started = total, out, time.monotonic()
        self.last = None
        self.tty = hasattr(out, "isatty") and out.isatty()

    def show(self, done, running, failed, final=False):
        elapsed = time.monotonic() - self.started
        eta = "?" if done == 0 else _duration(elapsed / done * (self.total - done))
        line = (f"[{done}/{self.total} done, {running} running, {failed} failed, "
                f"elapsed {_duration(elapsed)}, ETA {eta}]")
        if line == self.last and not final:
            return
        if self.tty:
            self.out.write("\r" + line + ("\n" if final else ""))
        elif line.split(", elapsed")[0] != (self.last or "").split(", elapsed")[0] or final:
            self.out.write(line + "\n")
        self.out.flush()
        self.last = line


def run_plan(plan, store, *, rerun=False, trial_fn=None, out=None, on_connect=None):
    """Run what `store` lacks of `plan` on Ray; returns an Outcome. Raises SweepInterrupted."""
    done = set() if rerun else store.done_ids()
    todo = [run for run in plan.runs if run.run_id not in done]
    outcome = Outcome(total=len(plan.runs), skipped=len(plan.runs) - len(todo))
    if not todo:
        return outcome
    connection = connect(plan.harness)
    outcome.dashboard_url = connection.dashboard_url
    if on_connect:
        on_connect(connection)
    try:
        _fan_out(todo, plan.harness, store, trial_fn, outcome, out or sys.stderr)
    finally:
        disconnect(connection)
    return outcome


def _fan_out(todo, harness, store, trial_fn, outcome, out):
    import ray

    requests = fit_requests(todo, harness)
    window = capacity(requests)
    task = ray.remote(_execute)
    pending, in_flight = list(todo), {}
    progress = Progress(len(todo), out)

    def submit(spec):
        request = requests[spec.run_id]
        ref = task.options(name=spec.task_name, num_cpus=request.num_cpus,
                           num_gpus=request.num_gpus, max_retries=int(harness["max_retries"]),
                           retry_exceptions=False).remote(
            spec, max(1, int(request.num_cpus)), request.device, trial_fn)
        in_flight[ref] = spec

    try:
        while pending or in_flight:
            while pending and len(in_flight) < window:
                submit(pending.pop(0))
            progress.show(len(outcome.finished), len(in_flight), outcome.failed)
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for ref in ready:
                spec = in_flight.pop(ref)
                record = _collect(ray, ref, spec, harness)
                store.write_record(record)
                outcome.finished[spec.run_id] = record["status"]
                if record["status"] == "failed" and harness.get("fail_fast"):
                    outcome.stopped_early = True
                    pending.clear()
                    _cancel(ray, in_flight)
        progress.show(len(outcome.finished), 0, outcome.failed, final=True)
    except KeyboardInterrupt:
        _cancel(ray, in_flight)
        progress.show(len(outcome.finished), 0, outcome.failed, final=True)
        raise SweepInterrupted(f"interrupted: {len(outcome.finished)} of {len(todo)} runs stored, "
                               f"{len(todo) - len(outcome.finished)} not run") from None


def _collect(ray, ref, spec, harness):
    """The task's record, or a failed record saying how the task itself died."""
    try:
        record = ray.get(ref)
        check(record)
        return record
    except ray.exceptions.RayTaskError as error:
        return failed_record(spec, f"the task raised outside the trial:\n{error}")
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.RayError) as error:
        return failed_record(spec, f"the worker died {int(harness['max_retries']) + 1} time(s) "
                                   f"(harness.max_retries={harness['max_retries']}): {error}")
    except ValueError:
        return failed_record(spec, traceback.format_exc())


def _cancel(ray, in_flight):
    for ref in list(in_flight):
        ray.cancel(ref, force=True)
    in_flight.clear()


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
