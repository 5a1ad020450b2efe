"""The compiled CPU kernel of the native deformable convolution: built on first use, cached.

``csrc/deform_conv2d_cpu.cpp`` registers two operators, ``torch.ops.geomrobust.deform_columns``
and ``deform_columns_backward`` (see the file's header). It is compiled with the system's C++
compiler (``$CXX``, else ``c++``) against the installed torch's headers and libraries, with
OpenMP and ``-march=native``, once per source, torch build, compiler and CPU (about 6 s on two
cores), into ``$GEOMROBUST_CACHE_DIR`` (default ``$XDG_CACHE_HOME/geomrobust``, else
``~/.cache/geomrobust``). Builds write a temporary file and rename it, so concurrent processes
(``torchrun`` ranks) never load a half-written library.

Where it cannot be built (no compiler, no OpenMP, a read-only cache), the plain-PyTorch
implementation runs instead, after one warning that says why; ``GEOMROBUST_DEFORM_KERNEL=python``
skips the build and the warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import threading
import warnings
from pathlib import Path

import torch

__all__ = ["ENV_CACHE", "ENV_KERNEL", "cache_dir", "compiled_kernel_available", "kernel_error"]

log = logging.getLogger(__name__)

#: ``python``: never build or use the compiled kernel.
ENV_KERNEL = "GEOMROBUST_DEFORM_KERNEL"
#: Where built kernels are kept.
ENV_CACHE = "GEOMROBUST_CACHE_DIR"

SOURCE = Path(__file__).with_name("csrc") / "deform_conv2d_cpu.cpp"
_BUILD_TIMEOUT_S = 600
_lock = threading.Lock()
_state: dict[str, object] = {}


def cache_dir() -> Path:
    """``$GEOMROBUST_CACHE_DIR``, else ``$XDG_CACHE_HOME/geomrobust``, else
    ``~/.cache/geomrobust``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "geomrobust"


def _registered() -> bool:
    try:
        torch.ops.geomrobust.deform_columns  # noqa: B018 (an attribute lookup that may raise)
    except (AttributeError, RuntimeError):
        return False
    return True


def _cpu_id() -> str:
    """The CPU's model and features: ``-march=native`` code runs only where they match."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() + platform.processor()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return platform.machine() + "\n".join(sorted(set(keep)))


def _compiler() -> list[str]:
    """``$CXX`` (which may carry a launcher or flags, e.g. ``ccache g++``), else ``c++``."""
    return shlex.split(os.environ.get("CXX") or "") or ["c++"]


def _command(source: Path, target: Path) -> list[str]:
    torch_dir = Path(torch.__file__).resolve().parent
    lib = torch_dir / "lib"
    return [
        *_compiler(),
        "-O3",
        "-march=native",
        "-std=c++20",
        "-fPIC",
        "-shared",
        "-fopenmp",
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        "-I",
        str(torch_dir / "include"),
        str(source),
        "-o",
        str(target),
        "-L",
        str(lib),
        "-lc10",
        "-ltorch_cpu",
        f"-Wl,-rpath,{lib}",
    ]


def _build() -> Path:
    """The kernel's shared library, compiled now unless already in the cache."""
    command, compiler = _command(SOURCE, Path("OUT")), _compiler()
    if shutil.which(compiler[0]) is None:
        raise OSError(f"no C++ compiler {compiler[0]!r} on PATH (set CXX to one)")
    version = subprocess.run(
        [*compiler, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    key = hashlib.sha256(
        "\0".join(
            [SOURCE.read_text(), " ".join(command), torch.__version__, version, _cpu_id()]
        ).encode()
    ).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"deform_conv2d_cpu-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    log.info("building the deformable-convolution CPU kernel into %s (once)", target)
    try:
        done = subprocess.run(
            _command(SOURCE, partial),
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            first = next((line for line in lines if "error" in line), lines[0] if lines else "")
            raise OSError(f"{compiler[0]} exited with {done.returncode}: {first.strip()}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def compiled_kernel_available() -> bool:
    """Whether ``torch.ops.geomrobust.deform_columns*`` can run: builds and loads the kernel on
    the first call (thread-safe); ``False`` after a warning if that fails, and without one if
    ``GEOMROBUST_DEFORM_KERNEL=python``."""
    if "ok" in _state:
        return bool(_state["ok"])
    with _lock:
        if "ok" in _state:
            return bool(_state["ok"])
        if os.environ.get(ENV_KERNEL, "").strip().lower() == "python":
            _state.update(ok=False, error=f"{ENV_KERNEL}=python")
            return False
        try:
            if not _registered():
                torch.ops.load_library(str(_build()))
            ok, error = _registered(), None
            if not ok:
                error = "the built library registered no geomrobust operators"
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            ok, error = False, str(exc) or type(exc).__name__
        _state.update(ok=ok, error=error)
    if not ok:
        warnings.warn(
            f"the compiled deformable-convolution kernel is unavailable ({error}); "
            "the plain-PyTorch one runs instead (same results to float rounding; a deformable "
            "model trains about 1.2-1.6x slower). Install a C++ compiler (g++) to build it, or "
            f"set {ENV_KERNEL}=python to skip this.",
            RuntimeWarning,
            stacklevel=4,  # the caller of auto_kernel's caller (the engine, a block)
        )
    return ok


def kernel_error() -> str | None:
    """Why the compiled kernel is unavailable (``None`` when it loaded or was not tried)."""
    return _state.get("error")  # type: ignore[return-value]
