"""Scale-out: one ``eval`` or ``eval-pairs`` run sharded over torch.distributed ranks.

``torchrun --nproc-per-node N -m robustness eval ...`` starts N copies of the CLI; the
launcher's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) tells
each which rank it is. Every rank reads the same checkpoint and data onto its own device
(``cuda:LOCAL_RANK``, or the CPU with ``LOCAL_WORLD_SIZE``-th of the node's cores), runs its
share of the work, and rank 0 gathers the per-image predictions with their counts and
confusion matrices and writes the one result, equal to that of a single process.

Ranks agree at each step: every rank reports ``ok`` or its error (``all_gather_object``),
and if any failed, all stop; rank 0 reports which rank failed and why (exit status 2 for
bad input, 1 otherwise), and no result is written. The result appears only after every
rank has succeeded. Collectives time out after ``GEOMROBUST_DIST_TIMEOUT_S`` seconds
(default 1800). See docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np

from robustness._errors import UsageError
from robustness._eval_errors import EvalInputError

__all__ = [
    "ENV_TIMEOUT",
    "Launch",
    "ProcessGroup",
    "RanksFailed",
    "assign_shards",
    "distributed_shards",
    "launch_from_env",
    "pair_ranges",
    "rank_device",
    "run_sharded_eval",
    "run_sharded_pairs",
    "threads_per_rank",
]

log = logging.getLogger("geomrobust")

ENV_TIMEOUT = "GEOMROBUST_DIST_TIMEOUT_S"
_DEFAULT_TIMEOUT_S = 1800.0
_SHARDS_PER_RANK = 4  # rows split into image blocks when there are fewer rows than this per rank

T = TypeVar("T")


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a ``torchrun`` launch.

    Attributes:
        rank: Global rank, ``0 <= rank < world_size``.
        world_size: Number of processes in the run (> 1).
        local_rank: Rank on this node; the GPU index it uses.
        local_world_size: Processes on this node; they share its cores.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_from_env(environ: Any = None) -> Launch | None:
    """The launch described by ``torchrun``'s variables, or ``None`` for a single process
    (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``).

    Raises:
        UsageError: the variables are not whole numbers or contradict each other.
    """
    env = os.environ if environ is None else environ
    if env.get("WORLD_SIZE") is None:
        return None
    values = {}
    for name, default in (
        ("WORLD_SIZE", None),
        ("RANK", None),
        ("LOCAL_RANK", "RANK"),
        ("LOCAL_WORLD_SIZE", "WORLD_SIZE"),
    ):
        text = env.get(name, env.get(default) if default else None)
        try:
            values[name] = int(text)
        except (TypeError, ValueError):
            raise UsageError(
                f"{name}={text!r} in the environment: torchrun sets WORLD_SIZE, RANK, "
                "LOCAL_RANK and LOCAL_WORLD_SIZE to whole numbers; launch with torchrun or "
                "unset WORLD_SIZE to run in one process"
            ) from None
    world, rank = values["WORLD_SIZE"], values["RANK"]
    local, local_world = values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"]
    if world < 1 or not 0 <= rank < world or not 0 <= local < local_world <= world:
        raise UsageError(
            f"inconsistent launch: WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local}, "
            f"LOCAL_WORLD_SIZE={local_world}; expected 0 <= RANK < WORLD_SIZE and "
            "0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE (launch with torchrun)"
        )
    if world == 1:
        return None
    return Launch(rank, world, local, local_world)


class _RankUsageError(UsageError):
    """Bad input that only this rank sees (its GPU), reported by the rank itself."""


def rank_device(requested: str, launch: Launch) -> str:
    """This rank's device: ``cuda:LOCAL_RANK`` for ``auto`` (with GPUs) or ``cuda``, else cpu.

    Raises:
        UsageError: ``cuda:N`` (each rank picks its own GPU), no CUDA, or fewer GPUs on this
            node than ranks.
    """
    import torch

    text = (requested or "auto").strip().lower()
    if text not in ("auto", "cpu", "cuda") and not text.startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N; got {requested!r}")
    if text.startswith("cuda:"):
        raise UsageError(
            f"--device {requested}: under torchrun each rank uses the GPU cuda:LOCAL_RANK; "
            "pass --device cuda (or auto), and choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise UsageError(
            f"--device {requested}: no CUDA device is available here; use --device cpu or auto"
        )
    count = torch.cuda.device_count()
    if launch.local_rank >= count:
        raise _RankUsageError(
            f"rank {launch.rank} has LOCAL_RANK={launch.local_rank} but its node has {count} "
            f"CUDA device(s); start at most {count} process(es) per node "
            f"(--nproc-per-node {count}) or pass --device cpu"
        )
    return f"cuda:{launch.local_rank}"


def threads_per_rank(launch: Launch, threads: int | None) -> int:
    """``threads`` if given, else the node's cores divided among its ranks (at least 1)."""
    if threads is not None:
        return threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // launch.local_world_size)


@dataclass(frozen=True)
class _Status:
    """What a rank reports at the end of a step."""

    ok: bool
    bad_input: bool = False
    message: str = ""
    detail: str = ""


class RanksFailed(Exception):
    """Some ranks failed a step; every rank raises it, so all stop together.

    Attributes:
        failures: ``(rank, status)`` of each failed rank.
        world_size: Ranks in the run.
    """

    def __init__(self, failures: Sequence[tuple[int, _Status]], world_size: int):
        self.failures = tuple(failures)
        self.world_size = world_size
        super().__init__(self._text())

    @property
    def bad_input(self) -> bool:
        """Every failure was bad input (exit status 2), not an unexpected error."""
        return all(s.bad_input for _, s in self.failures)

    def _text(self) -> str:
        by_message: dict[str, list[int]] = {}
        for rank, status in self.failures:
            by_message.setdefault(status.message, []).append(rank)
        parts = []
        for message, ranks in by_message.items():
            who = f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))}"
            parts.append(f"{who} of {self.world_size} failed: {message}")
        return "; ".join(parts)


class ProcessGroup:
    """The default process group of a launch, with the collectives the runs need.

    NCCL when the ranks use GPUs, gloo on CPU. Use as a context manager: the group is
    destroyed on exit.
    """

    def __init__(self, launch: Launch, device: str):
        self.launch = launch
        self.device = device
        self.backend = "nccl" if device.startswith("cuda") else "gloo"

    def __enter__(self) -> ProcessGroup:
        import torch
        import torch.distributed as dist

        timeout = _timeout_s()
        kwargs: dict[str, Any] = {}
        if self.backend == "nccl":
            torch.cuda.set_device(torch.device(self.device))
            kwargs["device_id"] = torch.device(self.device)
        try:
            dist.init_process_group(self.backend, timeout=timedelta(seconds=timeout), **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise _RankUsageError(
                f"rank {self.launch.rank} could not join the process group ({self.backend}, "
                f"MASTER_ADDR={os.environ.get('MASTER_ADDR')}, "
                f"MASTER_PORT={os.environ.get('MASTER_PORT')}): {exc}; check the rendezvous "
                "options (--master-port, --rdzv-endpoint) and that every node can reach it"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    def _collective(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except RuntimeError as exc:  # timeouts and lost peers (DistError is a RuntimeError)
            raise _LostContact(
                f"rank {self.launch.rank}: lost contact with the other ranks while {what} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); a "
                f"rank may have died or be stuck (the timeout is {_timeout_s():g} s, "
                f"{ENV_TIMEOUT})"
            ) from None

    def all_gather(self, obj: T, what: str = "exchanging state") -> list[T]:
        """``obj`` of every rank, by rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.launch.world_size

        def call() -> list[T]:
            dist.all_gather_object(out, obj)
            return out

        return self._collective(what, call)

    def gather(self, obj: T, what: str = "gathering results") -> list[T] | None:
        """``obj`` of every rank on rank 0 (by rank); ``None`` on the others."""
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.launch.world_size if self.launch.is_main else None
        self._collective(what, lambda: dist.gather_object(obj, out, dst=0))
        return out

    def step(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every rank, then agree: its value if every rank succeeded.

        Raises:
            RanksFailed: on every rank, if ``fn`` raised on any.
        """
        try:
            value = fn()
            status = _Status(ok=True)
        except (UsageError, EvalInputError) as exc:
            value, status = None, _Status(ok=False, bad_input=True, message=str(exc))
        except Exception as exc:  # reported by rank 0, then every rank stops
            value = None
            status = _Status(
                ok=False,
                message=f"{type(exc).__name__}: {exc}",
                detail=traceback.format_exc(),
            )
        statuses = self.all_gather(status, f"agreeing on '{what}'")
        failures = [(r, s) for r, s in enumerate(statuses) if not s.ok]
        if failures:
            raise RanksFailed(failures, self.launch.world_size)
        return value  # type: ignore[return-value]


class _LostContact(RuntimeError):
    """A collective failed: another rank died, hung, or cannot be reached."""


def _timeout_s() -> float:
    text = os.environ.get(ENV_TIMEOUT)
    if text is None:
        return _DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{ENV_TIMEOUT} must be a number of seconds > 0; got {text!r}")
    return value


def _quiet_unless_main(launch: Launch) -> None:
    """Ranks other than 0 log only errors and show no warnings."""
    if not launch.is_main:
        logging.getLogger("geomrobust").setLevel(logging.ERROR)
        warnings.simplefilter("ignore")


def _run(args: argparse.Namespace, launch: Launch, job: Callable[[ProcessGroup], int]) -> int:
    """Set up this rank, run ``job`` in the process group, and exit with its status.

    Failures become the exit status: rank 0 reports them (one ``error: ...`` line; status
    2 for bad input, else 1), the others exit quietly with the same status. Bad input found
    before the group is up (``--device``, ``--threads``) is raised as :class:`UsageError` on
    rank 0 (and on the rank it concerns); once the group is up the process ends here (see
    :func:`_exit`).
    """
    import torch

    from robustness._eval_cmd import set_threads

    _quiet_unless_main(launch)
    try:
        _timeout_s()
        set_threads(threads_per_rank(launch, args.threads))
        device = rank_device(args.device, launch)
    except _RankUsageError:
        raise
    except UsageError:
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
        with ProcessGroup(launch, device) as group:
            try:
                status = job(group)
            except RanksFailed as exc:
                if launch.is_main:
                    print(f"error: {exc}", file=sys.stderr)
                    for rank, failure in exc.failures:
                        if failure.detail:
                            print(f"traceback of rank {rank}:\n{failure.detail}", file=sys.stderr)
                    sys.stderr.flush()
                # The launcher stops every rank once one exits with an error: wait until
                # rank 0 has reported.
                group.all_gather(None, "reporting the failure")
                status = 2 if exc.bad_input else 1
    except _LostContact as exc:
        print(f"error: {exc}", file=sys.stderr)
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


# --- eval ---------------------------------------------------------------------------------


def distributed_shards(n_rows: int, n_images: int, *, world_size: int, batch_size: int):
    """The shards of a distributed eval: whole rows when there are at least
    ``4 × world_size`` rows, else each row cut into blocks of a multiple of ``batch_size``
    images, so that every batch is one that a single process runs too."""
    from robustness._engine import plan_shards

    if n_rows >= _SHARDS_PER_RANK * world_size:
        per = n_images
    else:
        blocks = math.ceil(_SHARDS_PER_RANK * world_size / n_rows)
        per = math.ceil(math.ceil(n_images / blocks) / batch_size) * batch_size
    return plan_shards(n_rows, n_images, images_per_shard=max(1, min(per, n_images)))


def assign_shards(sizes: Sequence[int], done: Sequence[int], world_size: int) -> list[int]:
    """The rank that computes each shard: shards not ``done`` go, in order, to the rank with
    the fewest images so far (the lowest on ties); ``done`` shards are assigned ``-1``."""
    load = [0] * world_size
    owner = [-1] * len(sizes)
    finished = set(done)
    for i, size in enumerate(sizes):
        if i in finished:
            continue
        rank = min(range(world_size), key=lambda r: (load[r], r))
        owner[i] = rank
        load[rank] += size
    return owner


def _remove(folder: Path) -> None:
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    elif folder.exists():
        folder.unlink(missing_ok=True)


def run_sharded_eval(args: argparse.Namespace, launch: Launch) -> int:
    """``geomrobust eval`` on this rank of a ``torchrun`` launch; see the module docstring."""
    return _run(args, launch, lambda group: _eval_job(args, launch, group))


def _eval_job(args: argparse.Namespace, launch: Launch, group: ProcessGroup) -> int:
    from robustness._engine import EvalPlan, merge_shards
    from robustness._eval_cmd import _bar, _check_out, eval_inputs, partial_path, write_eval
    from robustness._io import PartialStore

    out: Path = args.out
    partial = partial_path(out)
    rank, world = launch.rank, launch.world_size

    def setup() -> EvalPlan:
        if launch.is_main:
            _check_out(out, args.force, resume=args.resume)
        sweep, data, loaded, device, options = eval_inputs(args, device=group.device)
        return EvalPlan(
            loaded.model,
            data,
            sweep,
            options=options,
            device=device,
            record=loaded.record,
            assumptions=loaded.assumptions,
        )

    plan = group.step("reading the checkpoint and data", setup)
    n = plan.n_images
    shards = distributed_shards(
        len(plan.rows), n, world_size=world, batch_size=plan.options.batch_size
    )
    if not args.resume and launch.local_rank == 0:
        _remove(partial)  # one rank per node starts the partial over; the step below waits
    group.step("starting the partial results", lambda: None)

    def open_store() -> tuple[PartialStore, list[int]]:
        store = PartialStore(partial, plan.partial_key(), n, part=f"rank-{rank:05d}")
        store.start(resume=args.resume)
        seen = [i for i, s in enumerate(shards) if store.lookup(s.row, s.start, s.stop) is not None]
        return store, seen

    store, seen = group.step("opening the partial results", open_store)
    seen_by = group.all_gather(seen, "sharing the finished shards")
    keeper: dict[int, int] = {}  # finished shard -> the lowest rank that has it
    for r, indices in enumerate(seen_by):
        for i in indices:
            keeper.setdefault(i, r)
    owner = assign_shards([s.stop - s.start for s in shards], sorted(keeper), world)
    mine = [s for i, s in enumerate(shards) if owner[i] == rank or keeper.get(i) == rank]
    total = sum(s.stop - s.start for s in mine)

    started = time.perf_counter()

    def compute():
        desc = f"eval {plan.sweep.name} (rank 0 of {world})"
        with _bar(args, total, desc, show=launch.is_main) as bar:
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
        merged = merge_shards(
            [r for part, _, _ in gathered for r in part], n_rows=len(plan.rows), n_images=n
        )
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
        write_eval(plan.result(merged, run=run), out)

    group.step("writing the result", write)
    if launch.local_rank == 0:
        _remove(partial)
    return 0


# --- eval-pairs ---------------------------------------------------------------------------


def pair_ranges(num_pairs: int, *, world_size: int, batch_size: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` pairs of each rank, cut at multiples of ``batch_size``
    so every batch is one that a single process runs too; the last ranks get empty ranges
    when there are fewer batches than ranks."""
    batches = math.ceil(num_pairs / batch_size)
    edges = [min(num_pairs, -(-batches * r // world_size) * batch_size) for r in range(world_size)]
    edges.append(num_pairs)
    return [(edges[r], edges[r + 1]) for r in range(world_size)]


def run_sharded_pairs(args: argparse.Namespace, launch: Launch) -> int:
    """``geomrobust eval-pairs`` on this rank of a ``torchrun`` launch."""
    return _run(args, launch, lambda group: _pairs_job(args, launch, group))


def _pairs_job(args: argparse.Namespace, launch: Launch, group: ProcessGroup) -> int:
    from robustness._eval_cmd import _bar, _check_out, pairs_inputs, write_pairs
    from robustness._pairs_eval import evaluate_pairs

    out: Path = args.out

    def setup():
        if launch.is_main:
            _check_out(out, args.force)
        return pairs_inputs(args, device=group.device)

    data, loaded, options = group.step("reading the checkpoint and data", setup)
    start, stop = pair_ranges(
        options["num_pairs"], world_size=launch.world_size, batch_size=options["batch_size"]
    )[launch.rank]
    started = time.perf_counter()

    def compute() -> np.ndarray:
        if start == stop:
            return np.empty(0, dtype=np.int64)
        with _bar(args, stop - start, "pairs (rank 0)", show=launch.is_main) as bar:
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
