"""The options every command spells and defaults the same way, and their checks.

``--device`` (default ``auto``), ``--threads`` (default: torch's), ``--batch-size``,
``--out``, ``--force``, ``--progress/--no-progress`` (default on) and ``--seed`` (default 0)
are added here and nowhere else. Only ``--batch-size`` has a default of the command's own:
an inference batch (256) and a training batch (64, part of the training recipe) are
different settings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from geomrobust.cli._errors import UsageError

__all__ = [
    "add_batch_size",
    "add_device",
    "add_force",
    "add_forward",
    "add_out",
    "add_progress",
    "add_seed",
    "add_threads",
    "check_out",
    "floats",
    "forward_options",
    "progress_bar",
    "resolve_device",
    "set_threads",
]


def add_device(p: argparse.ArgumentParser, *, torchrun: bool = False) -> None:
    extra = "; under torchrun rank r uses cuda:LOCAL_RANK or cpu" if torchrun else ""
    p.add_argument(
        "--device",
        default="auto",
        help=f"auto (cuda if available, else cpu), cpu, cuda or cuda:N (default: auto){extra}",
    )


def add_threads(p: argparse.ArgumentParser, *, torchrun: bool = False) -> None:
    extra = ", or under torchrun the node's cores divided among its ranks" if torchrun else ""
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help=f"CPU threads (torch.set_num_threads); default: torch's{extra}",
    )


def add_batch_size(p: argparse.ArgumentParser, *, default: int, what: str = "images") -> None:
    p.add_argument(
        "--batch-size",
        type=int,
        default=default,
        metavar="N",
        help=f"{what} per batch (default: {default})",
    )


def add_forward(p: argparse.ArgumentParser) -> None:
    """How the model is called: --graph, --amp, --channels-last, --compile,
    --no-cpu-fast-path (:func:`forward_options` reads them)."""
    g = p.add_argument_group(
        "how the model runs",
        "The defaults give eager's logits bit for bit. --graph freeze does too; --graph "
        "onednn, --amp, --channels-last and --compile change the logits' last bits (an argmax "
        "can flip). The result records what ran (run.graph, run.amp, run.channels_last, "
        "run.compile, run.cpu_fast_path, run.numerics).",
    )
    g.add_argument(
        "--graph",
        choices=("eager", "freeze", "onednn"),
        default="eager",
        help="eager (default); freeze (torch.jit trace + freeze: logits equal to eager's bit "
        "for bit); onednn (also fused oneDNN kernels: faster on CPU, not bit-equal). A model "
        "that cannot be traced runs eagerly with a warning",
    )
    g.add_argument(
        "--amp",
        choices=("bf16", "fp16"),
        help="mixed precision: the forward runs under torch.autocast with this dtype (GPUs; "
        "bf16 also on recent CPUs)",
    )
    g.add_argument(
        "--channels-last",
        action="store_true",
        help="give the model channels-last images (faster convolutions on GPUs)",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (minutes of compiling on a large model; without a C "
        "compiler or on failure the model runs eagerly, with a warning)",
    )
    g.add_argument(
        "--no-cpu-fast-path",
        dest="cpu_fast_path",
        action="store_false",
        help="on CPU, run max_pool2d with its index tensor and glibc's malloc defaults (the "
        "fast path is exact; this is for comparison)",
    )


def forward_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~geomrobust.robustness.EvalOptions` fields of :func:`add_forward`'s
    flags."""
    return {
        "graph": args.graph,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "cpu_fast_path": args.cpu_fast_path,
    }


def add_out(p: argparse.ArgumentParser, *, metavar: str, help: str, required: bool = True) -> None:
    p.add_argument("--out", type=Path, required=required, metavar=metavar, help=help)


def add_force(p: argparse.ArgumentParser, *, what: str = "an existing --out") -> None:
    p.add_argument("--force", action="store_true", help=f"overwrite {what}")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show progress bars on stderr (default: on)",
    )


def add_seed(p: argparse.ArgumentParser, *, what: str) -> None:
    p.add_argument("--seed", type=int, default=0, help=f"seed of {what} (default: 0)")


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` if available else ``cpu``; a CUDA device must exist."""
    import torch

    text = (name or "auto").strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {name}: no CUDA device is available here; use --device cpu or auto"
            )
        return text
    raise UsageError(f"--device must be auto, cpu, cuda or cuda:N; got {name!r}")


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; ``None`` leaves torch's default."""
    import torch

    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be >= 1; got {threads}")
    torch.set_num_threads(threads)


def floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    """``'a,b,c'`` as floats; ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"{flag} must be a number or comma-separated numbers; got {text!r}"
        ) from None


def check_out(out: Path, force: bool, *, example: str = "result.json") -> None:
    """``--out`` must be a file name, new unless ``--force``, in a folder we can write."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / example}")
    if out.exists() and not force:
        raise UsageError(
            f"--out {out} already exists; pass --force to overwrite or choose another path"
        )
    check_writable_folder(out.parent, flag="--out")


def check_writable_folder(folder: Path, *, flag: str) -> None:
    """Fail before any work when ``folder`` (or, if it does not exist yet, the nearest folder
    above it, where it will be created) cannot be written: a probe file is created there."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag}: {existing} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".geomrobust-probe-"):
            pass
    except PermissionError:
        raise UsageError(
            f"{flag}: cannot write in {existing}: permission denied; choose a folder you "
            "can write to"
        ) from None
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write in {existing}: {exc.strerror}") from None


def progress_bar(show: bool, total: int, desc: str, *, unit: str = "img"):
    """A tqdm bar on stderr that leaves no line behind; hidden unless ``show``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not show, leave=False)
