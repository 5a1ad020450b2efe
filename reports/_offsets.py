"""Where a deformable layer samples the input: the DCN sampling-location figure, across scales.

For one output position of a deformable layer (:class:`geomrobust.models.DeformConv2dBlock`) this
module computes the input-pixel coordinates of its sampling points, at several scales of the
same image; :mod:`geomrobust.reports._offsets_draw` draws them on the image, as the DCN papers do
(Dai et al. 2017, fig. 5; Zhu et al. 2019, fig. 1), so the reader sees whether the sampling grid
follows the object.

Mapping to input pixels (:func:`sampling_points`):

* A forward pass records the spatial modules in execution order (``nn.Conv2d``,
  :class:`~geomrobust.models.DeformConv2dBlock`, ``nn.MaxPool2d``, ``nn.AvgPool2d``; the predictors
  inside a deformable block are not separate steps). The path from the input to the chosen
  layer is the chain of those whose input size equals the current size, so a ResNet's
  stride-2 shortcut convolution (which reads the block's input, not the chain's) is skipped.
* The chosen layer's output position ``(y, x)`` samples its input at
  ``(y·sh - ph + i·dh + dy, x·sw - pw + j·dw + dx)`` for each tap ``(i, j)`` (and each offset
  group), with the learned offset ``(dy, dx)`` at that position (the block's documented
  layout).
* Going back through the chain, a deformable layer is expanded the same way (each point
  becomes its ``G·K`` taps, so two stacked 3×3 layers give up to 81 points, as in the DCN
  figure), with its offsets and modulation interpolated bilinearly at the (fractional)
  point, border-clamped outside its output grid. A regular convolution or pooling maps a
  point to its window's centre, ``s·y - p + d·(k - 1)/2``. With ``propagate=False`` earlier
  deformable layers are mapped like regular ones (only the chosen layer's ``G·K`` taps).
* Coordinates follow ``docs/CONVENTION.md``: pixel centres at integers, ``(row, col)``.
  A point's modulation is the product of the DCNv2 masks along its path (``None`` for
  DCNv1); a point is *inside* when every deformable sample on its path lies where bilinear
  sampling reads the feature map (``-1 < row < H``, ``-1 < col < W``), else it reads only
  zero padding.

Across scales (:func:`track_position`): the image is zoomed about its centre ``c`` with
:func:`geomrobust.transforms.scale`; the output position chosen at scale 1 is followed by mapping
its window centre ``q`` (in input pixels) to ``c + s·(q - c)`` and back to the nearest position
of the layer's output grid (clamped to the grid; the panel says so when that happens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from geomrobust.models import DeformConv2dBlock, normalise

__all__ = [
    "SamplingPoints",
    "Step",
    "deformable_layers",
    "sampling_points",
    "trace_chain",
    "track_position",
]

_SPATIAL = (nn.Conv2d, DeformConv2dBlock, nn.MaxPool2d, nn.AvgPool2d)


@dataclass(frozen=True, eq=False)
class Step:
    """One spatial module on the path from the input to a layer.

    Attributes:
        name: Module name in the model (``"conv4"``).
        module: The module.
        in_size, out_size: ``(H, W)`` of its input and output.
        kernel, stride, padding, dilation: Its geometry, ``(y, x)`` pairs; ``padding`` is
            the top/left padding.
        input: Its input ``(1, C, H, W)`` (kept for deformable layers only, else ``None``).
    """

    name: str
    module: nn.Module
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    input: Tensor | None

    @property
    def deformable(self) -> bool:
        return isinstance(self.module, DeformConv2dBlock)

    def centre(self, yx: np.ndarray) -> np.ndarray:
        """Output-grid points ``(N, 2)`` → the centres of their windows on the input grid."""
        k, s, p, d = (np.asarray(v, dtype=np.float64) for v in self._geometry())
        return s * yx - p + d * (k - 1) / 2

    def _geometry(self):
        return self.kernel, self.stride, self.padding, self.dilation


@dataclass(frozen=True, eq=False)
class SamplingPoints:
    """The sampling points of one output position, in input-image pixels.

    Attributes:
        layer: The deformable layer's name.
        position: ``(y, x)`` on the layer's output grid.
        grid_size: ``(H_out, W_out)`` of the layer's output.
        points_yx: ``(N, 2)`` float64 ``(row, col)`` input pixel coordinates.
        regular_yx: ``(N, 2)``: the same points with every offset set to zero (the regular
            convolution's grid).
        mask: ``(N,)`` product of the modulations along each point's path, or ``None``
            (DCNv1 layers only).
        inside: ``(N,)`` bool: every deformable sample on the point's path reads the map.
        centre_yx: The output position's window centre in input pixels.
        stride_px: ``(S_y, S_x)``: input pixels between neighbouring output positions.
        expanded: Names of the layers whose taps were expanded, chosen layer first.
        modulated: Those of ``expanded`` with a DCNv2 modulation; ``mask`` lies in
            ``(0, 2 ** len(modulated))`` and is 1 where every modulation is neutral.
        logits: ``(num_classes,)`` model output for the image, or ``None``.
    """

    layer: str
    position: tuple[int, int]
    grid_size: tuple[int, int]
    points_yx: np.ndarray
    regular_yx: np.ndarray
    mask: np.ndarray | None
    inside: np.ndarray
    centre_yx: tuple[float, float]
    stride_px: tuple[float, float]
    expanded: tuple[str, ...]
    modulated: tuple[str, ...]
    logits: np.ndarray | None

    @property
    def spread_px(self) -> float:
        """RMS distance of the inside points from their mean (0 with none)."""
        return _spread(self.points_yx[self.inside])

    @property
    def regular_spread_px(self) -> float:
        """:attr:`spread_px` of the regular grid (the same points, zero offsets)."""
        return _spread(self.regular_yx)


def _spread(yx: np.ndarray) -> float:
    if len(yx) == 0:
        return 0.0
    return float(np.sqrt(((yx - yx.mean(axis=0)) ** 2).sum(axis=1).mean()))


def deformable_layers(model: nn.Module) -> list[str]:
    """Names of the model's :class:`~geomrobust.models.DeformConv2dBlock` modules, in definition
    order."""
    return [n for n, m in model.named_modules() if isinstance(m, DeformConv2dBlock)]


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, tuple | list) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ValueError(f"cannot map {name}: unsupported geometry {value!r}")


def _geometry(name: str, m: nn.Module):
    kernel = _pair(m.kernel_size, name)
    stride = _pair(m.stride if m.stride is not None else m.kernel_size, name)
    dilation = _pair(getattr(m, "dilation", 1), name)
    padding = m.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
    return kernel, stride, _pair(padding, name), dilation


def trace_chain(model: nn.Module, x: Tensor, layer: str) -> tuple[list[Step], Tensor]:
    """Run ``model(x)`` and return the spatial path from the input to ``layer`` and the output.

    Args:
        model: The model (its mode is left as it is; call ``eval()`` first).
        x: ``(1, C, H, W)``, already normalised as the model expects.
        layer: Name of a module of ``model`` (its first call is used).

    Returns:
        ``(steps, output)``: the chain, ending with ``layer`` (see the module docstring for
        how branches are skipped), and the model's output.

    Raises:
        ValueError: ``layer`` never runs, or its input cannot be reached from the input
            through convolutions and pooling (e.g. an upsampling or functional pooling).
    """
    inner = {
        id(sub)
        for m in model.modules()
        if isinstance(m, DeformConv2dBlock)
        for sub in m.modules()
        if sub is not m
    }
    calls: list[Step] = []

    def hook(name: str):
        def record(module: nn.Module, args, output) -> None:
            inp = args[0]
            geometry = _geometry(name, module)
            keep = inp.detach() if isinstance(module, DeformConv2dBlock) else None
            calls.append(
                Step(name, module, tuple(inp.shape[-2:]), tuple(output.shape[-2:]), *geometry, keep)
            )

        return record

    handles = [
        m.register_forward_hook(hook(n))
        for n, m in model.named_modules()
        if isinstance(m, _SPATIAL) and id(m) not in inner
    ]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    size = tuple(x.shape[-2:])
    chain: list[Step] = []
    for step in calls:
        if step.name == layer:
            if step.in_size != size:
                raise ValueError(
                    f"cannot map layer {layer!r} to input pixels: its input is {step.in_size} "
                    f"but the convolutions and pooling before it lead to {size} (an operation "
                    "that is not an nn.Conv2d / nn.MaxPool2d / nn.AvgPool2d module changes it)"
                )
            return [*chain, step], out
        if step.in_size == size:
            chain.append(step)
            size = step.out_size
    raise ValueError(f"layer {layer!r} did not run in the model's forward pass")


def _interp(field: Tensor, yx: np.ndarray) -> np.ndarray:
    """Bilinear values of ``field`` ``(C, H, W)`` at ``yx`` ``(N, 2)``, border-clamped → (N, C)."""
    f = field.detach().double().cpu().numpy()
    h, w = f.shape[-2:]
    y = np.clip(yx[:, 0], 0, h - 1)
    x = np.clip(yx[:, 1], 0, w - 1)
    y0 = np.minimum(np.floor(y).astype(int), max(h - 2, 0))
    x0 = np.minimum(np.floor(x).astype(int), max(w - 2, 0))
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = y - y0, x - x0
    v = (
        f[:, y0, x0] * (1 - wy) * (1 - wx)
        + f[:, y0, x1] * (1 - wy) * wx
        + f[:, y1, x0] * wy * (1 - wx)
        + f[:, y1, x1] * wy * wx
    )
    return v.T


def _expand_regular(step: Step, yx: np.ndarray) -> np.ndarray:
    """Points ``(N, 2)`` on a step's output grid → its ``N·G·K`` regular taps on the input
    grid, point by point, tap ``k = i·kw + j`` within each offset group."""
    kh, kw = step.kernel
    taps = np.array([(i, j) for i in range(kh) for j in range(kw)], dtype=np.float64)
    groups = getattr(step.module, "offset_groups", 1)
    taps = np.tile(taps * np.asarray(step.dilation), (groups, 1))  # (G·K, 2)
    base = np.asarray(step.stride) * yx - np.asarray(step.padding)
    return (base[:, None, :] + taps[None]).reshape(-1, 2)


def _expand(step: Step, yx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Points ``(N, 2)`` on a deformable step's output → their ``N·G·K`` samples on its
    input (regular tap + learned offset) and modulation (``None`` for DCNv1)."""
    block: DeformConv2dBlock = step.module  # type: ignore[assignment]
    with torch.no_grad():
        offset, mask = block.offsets_and_mask(step.input)
    delta = _interp(offset[0], yx).reshape(-1, 2)  # channel 2k: dy, 2k + 1: dx
    m = None if mask is None else _interp(mask[0], yx).reshape(-1)
    return _expand_regular(step, yx) + delta, m


def _inside(yx: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return (yx[:, 0] > -1) & (yx[:, 0] < h) & (yx[:, 1] > -1) & (yx[:, 1] < w)


def sampling_points(
    model: nn.Module,
    image: Tensor,
    *,
    layer: str | None = None,
    position: tuple[int, int] | str = "centre",
    propagate: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> SamplingPoints:
    """The sampling points of one output position of a deformable layer, in input pixels.

    Args:
        model: A model with :class:`~geomrobust.models.DeformConv2dBlock` layers, in eval mode,
            on the device it should run on (it is neither moved nor switched to eval).
        image: ``(C, H, W)`` or ``(1, C, H, W)`` float image in [0, 1] (not normalised).
        layer: Name of a deformable layer; default: the last one to run.
        position: ``(y, x)`` on the layer's output grid; ``"centre"`` (``((H_out - 1) // 2,
            (W_out - 1) // 2)``) or ``"max"`` (largest L2 norm across channels of the
            layer's output).
        propagate: Expand earlier deformable layers too (up to ``(G·K)^L`` points), else map
            them through their window centres.
        mean, std: Normalisation the model expects (both or neither).

    Returns:
        A :class:`SamplingPoints`; see the module docstring for the mapping.

    Raises:
        ValueError: no deformable layers, an unknown ``layer``, a position off the grid, a
            layer that cannot be mapped to the input, a model in training mode, or only one
            of ``mean``/``std``.
    """
    names = deformable_layers(model)
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval() first)")
    if (mean is None) != (std is None):
        raise ValueError("mean and std must be given together (or neither)")
    if not names:
        raise ValueError(f"{type(model).__name__} has no deformable layers (DeformConv2dBlock)")
    if layer is not None and layer not in names:
        raise ValueError(f"layer must be one of the deformable layers {names}; got {layer!r}")
    x = image.unsqueeze(0) if image.ndim == 3 else image
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"image must be (C, H, W) or (1, C, H, W); got {tuple(image.shape)}")
    dev = next(model.parameters()).device
    x = x.to(dev)
    if mean is not None and std is not None:
        x = normalise(x, mean, std)
    if layer is None:
        layer = _last_deformable(model, x)
    chain, out = trace_chain(model, x, layer)
    last = chain[-1]
    pos = _resolve_position(position, last)
    yx = np.asarray([pos], dtype=np.float64)
    reg = yx.copy()
    mask: np.ndarray | None = None
    inside = np.ones(1, dtype=bool)
    expanded, modulated = [], []
    centre = np.asarray([pos, (pos[0] + 1, pos[1] + 1)], dtype=np.float64)
    for k, step in enumerate(reversed(chain)):
        centre = step.centre(centre)
        if step.deformable and (k == 0 or propagate):
            reps = step.kernel[0] * step.kernel[1] * step.module.offset_groups
            yx, m = _expand(step, yx)
            reg = _expand_regular(step, reg)
            inside = np.repeat(inside, reps) & _inside(yx, step.in_size)
            if m is not None:
                mask = m if mask is None else np.repeat(mask, reps) * m
            elif mask is not None:
                mask = np.repeat(mask, reps)
            expanded.append(step.name)
            if m is not None:
                modulated.append(step.name)
        else:
            yx, reg = step.centre(yx), step.centre(reg)
    logits = out[0].detach().double().cpu().numpy() if out.ndim == 2 else None
    return SamplingPoints(
        layer=layer,
        position=pos,
        grid_size=last.out_size,
        points_yx=yx,
        regular_yx=reg,
        mask=mask,
        inside=inside,
        centre_yx=(float(centre[0, 0]), float(centre[0, 1])),
        stride_px=(float(centre[1, 0] - centre[0, 0]), float(centre[1, 1] - centre[0, 1])),
        expanded=tuple(expanded),
        modulated=tuple(modulated),
        logits=logits,
    )


def _last_deformable(model: nn.Module, x: Tensor) -> str:
    order: list[str] = []
    handles = [
        m.register_forward_pre_hook(lambda *_, n=n: order.append(n))
        for n, m in model.named_modules()
        if isinstance(m, DeformConv2dBlock)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ValueError("no deformable layer ran in the model's forward pass")
    return order[-1]


def _resolve_position(position: tuple[int, int] | str, step: Step) -> tuple[int, int]:
    h, w = step.out_size
    if position in ("centre", "center"):
        return ((h - 1) // 2, (w - 1) // 2)
    if position == "max":
        with torch.no_grad():
            act = step.module(step.input)[0].norm(dim=0)
        i = int(act.flatten().argmax())
        return (i // w, i % w)
    if isinstance(position, str):
        raise ValueError(f"position must be 'centre', 'max' or (y, x); got {position!r}")
    y, x = (int(v) for v in position)
    if not (0 <= y < h and 0 <= x < w):
        raise ValueError(
            f"position {(y, x)} is off layer {step.name!r}'s output grid {h}x{w}; "
            f"use 0 <= y < {h}, 0 <= x < {w}"
        )
    return (y, x)


def track_position(
    points: SamplingPoints, scale: float, image_size: tuple[int, int]
) -> tuple[tuple[int, int], bool]:
    """The output position that sees, at ``scale``, what ``points.position`` sees at scale 1.

    Its window centre ``q`` (input pixels) moves to ``c + scale·(q - c)`` with
    ``c = ((H - 1)/2, (W - 1)/2)``, the image's centre; the layer's centre map
    ``q = S·p + O`` (``S`` = :attr:`SamplingPoints.stride_px`) is inverted and rounded to the
    nearest grid position (halves up), clamped to the grid.

    Returns:
        ``((y, x), clamped)``.
    """
    h, w = image_size
    c = np.array([(h - 1) / 2, (w - 1) / 2])
    q = np.asarray(points.centre_yx)
    s = np.asarray(points.stride_px)
    o = q - s * np.asarray(points.position, dtype=np.float64)
    pos = np.floor((c + scale * (q - c) - o) / s + 0.5).astype(int)
    clipped = np.clip(pos, 0, np.asarray(points.grid_size) - 1)
    return (int(clipped[0]), int(clipped[1])), bool((clipped != pos).any())
