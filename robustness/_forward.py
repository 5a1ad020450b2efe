"""How the engine calls a model: graph, mixed precision, memory format, compilation, and
passes that shrink when the device runs out of memory.

:class:`ForwardOptions` says what to use; :class:`ModelForward` calls the model that way and
records what ran; :class:`Passes` splits a batch into forward passes and halves them on an
out-of-memory error (as timm's ``validate.py`` does with its batch size).

Which options keep eager's logits bit for bit (``ForwardOptions.exact``):

* the CPU fast path (:mod:`geomrobust.robustness._fast_cpu`) and ``graph="freeze"``: exact;
* ``graph="onednn"``, ``amp``, ``channels_last`` and ``compile``: other kernels or other
  summation orders, so logits differ in the last bits (more with ``amp``) and an argmax can
  flip. They are off by default; a result records them, and a resumed run never mixes
  predictions made with other numerics.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from geomrobust.models import deform_kernels
from geomrobust.robustness._eval_errors import EvalInputError
from geomrobust.robustness._fast_cpu import ExactMaxPool, keep_freed_memory

__all__ = ["AMP_DTYPES", "GRAPHS", "ForwardOptions", "ModelForward", "Passes"]

log = logging.getLogger("geomrobust.eval")

GRAPHS = ("eager", "freeze", "onednn")
"""The ways a model can run (``ForwardOptions.graph``)."""

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""``ForwardOptions.amp`` values and the autocast dtype of each."""


@dataclass(frozen=True)
class ForwardOptions:
    """How the model is called.

    Attributes:
        graph: ``"eager"`` (the model as given); ``"freeze"`` (``torch.jit.trace`` +
            ``torch.jit.freeze`` without ``optimize_numerics``, so BatchNorm is not folded into
            convolutions: the same float operations, logits equal to eager's bit for bit);
            ``"onednn"`` (``torch.jit.optimize_for_inference``: folded and fused oneDNN
            kernels, logits differ in the last bits). Checked
            against eager on the first batch; a model that cannot be traced runs eagerly,
            with a warning.
        amp: ``None``, ``"bf16"`` or ``"fp16"``: the forward runs under ``torch.autocast``
            with that dtype (on the model's device type).
        channels_last: Give the model its image inputs in channels-last memory format (the
            model itself is not changed: convolutions follow the input's format).
        compile: Run ``torch.compile(model)``; where it fails (e.g. no C compiler for the
            CPU backend) the model runs eagerly, with a warning.
        cpu_fast_path: On CPU, compute ``max_pool2d`` without its index tensor and let
            ``malloc`` keep freed memory (:mod:`geomrobust.robustness._fast_cpu`); exact.
    """

    graph: str = "eager"
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    cpu_fast_path: bool = True

    def __post_init__(self) -> None:
        if self.graph not in GRAPHS:
            raise EvalInputError(f"graph must be one of {list(GRAPHS)}; got {self.graph!r}")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise EvalInputError(f"amp must be None or one of {list(AMP_DTYPES)}; got {self.amp!r}")
        for name in ("channels_last", "compile", "cpu_fast_path"):
            if not isinstance(getattr(self, name), bool):
                raise EvalInputError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if self.compile and self.graph != "eager":
            raise EvalInputError(
                f"compile and graph={self.graph!r} are two ways of building the model's graph; "
                "choose one"
            )

    @property
    def exact(self) -> bool:
        """Whether logits equal eager's bit for bit (see the module's docstring)."""
        return self.graph != "onednn" and not (self.amp or self.channels_last or self.compile)

    def numerics(self) -> str:
        """``"exact"``, or the options that change the logits' bits (e.g. ``"amp=bf16"``):
        predictions made with different numerics are not mixed on resume."""
        if self.exact:
            return "exact"
        parts = [f"graph={self.graph}"] if self.graph == "onednn" else []
        parts += [f"amp={self.amp}"] if self.amp else []
        parts += [name for name in ("channels_last", "compile") if getattr(self, name)]
        return ",".join(parts)


class ModelForward:
    """Calls ``model`` on prepared inputs as ``options`` say, and records what ran.

    Attributes:
        graph: The graph that ran: ``options.graph``, or ``"eager"`` after a failed trace.
        compiled: Whether ``torch.compile`` ran (``False`` after a failed compile).
        cpu_fast_path: Whether the CPU fast path is on (CPU devices only).
        build_s: Seconds spent tracing or compiling and checking against eager (included
            in an evaluation's time; each evaluation builds its own).
        deform_kernel: What runs the model's deformable blocks (``None`` without any):
            :func:`geomrobust.models.deform_kernels`.
    """

    def __init__(self, model: nn.Module, device: torch.device, options: ForwardOptions):
        self.model, self.device, self.options = model, device, options
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        if options.amp:
            dtype = AMP_DTYPES[options.amp]
        self.deform_kernel = deform_kernels(model, device, dtype or torch.get_default_dtype())
        self.cpu_fast_path = options.cpu_fast_path and device.type == "cpu"
        if self.cpu_fast_path:
            keep_freed_memory()
        self.graph = "eager"
        self.compiled = False
        self.build_s = 0.0
        self._fn: Any = None

    def record(self) -> dict[str, Any]:
        """The ``run`` fields of what ran."""
        return {
            "graph": self.graph,
            "amp": self.options.amp,
            "channels_last": self.options.channels_last,
            "compile": self.compiled,
            "cpu_fast_path": self.cpu_fast_path,
            "numerics": self.options.numerics(),
            "build_s": round(self.build_s, 3),
            **({"deform_kernel": self.deform_kernel} if self.deform_kernel else {}),
        }

    def context(self) -> contextlib.ExitStack:
        """The modes the model runs under: autocast with ``amp``, the exact CPU pooling."""
        stack = contextlib.ExitStack()
        if self.options.amp:
            dtype = AMP_DTYPES[self.options.amp]
            stack.enter_context(torch.autocast(device_type=self.device.type, dtype=dtype))
        if self.cpu_fast_path:
            stack.enter_context(ExactMaxPool())
        return stack

    def __call__(self, *inputs: Tensor) -> Any:
        if self.options.channels_last:
            inputs = tuple(
                x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
                for x in inputs
            )
        with self.context():
            if self._fn is None:
                started = time.perf_counter()
                self._fn = self._build(inputs)
                self.build_s = time.perf_counter() - started
            if self._fn is self.model:
                return self.model(*inputs)
            try:
                return self._fn(*inputs)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # a graph that does not generalise to this batch
                n = inputs[0].shape[0] if inputs else 0
                self._fall_back(f"it failed on a batch of {n} ({type(exc).__name__})")
                return self.model(*inputs)

    def _fall_back(self, why: str) -> None:
        what = "compile" if self.options.compile else f"graph={self.options.graph!r}"
        log.warning("warning: %s: %s; the model runs eagerly", what, why)
        self._fn, self.graph, self.compiled = self.model, "eager", False

    def _build(self, inputs: tuple[Tensor, ...]) -> Any:
        """The callable for ``options`` (checked against eager on ``inputs``), or the model."""
        opts = self.options
        wanted = "compile" if opts.compile else opts.graph
        if wanted == "eager" or torch.is_grad_enabled():  # an attack needs gradients
            return self.model
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # trace warnings about Python checks
                if wanted == "compile":
                    fn = torch.compile(self.model)
                else:
                    traced = torch.jit.trace(self.model, inputs, check_trace=False)
                    if wanted == "onednn":
                        fn = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
                    else:  # no folding of BatchNorm into convolutions: that changes bits
                        fn = torch.jit.freeze(traced, optimize_numerics=False)
                got, want = fn(*inputs), self.model(*inputs)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:
            reason = " ".join(str(exc).split())[:200]
            verb = "compiled" if wanted == "compile" else "traced"
            self._fall_back(f"the model cannot be {verb} ({type(exc).__name__}: {reason})")
            return self.model
        if wanted == "freeze":
            same = torch.equal(got, want)
        else:
            tol = 1e-2 if opts.amp else 1e-4
            same = torch.allclose(got.float(), want.float(), rtol=tol, atol=tol, equal_nan=True)
        if not same:
            self._fall_back("its logits differ from eager's on the first batch")
            return self.model
        self.graph = opts.graph
        self.compiled = opts.compile
        return fn


class Passes:
    """Forward passes over ranges of a batch, halved on an out-of-memory error.

    Args:
        limit: Most images per pass (``None``: the whole range), lowered for good after an
            out-of-memory error.

    Attributes:
        halvings: How many times a pass ran out of memory and was halved.
    """

    def __init__(self, limit: int | None = None):
        self.limit = limit
        self.halvings = 0

    def run(self, start: int, stop: int, fn: Callable[[int, int], None]) -> None:
        """Call ``fn(a, b)`` on consecutive ranges covering ``[start, stop)``, each at most
        :attr:`limit` long; a range that runs out of memory is retried in halves (the
        error is raised again for a single image)."""
        a = start
        while a < stop:
            b = stop if self.limit is None else min(stop, a + self.limit)
            try:
                fn(a, b)
            except torch.OutOfMemoryError:
                n = b - a
                if n <= 1:
                    raise
                self.limit, self.halvings = n // 2, self.halvings + 1
                log.warning(
                    "warning: out of memory on a forward pass of %d images; retrying with "
                    "passes of %d (results do not depend on it)",
                    n,
                    self.limit,
                )
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            a = b
