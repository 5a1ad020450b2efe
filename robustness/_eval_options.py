"""Options of an evaluation: normalisation, interpolation, fill and batch size."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from geomrobust.robustness._eval_errors import EvalInputError
from geomrobust.robustness._forward import ForwardOptions
from geomrobust.robustness._results import TransformRecord
from geomrobust.transforms import Interpolation
from geomrobust.transforms._options import parse_choice
from geomrobust.transforms.datasets import Preprocess

__all__ = ["EvalOptions"]

FillLike = float | Sequence[float] | str | None


@dataclass(frozen=True)
class EvalOptions:
    """How images are prepared for the model.

    Attributes:
        mean, std: Per-channel normalisation ``(x - mean) / std`` applied after warping
            (one value per channel, or one for all); ``None`` gives the model [0, 1] images.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        fill: ``None`` pads with zeros; a number in [0, 1] or one per channel pads with that
            constant
            (image space, [0, 1]); ``"mean"`` pads with ``mean``, which is what warping
            after normalisation with zero padding amounts to.
        batch_size: Images per forward pass, >= 1. Results do not depend on it.
        preprocess: Resize and centre crop before the sweep's transform (``None``: the
            images as stored); recorded in the result.
        workers: DataLoader processes decoding a streamed dataset (an image folder); 0
            decodes in this process. Results do not depend on it.
        graph, amp, channels_last, compile, cpu_fast_path: How the model is called
            (:class:`~geomrobust.robustness._forward.ForwardOptions`): by default eagerly,
            with the exact CPU fast path. ``graph="freeze"`` is exact too;
            ``graph="onednn"``, ``amp``, ``channels_last`` and ``compile`` change the logits'
            last bits. ``benchmarks/eval.py`` times them. The result records what ran
            (``run.graph``, ``run.amp``, ..., and ``run.numerics``).
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: Interpolation = Interpolation.BILINEAR
    fill: tuple[float, ...] | str | None = None
    batch_size: int = 256
    preprocess: Preprocess | None = None
    workers: int = 0
    graph: str = "eager"
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    cpu_fast_path: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if (self.mean is None) != (self.std is None):
            raise EvalInputError(
                "mean and std must be given together (or neither, for [0, 1] inputs); "
                f"got mean={self.mean}, std={self.std}"
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            values = _floats(value, name=name)
            if name == "std" and min(values) <= 0:
                raise EvalInputError(f"std must be > 0 per channel; got {list(values)}")
            set_(self, name, values)
        try:
            interp = parse_choice(Interpolation, self.interpolation, name="interpolation")
        except (TypeError, ValueError) as exc:
            raise EvalInputError(str(exc)) from None
        set_(self, "interpolation", interp)
        fill = self.fill
        if isinstance(fill, str):
            if fill.strip().lower() != "mean":
                raise EvalInputError(
                    f"fill must be None, a number, one number per channel or 'mean'; got {fill!r}"
                )
            if self.mean is None:
                raise EvalInputError(
                    "fill='mean' pads with the model's normalisation mean, but there is none "
                    "(the checkpoint has no mean/std and none was given); pass mean= and std= "
                    "or a numeric fill"
                )
            set_(self, "fill", "mean")
        elif fill is not None:
            values = _floats(fill, name="fill")
            if any(not 0.0 <= v <= 1.0 for v in values):
                raise EvalInputError(
                    f"fill is a constant in image space, where pixels lie in [0, 1]; got "
                    f"{list(values)}. Give values in [0, 1] (or 'mean')"
                )
            set_(self, "fill", values)
        self.forward_options()  # checks graph, amp, channels_last, compile, cpu_fast_path
        bs = self.batch_size
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise EvalInputError(f"batch_size must be an int >= 1; got {bs!r}")
        if self.preprocess is None:
            set_(self, "preprocess", Preprocess())
        elif not isinstance(self.preprocess, Preprocess):
            raise EvalInputError(
                f"preprocess must be a Preprocess; got {type(self.preprocess).__name__}"
            )
        w = self.workers
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise EvalInputError(f"workers must be an int >= 0; got {w!r}")

    def forward_options(self) -> ForwardOptions:
        """How the model is called."""
        return ForwardOptions(
            graph=self.graph,
            amp=self.amp,
            channels_last=self.channels_last,
            compile=self.compile,
            cpu_fast_path=self.cpu_fast_path,
        )

    def fill_values(self) -> tuple[float, ...] | None:
        """The constant fill in image space, or ``None`` for zeros."""
        return self.mean if self.fill == "mean" else self.fill  # type: ignore[return-value]

    def transform_record(self) -> TransformRecord:
        fill = self.fill_values()
        spec = None
        if self.fill is not None:
            spec = "mean" if self.fill == "mean" else ",".join(f"{v:g}" for v in fill or ())
        return TransformRecord(
            interpolation=self.interpolation.value,
            padding="zeros" if fill is None else "constant",
            fill=fill,
            fill_spec=spec,
        )


def _floats(value: Any, *, name: str) -> tuple[float, ...]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, Tensor):
        value = value.flatten().tolist()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise EvalInputError(f"{name} must be a number or a sequence of numbers; got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise EvalInputError(f"{name} must hold finite numbers; got {list(value)}")
        out.append(float(v))
    if not out:
        raise EvalInputError(f"{name} must not be empty")
    return tuple(out)
