"""Scale-out: the launch, the process group and the shard assignment of a sharded run.

``torchrun --nproc-per-node N -m geomrobust eval ...`` starts N copies of the CLI; the
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

This module is the library side: what a rank is (:class:`Launch`), its device and threads,
the process group with its agreeing :meth:`ProcessGroup.step`, and which rank computes what
(:func:`distributed_shards`, :func:`assign_shards`, :func:`pair_ranges`). The rank jobs of
the commands live in the CLI (``geomrobust.cli._ranks``).
"""

from __future__ import annotations

import logging
import math
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from geomrobust.robustness._eval_errors import EvalInputError

__all__ = [
    "ENV_TIMEOUT",
    "Launch",
    "LostContact",
    "ProcessGroup",
    "RankInputError",
    "RanksFailed",
    "assign_shards",
    "distributed_shards",
    "launch_from_env",
    "pair_ranges",
    "rank_device",
    "shard_groups",
    "threads_per_rank",
    "timeout_s",
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
        EvalInputError: the variables are not whole numbers or contradict each other.
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
            raise EvalInputError(
                f"{name}={text!r} in the environment: torchrun sets WORLD_SIZE, RANK, "
                "LOCAL_RANK and LOCAL_WORLD_SIZE to whole numbers; launch with torchrun or "
                "unset WORLD_SIZE to run in one process"
            ) from None
    world, rank = values["WORLD_SIZE"], values["RANK"]
    local, local_world = values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"]
    if world < 1 or not 0 <= rank < world or not 0 <= local < local_world <= world:
        raise EvalInputError(
            f"inconsistent launch: WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local}, "
            f"LOCAL_WORLD_SIZE={local_world}; expected 0 <= RANK < WORLD_SIZE and "
            "0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE (launch with torchrun)"
        )
    if world == 1:
        return None
    return Launch(rank, world, local, local_world)


class RankInputError(EvalInputError):
    """Bad input that only this rank sees (its GPU), reported by the rank itself."""


def rank_device(requested: str, launch: Launch) -> str:
    """This rank's device: ``cuda:LOCAL_RANK`` for ``auto`` (with GPUs) or ``cuda``, else cpu.

    Raises:
        EvalInputError: ``cuda:N`` (each rank picks its own GPU) or no CUDA.
        RankInputError: fewer GPUs on this node than ranks.
    """
    import torch

    text = (requested or "auto").strip().lower()
    if text not in ("auto", "cpu", "cuda") and not text.startswith("cuda:"):
        raise EvalInputError(f"device must be auto, cpu, cuda or cuda:N; got {requested!r}")
    if text.startswith("cuda:"):
        raise EvalInputError(
            f"device {requested!r}: under torchrun each rank uses the GPU cuda:LOCAL_RANK; "
            "use device 'cuda' (or 'auto'), and choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise EvalInputError(
            f"device {requested!r}: no CUDA device is available here; use 'cpu' or 'auto'"
        )
    count = torch.cuda.device_count()
    if launch.local_rank >= count:
        raise RankInputError(
            f"rank {launch.rank} has LOCAL_RANK={launch.local_rank} but its node has {count} "
            f"CUDA device(s); start at most {count} process(es) per node "
            f"(--nproc-per-node {count}) or run on the CPU"
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

    Args:
        launch: This rank's place in the launch.
        device: This rank's device.
        input_errors: Exception types that :meth:`step` reports as bad input (exit status
            2) rather than as a failure; default: :class:`EvalInputError`.
    """

    def __init__(
        self,
        launch: Launch,
        device: str,
        *,
        input_errors: tuple[type[BaseException], ...] = (EvalInputError,),
    ):
        self.launch = launch
        self.device = device
        self.backend = "nccl" if device.startswith("cuda") else "gloo"
        self.input_errors = input_errors

    def __enter__(self) -> ProcessGroup:
        import torch
        import torch.distributed as dist

        timeout = timeout_s()
        kwargs: dict[str, Any] = {}
        if self.backend == "nccl":
            torch.cuda.set_device(torch.device(self.device))
            kwargs["device_id"] = torch.device(self.device)
        try:
            dist.init_process_group(self.backend, timeout=timedelta(seconds=timeout), **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise RankInputError(
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
            raise LostContact(
                f"rank {self.launch.rank}: lost contact with the other ranks while {what} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); a "
                f"rank may have died or be stuck (the timeout is {timeout_s():g} s, "
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
        except self.input_errors as exc:
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


class LostContact(RuntimeError):
    """A collective failed: another rank died, hung, or cannot be reached."""


def timeout_s() -> float:
    """The collectives' timeout in seconds: ``GEOMROBUST_DIST_TIMEOUT_S``, default 1800.

    Raises:
        EvalInputError: the variable is not a number of seconds > 0.
    """
    text = os.environ.get(ENV_TIMEOUT)
    if text is None:
        return _DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise EvalInputError(f"{ENV_TIMEOUT} must be a number of seconds > 0; got {text!r}")
    return value


# --- eval ---------------------------------------------------------------------------------


def distributed_shards(
    n_rows: int, n_images: int, *, world_size: int, batch_size: int, streamed: bool = False
):
    """The shards of a distributed eval.

    In memory: whole rows when there are at least ``4 × world_size`` rows, else each row
    cut into blocks of a multiple of ``batch_size`` images, so that every batch is one that
    a single process runs too. Streamed (an image folder): image blocks of a multiple of
    ``batch_size``, about ``4 × world_size`` of them, each with all rows (image-major), so
    every image is decoded once, by one rank (:func:`shard_groups`).
    """
    from geomrobust.robustness._engine import plan_shards  # the engine imports torch

    if streamed:
        blocks = _SHARDS_PER_RANK * world_size
        per = math.ceil(math.ceil(n_images / blocks) / batch_size) * batch_size
        return plan_shards(
            n_rows, n_images, images_per_shard=max(1, min(per, n_images)), image_major=True
        )
    if n_rows >= _SHARDS_PER_RANK * world_size:
        per = n_images
    else:
        blocks = math.ceil(_SHARDS_PER_RANK * world_size / n_rows)
        per = math.ceil(math.ceil(n_images / blocks) / batch_size) * batch_size
    return plan_shards(n_rows, n_images, images_per_shard=max(1, min(per, n_images)))


def shard_groups(shards: Sequence[Any], *, streamed: bool) -> list[int]:
    """The group of each shard, for :func:`assign_shards`: streamed shards of one image
    range form one group (one rank decodes it); in memory every shard is its own."""
    if not streamed:
        return list(range(len(shards)))
    ids: dict[tuple[int, int], int] = {}
    return [ids.setdefault((s.start, s.stop), len(ids)) for s in shards]


def assign_shards(
    sizes: Sequence[int],
    done: Sequence[int],
    world_size: int,
    *,
    groups: Sequence[int] | None = None,
) -> list[int]:
    """The rank that computes each shard: groups of shards not ``done`` go, in order, to
    the rank with the fewest images so far (the lowest on ties); ``done`` shards are
    assigned ``-1``. ``groups`` (default: one group per shard) keeps shards together."""
    load = [0] * world_size
    owner = [-1] * len(sizes)
    finished = set(done)
    groups = list(range(len(sizes))) if groups is None else list(groups)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        if i not in finished:
            members.setdefault(g, []).append(i)
    for shard_ids in members.values():
        rank = min(range(world_size), key=lambda r: (load[r], r))
        for i in shard_ids:
            owner[i] = rank
            load[rank] += sizes[i]
    return owner


# --- eval-pairs ---------------------------------------------------------------------------


def pair_ranges(num_pairs: int, *, world_size: int, batch_size: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` pairs of each rank, cut at multiples of ``batch_size``
    so every batch is one that a single process runs too; the last ranks get empty ranges
    when there are fewer batches than ranks."""
    batches = math.ceil(num_pairs / batch_size)
    edges = [min(num_pairs, -(-batches * r // world_size) * batch_size) for r in range(world_size)]
    edges.append(num_pairs)
    return [(edges[r], edges[r + 1]) for r in range(world_size)]
