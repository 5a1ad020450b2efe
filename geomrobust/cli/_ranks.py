"""The rank jobs of ``eval`` and ``eval-pairs`` under ``torchrun`` (one per rank).

Each rank reads the same checkpoint and data onto its own device, runs its share of the work
(the library decides which: :mod:`geomrobust.robustness._distributed`), and rank 0 gathers
the predictions and writes the one result, equal to that of a single process. A failure on
any rank fails the run: rank 0 prints ``error: rank R of N failed: ...`` (exit status 2 for
bad input, 1 otherwise) and no result is written. See docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np

from geomrobust.cli._errors import input_errors, print_error
from geomrobust.cli._eval_steps import (
    already_complete,
    eval_inputs,
    pairs_inputs,
    partial_path,
    write_eval,
    write_pairs,
)
from geomrobust.cli._options import check_out, progress_bar, set_threads
from geomrobust.robustness._distributed import (
    Launch,
    LostContact,
    ProcessGroup,
    RankInputError,
    RanksFailed,
    assign_shards,
    distributed_shards,
    pair_ranges,
    rank_device,
    shard_groups,
    threads_per_rank,
    timeout_s,
)

__all__ = ["run_sharded_attack", "run_sharded_eval", "run_sharded_pairs"]

log = logging.getLogger("geomrobust")


def _quiet_unless_main(launch: Launch) -> None:
    """Ranks other than 0 log only errors and show no warnings."""
    if not launch.is_main:
        logging.getLogger("geomrobust").setLevel(logging.ERROR)
        warnings.simplefilter("ignore")


def _run(args: argparse.Namespace, launch: Launch, job: Callable[[ProcessGroup], int]) -> int:
    """Set up this rank, run ``job`` in the process group, and exit with its status.

    Failures become the exit status: rank 0 reports them (one ``error: ...`` line; status
    2 for bad input, else 1), the others exit quietly with the same status. Bad input found
    before the group is up (``--device``, ``--threads``) is raised on rank 0 (and on the
    rank it concerns); once the group is up the process ends here (see
    :func:`_exit`).
    """
    import torch

    _quiet_unless_main(launch)
    bad_input = input_errors()
    try:
        timeout_s()
        set_threads(threads_per_rank(launch, args.threads))
        device = rank_device(args.device, launch)
    except RankInputError:
        raise
    except bad_input:
        if launch.is_main:
            raise
        return 2  # the same input on every rank: rank 0 reports it
    log.debug(
        "rank %d of %d on %s with %d thread(s)",
        launch.rank,
        launch.world_size,
        device,
        torch.get_num_threads(),
    )
    try:
        with ProcessGroup(launch, device, input_errors=bad_input) as group:
            try:
                status = job(group)
            except RanksFailed as exc:
                if launch.is_main:
                    print_error(exc)
                    for rank, failure in exc.failures:
                        if failure.detail:
                            print(f"traceback of rank {rank}:\n{failure.detail}", file=sys.stderr)
                    sys.stderr.flush()
                # The launcher stops every rank once one exits with an error: wait until
                # rank 0 has reported.
                group.all_gather(None, "reporting the failure")
                status = 2 if exc.bad_input else 1
    except LostContact as exc:
        print_error(exc)
        status = 1
    _exit(status)


def _exit(status: int) -> NoReturn:
    """Leave the process now, once its output is flushed and the group destroyed.

    Skipping the interpreter's finalisation is deliberate: with the gloo backend a rank
    sometimes aborts there (SIGABRT, "terminate called without an active exception", in
    about 1 launch in 10 on a busy 2-core machine, after all Python code has run), which
    would turn a finished run into a failed one. Results are already on disk (written
    atomically and fsynced).
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to keep
            stream.flush()
    os._exit(status)


def _remove(folder: Path) -> None:
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    elif folder.exists():
        folder.unlink(missing_ok=True)


def run_sharded_eval(args: argparse.Namespace, launch: Launch) -> int:
    """``geomrobust eval`` on this rank of a ``torchrun`` launch; see the module docstring."""
    return _run(args, launch, lambda group: _eval_job(args, launch, group))


def _complete(group: ProcessGroup, out: Path, *, resume: bool, partial: Path | None = None):
    """``--resume`` on a finished run: rank 0 (which writes the result) decides and says so,
    and every rank then stops with exit status 0."""
    done = group.launch.is_main and already_complete(out, resume=resume, partial=partial)
    return any(group.all_gather(done, "checking for a finished result"))


def _eval_plan(args: argparse.Namespace, device):
    from geomrobust.robustness._engine import EvalPlan

    sweep, data, loaded, device, options = eval_inputs(args, device=device)
    return EvalPlan(
        loaded.model,
        data,
        sweep,
        options=options,
        device=device,
        record=loaded.record,
        assumptions=loaded.assumptions,
    )


def _eval_job(args: argparse.Namespace, launch: Launch, group: ProcessGroup) -> int:
    return _sharded_job(args, launch, group, _eval_plan, write_eval)


def run_sharded_attack(args: argparse.Namespace, launch: Launch, make_plan, write) -> int:
    """``geomrobust attack`` on this rank of a ``torchrun`` launch: the eval job's sharding,
    with the attack's plan (image blocks, all outcomes each) and writer."""
    return _run(args, launch, lambda group: _sharded_job(args, launch, group, make_plan, write))


def _sharded_job(args, launch: Launch, group: ProcessGroup, make_plan, write_result) -> int:
    """The rank job of a sharded plan (an ``EvalPlan`` or an ``AttackPlan``)."""
    from geomrobust.robustness._engine import merge_probs, merge_shards
    from geomrobust.robustness._io import PartialStore

    out: Path = args.out
    partial = partial_path(out)
    rank, world = launch.rank, launch.world_size
    if _complete(group, out, resume=args.resume, partial=partial):
        return 0

    def setup():
        if launch.is_main:
            check_out(out, args.force)
        return make_plan(args, group.device)

    plan = group.step("reading the checkpoint and data", setup)
    n = plan.n_images
    streamed = plan.image_major
    shards = distributed_shards(
        len(plan.rows), n, world_size=world, batch_size=plan.options.batch_size, streamed=streamed
    )
    if not args.resume and launch.local_rank == 0:
        _remove(partial)  # one rank per node starts the partial over; the step below waits
    group.step("starting the partial results", lambda: None)

    def open_store() -> tuple[PartialStore, list[int]]:
        store = PartialStore(
            partial, plan.partial_key(), n, part=f"rank-{rank:05d}", check=plan.check_piece
        )
        store.start(resume=args.resume)
        seen = [i for i, s in enumerate(shards) if store.lookup(s.row, s.start, s.stop) is not None]
        return store, seen

    store, seen = group.step("opening the partial results", open_store)
    seen_by = group.all_gather(seen, "sharing the finished shards")
    keeper: dict[int, int] = {}  # finished shard -> the lowest rank that has it
    for r, indices in enumerate(seen_by):
        for i in indices:
            keeper.setdefault(i, r)
    owner = assign_shards(
        [s.stop - s.start for s in shards],
        sorted(keeper),
        world,
        groups=shard_groups(shards, streamed=streamed),
    )
    mine = [s for i, s in enumerate(shards) if owner[i] == rank or keeper.get(i) == rank]
    total = sum(s.stop - s.start for s in mine)

    started = time.perf_counter()

    def compute():
        desc = f"{plan.label} (rank 0 of {world})"
        with progress_bar(args.progress and launch.is_main, total, desc) as bar:
            return plan.run(mine, store=store, progress=bar.update)

    try:
        results, computed = group.step("evaluating the shards", compute)
    except RanksFailed:
        if launch.local_rank == 0 and not any(partial.rglob("*.npy")):
            _remove(partial)  # nothing finished on this node: leave no trace
        raise
    gathered = group.gather((results, computed, str(plan.runner.device)))
    elapsed = time.perf_counter() - started

    def write() -> None:
        if gathered is None:
            return
        pieces = [r for part, _, _ in gathered for r in part]
        merged = merge_shards(pieces, n_rows=len(plan.rows), n_images=n)
        probs = merge_probs(pieces, n_rows=len(plan.rows), n_images=n)
        resumed_rows = {s.row for i, s in enumerate(shards) if i in keeper}
        resumed_rows -= {s.row for i, s in enumerate(shards) if i not in keeper}
        run = plan.run_record(
            rows_computed=len(plan.rows) - len(resumed_rows),
            rows_resumed=len(resumed_rows),
            elapsed_s=round(elapsed, 3),
            world_size=world,
            backend=group.backend,
            devices=[device for _, _, device in gathered],
            shards=len(shards),
            shards_computed=sum(c for _, c, _ in gathered),
            shards_resumed=len(keeper),
        )
        write_result(plan.result(merged, run=run, probs=probs), out)

    group.step("writing the result", write)
    if launch.local_rank == 0:
        _remove(partial)
    return 0


def run_sharded_pairs(args: argparse.Namespace, launch: Launch) -> int:
    """``geomrobust eval-pairs`` on this rank of a ``torchrun`` launch."""
    return _run(args, launch, lambda group: _pairs_job(args, launch, group))


def _pairs_job(args: argparse.Namespace, launch: Launch, group: ProcessGroup) -> int:
    from geomrobust.robustness import evaluate_pairs

    out: Path = args.out
    if _complete(group, out, resume=args.resume):
        return 0

    def setup():
        if launch.is_main:
            check_out(out, args.force)
        return pairs_inputs(args, device=group.device)

    data, loaded, options = group.step("reading the checkpoint and data", setup)
    start, stop = pair_ranges(
        options["num_pairs"], world_size=launch.world_size, batch_size=options["batch_size"]
    )[launch.rank]
    started = time.perf_counter()

    def compute() -> np.ndarray:
        if start == stop:
            return np.empty(0, dtype=np.int64)
        show = args.progress and launch.is_main
        with progress_bar(show, stop - start, "pairs (rank 0)") as bar:
            part = evaluate_pairs(
                loaded.model, data, pair_range=(start, stop), progress=bar.update, **options
            )
        return part.predictions

    predictions = group.step("classifying the pairs", compute)
    gathered = group.gather((predictions, group.device))
    elapsed = time.perf_counter() - started

    def write() -> None:
        if gathered is None:
            return
        merged = np.concatenate([p for p, _ in gathered])
        result = evaluate_pairs(loaded.model, data, predictions=merged, **options)
        run = {
            **result.run,
            "threads": _threads(),
            "elapsed_s": round(elapsed, 3),
            "world_size": launch.world_size,
            "backend": group.backend,
            "devices": [device for _, device in gathered],
        }
        write_pairs(dataclasses.replace(result, run=run), out)

    group.step("writing the result", write)
    return 0


def _threads() -> int:
    import torch

    return torch.get_num_threads()
