"""The one translation of library wording (parameters) into command-line wording (flags)."""

from __future__ import annotations

import logging

import pytest

from geomrobust.cli._errors import FlagsFilter, UsageError, as_flags, exit_status
from geomrobust.models import CheckpointError


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        (
            "pass as root= the folder that holds the files, or download=True to fetch them",
            "pass with --data-root the folder that holds the files, or --download to fetch them",
        ),
        (
            "pass root=DIR; or root=DIR with download=True",
            "pass --data-root DIR; or --data-root DIR with --download",
        ),
        (
            "pass force=True to overwrite it or choose another out",
            "pass --force to overwrite it or choose another --out",
        ),
        (
            "pass resume=True to continue it or force=True",
            "pass --resume to continue it or --force",
        ),
        ("rerun with resume=False to start over", "rerun without --resume to start over"),
        ("pass model='NAME' with a registry name", "pass --model NAME with a registry name"),
        (
            "If you trust it, pass model='pkg.mod:build'",
            "If you trust it, pass --model pkg.mod:build",
        ),
        (
            "x.pt predicts 10 classes but the model was built for 1000; pass "
            "model_args={'num_classes': 10} to build it for the checkpoint's classes",
            "x.pt predicts 10 classes but the model was built for 1000; pass "
            """--model-args '{"num_classes": 10}' to build it for the checkpoint's classes""",
        ),
        (
            "cannot build 'tv:r18' with model_args={'depth': 3, 'x': (1, 2)}",
            """cannot build 'tv:r18' with --model-args '{"depth": 3, "x": [1, 2]}'""",
        ),
        ("remove ['weights'] from model_args", "remove ['weights'] from --model-args"),
        ("pass model_args={'act': <class 'X'>}", "pass --model-args '{'act': <class 'X'>}'"),
        ("pass mean= and std= or a numeric fill", "pass --mean and --std or a numeric fill"),
        ("num_pairs must be an int >= 1; got 0", "--pairs must be an int >= 1; got 0"),
        ("out /r exists and is not a folder", "--out /r exists and is not a folder"),
        ("pass data_root= with the folder", "pass --data-root with the folder"),
        (
            "or pass class_map=FILE to map the class folders",
            "or pass --class-map FILE to map the class folders",
        ),
        ("; pass skip_unreadable=True to skip", "; pass --skip-unreadable to skip"),
        ("pass grey=True to convert colour", "pass --grey to convert colour"),
        (
            "pass crop=(H, W) (and resize=N) so that",
            "pass --crop H,W (and --resize N) so that",
        ),
        ("a larger resize (resize >= 224)", "a larger resize (--resize >= 224)"),
        (
            "the attack's box is empty (max_angle_deg=0 and no shift): give max_shift_px > 0",
            "the attack's box is empty (--max-angle-deg=0 and no shift): give --max-shift-px > 0",
        ),
        ("k must be an int >= 1; got 0", "--k must be an int >= 1; got 0"),
        ("canvas_pad must be an int >= 0", "--canvas-pad must be an int >= 0"),
        ("the model's output (out of range)", "the model's output (out of range)"),  # untouched
    ],
)
def test_parameters_read_as_flags(library, cli):
    assert as_flags(library) == cli


def test_usage_errors_and_library_errors_print_flags(capsys):
    assert str(UsageError("pass force=True")) == "pass --force"
    assert exit_status(CheckpointError("x.pt: pass model='NAME'")) == 2
    assert capsys.readouterr().err == "error: x.pt: pass --model NAME\n"
    assert exit_status(RuntimeError("a bug")) is None  # keeps its traceback (exit 1)
    assert capsys.readouterr().err == ""


def test_log_lines_read_as_flags():
    record = logging.LogRecord(
        "geomrobust", logging.WARNING, __file__, 1, "%s: use resume=True", ("p",), None
    )
    assert FlagsFilter().filter(record)
    assert record.getMessage() == "p: use --resume"
