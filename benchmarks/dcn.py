"""Deformable convolution on CPU: regular convolution, torchvision's kernel and the native one.

In one run:

* per layer (``mnist-cnn`` conv4/conv5, ``cifar-small`` conv1/conv2 shapes, batch 64): the
  training step (forward + backward) and the forward of a regular ``nn.Conv2d`` and of a
  ``DeformConv2dBlock`` (with its offset and modulation convolutions) on each implementation:
  torchvision's kernel, and the native one with its compiled kernel (``native``) and with its
  plain-PyTorch kernel (``native/python``, what runs without a C++ compiler);
* per model: a training step (batch 64, cross-entropy, Adam) and a forward pass (batch 256,
  no grad) of ``mnist-cnn`` / ``mnist-cnn-dcnv2`` and ``cifar-small`` / ``cifar-small-dcn``.

Prints images/s for each; then the training steps of each regular model and its twin
(implementation ``auto``) interleaved step by step, 40 pairs after 5 warm-up steps each, and,
from them, ``dcn_train_ratio_cifar: X.X`` (``cifar-small-dcn`` over ``cifar-small``) and, last,
``dcn_train_ratio: X.X`` (``mnist-cnn-dcnv2`` over ``mnist-cnn``): the median of the pairs'
step-time ratios, robust to load from other jobs. glibc's ``malloc`` keeps freed memory, as in
``geomrobust train`` (``geomrobust._malloc.keep_freed_memory``).

Usage: ``python benchmarks/dcn.py [--quick] [--threads N]``
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from unittest import mock

import torch
from torch import nn

from geomrobust._malloc import keep_freed_memory
from geomrobust.models import DeformConv2dBlock, _deform_native, build_model, get_model_info
from geomrobust.models._deform_ext import compiled_kernel_available, kernel_error


def _time(fn: Callable[[], object], *, repeats: int, warmup: int = 1) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


#: Implementations compared: name -> (block impl, whether the native one may use its compiled
#: kernel).
IMPLS = {
    "torchvision": ("torchvision", True),
    "native": ("native", True),
    "native/python": ("native", False),
    "auto": ("auto", True),
    "auto/python": ("auto", False),
}


def _kernel(compiled: bool):
    """A context where the native implementation may (or may not) use its compiled kernel."""
    if compiled:
        return contextlib.nullcontext()
    return mock.patch.object(_deform_native, "compiled_kernel_available", return_value=False)


def _set_impl(model: nn.Module, impl: str) -> nn.Module:
    for module in model.modules():
        if isinstance(module, DeformConv2dBlock):
            module.impl = impl
    return model


def _layer_rows(repeats: int) -> None:
    shapes = [
        ("mnist-cnn conv4/conv5", 32, 32, 7, 3, 1),
        ("cifar-small conv1", 3, 40, 32, 3, 0),
        ("cifar-small conv2", 40, 25, 15, 2, 0),
    ]
    batch = 64
    print(f"\nper layer, batch {batch}: images/s (train = forward + backward)")
    print(f"  {'layer':24s} {'impl':13s} {'train':>10s} {'forward':>10s}")
    for label, cin, cout, size, k, pad in shapes:
        x = torch.randn(batch, cin, size, size)
        layers = {"conv2d": nn.Conv2d(cin, cout, k, padding=pad)}
        for name in ("torchvision", "native", "native/python"):
            layers[name] = DeformConv2dBlock(cin, cout, k, padding=pad, impl=IMPLS[name][0])
        for block in list(layers.values())[1:]:
            with torch.no_grad():  # non-zero offsets, as after training
                block.offset_conv.weight.normal_(0, 0.05)
        for impl, layer in layers.items():
            xg = x.clone().requires_grad_()

            def train(layer=layer, xg=xg):
                layer(xg).sum().backward()

            def forward(layer=layer, x=x):
                with torch.no_grad():
                    layer(x)

            with _kernel(IMPLS.get(impl, (None, True))[1]):
                t_train = _time(train, repeats=repeats)
                t_fwd = _time(forward, repeats=repeats)
            print(f"  {label:24s} {impl:13s} {batch / t_train:10.0f} {batch / t_fwd:10.0f}")


def _model_step(name: str, impl: str, repeats: int, train_batch: int, eval_batch: int):
    torch.manual_seed(0)
    impl, compiled = IMPLS[impl]
    model = _set_impl(build_model(name), impl)
    c, h, w = get_model_info(name).input_shape
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(train_batch, c, h, w)
    y = torch.randint(0, 10, (train_batch,))
    xe = torch.rand(eval_batch, c, h, w)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    def forward():
        with torch.no_grad():
            model(xe)

    with _kernel(compiled):
        model.train()
        t_step = _time(step, repeats=repeats)
        model.eval()
        t_fwd = _time(forward, repeats=repeats)
    return t_step, t_fwd


def _paired_steps(regular: str, twin: str, pairs: int, warmup: int = 5):
    """Training steps (batch 64, Adam) of ``regular`` and ``twin`` interleaved one by one,
    after ``warmup`` steps each: the median step times and the median of the pairs' ratios
    (load from other jobs slows both members of a pair alike)."""
    steps = {}
    for name in (regular, twin):
        torch.manual_seed(0)
        model = _set_impl(build_model(name), "auto").train()
        c, h, w = get_model_info(name).input_shape
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.rand(64, c, h, w), torch.randint(0, 10, (64,))

        def step(model=model, opt=opt, x=x, y=y):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        for _ in range(warmup):
            step()
        steps[name] = step
    times: dict[str, list[float]] = {regular: [], twin: []}
    for i in range(pairs):
        for name in (regular, twin) if i % 2 == 0 else (twin, regular):
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    ratios = sorted(d / r for r, d in zip(times[regular], times[twin], strict=True))
    med = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    return med[regular], med[twin], ratios[len(ratios) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `geomrobust train` and the engine do on CPU
    repeats = 3 if args.quick else 11
    pairs = 10 if args.quick else 40
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats}")
    if compiled_kernel_available():
        print("native kernel: compiled (models/csrc/deform_conv2d_cpu.cpp)")
    else:
        print(f"native kernel: plain PyTorch only (compiled one unavailable: {kernel_error()})")
    _layer_rows(repeats)

    print("\nper model: images/s (train step batch 64 with Adam; forward batch 256)")
    print(f"  {'model':18s} {'impl':13s} {'train':>10s} {'forward':>10s}")
    results = {}
    twin_impls = ("torchvision", "auto/python", "auto")
    for regular, twin in (("mnist-cnn", "mnist-cnn-dcnv2"), ("cifar-small", "cifar-small-dcn")):
        for name, impls in ((regular, ("-",)), (twin, twin_impls)):
            for impl in impls:
                t_step, t_fwd = _model_step(name, impl if impl != "-" else "auto", repeats, 64, 256)
                results[name, impl] = (t_step, t_fwd)
                print(f"  {name:18s} {impl:13s} {64 / t_step:10.0f} {256 / t_fwd:10.0f}")
    for regular, twin in (("mnist-cnn", "mnist-cnn-dcnv2"), ("cifar-small", "cifar-small-dcn")):
        base_step, base_fwd = results[regular, "-"]
        for impl in twin_impls:
            step, fwd = results[twin, impl]
            print(
                f"{twin} / {regular} with {impl}: train step {step / base_step:.2f}x, "
                f"forward {fwd / base_fwd:.2f}x"
            )
    print(f"\ntraining steps interleaved, {pairs} pairs after 5 warm-up steps each (auto):")
    paired = {}
    for regular, twin in (("mnist-cnn", "mnist-cnn-dcnv2"), ("cifar-small", "cifar-small-dcn")):
        t_reg, t_twin, ratio = _paired_steps(regular, twin, pairs)
        paired[twin] = ratio
        print(
            f"  {twin} / {regular}: {t_twin * 1e3:.1f} / {t_reg * 1e3:.1f} ms, "
            f"median pair ratio {ratio:.2f}x"
        )
    step, fwd = results["mnist-cnn-dcnv2", "auto"]
    base_step, base_fwd = results["mnist-cnn", "-"]
    print(f"dcn_forward_ratio: {fwd / base_fwd:.2f}")
    print(f"dcn_train_ratio_cifar: {paired['cifar-small-dcn']:.1f}")
    print(f"dcn_train_ratio: {paired['mnist-cnn-dcnv2']:.1f}")


if __name__ == "__main__":
    main()
