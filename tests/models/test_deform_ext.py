"""Building, caching and falling back from the compiled deformable-convolution kernel."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import pytest

from geomrobust.models import _deform_ext as ext


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A process state where the kernel was never tried nor registered, caching in tmp_path."""
    monkeypatch.setattr(ext, "_state", {})
    monkeypatch.setattr(ext, "_registered", lambda: False)
    monkeypatch.setenv(ext.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(ext.ENV_KERNEL, raising=False)
    return tmp_path


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ext.ENV_CACHE, str(tmp_path / "mine"))
    assert ext.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(ext.ENV_CACHE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ext.cache_dir() == tmp_path / "xdg" / "geomrobust"


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler (c++)")
def test_build_once_then_reuse_the_cached_library(fresh, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    built = ext._build()
    assert built.parent == fresh / "kernels"
    assert built.name.startswith("deform_conv2d_cpu-")
    assert built.suffix == ".so"
    assert [p.name for p in built.parent.iterdir()] == [built.name]  # no temporary left
    commands = []
    real_run = subprocess.run

    def spy(command, *args, **kwargs):
        commands.append(command)
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(ext.subprocess, "run", spy)
    assert ext._build() == built
    assert commands == [["c++", "--version"]]  # the key only: no second compile


def test_cxx_may_carry_a_launcher(monkeypatch):
    monkeypatch.setenv("CXX", "ccache g++ -Wall")
    assert ext._command(ext.SOURCE, ext.SOURCE)[:3] == ["ccache", "g++", "-Wall"]
    monkeypatch.setenv("CXX", "")
    assert ext._command(ext.SOURCE, ext.SOURCE)[0] == "c++"


def test_missing_compiler_is_named(fresh, monkeypatch):
    monkeypatch.setenv("CXX", "geomrobust-no-such-compiler")
    with pytest.raises(OSError, match="no C\\+\\+ compiler 'geomrobust-no-such-compiler' on PATH"):
        ext._build()


def test_compile_error_is_reported_and_leaves_no_partial_file(fresh, monkeypatch, tmp_path):
    compiler = tmp_path / "badcc"
    compiler.write_text('#!/bin/sh\necho "deform.cpp:1:1: error: boom" >&2\nexit 3\n')
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    with pytest.raises(OSError, match="badcc exited with 3: deform.cpp:1:1: error: boom"):
        ext._build()
    assert list((fresh / "kernels").iterdir()) == []


def test_unavailable_kernel_warns_once_and_says_why(fresh, monkeypatch):
    monkeypatch.setenv("CXX", "geomrobust-no-such-compiler")
    with pytest.warns(RuntimeWarning, match="kernel is unavailable \\(no C\\+\\+ compiler"):
        assert ext.compiled_kernel_available() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ext.compiled_kernel_available() is False  # remembered: no second build
    assert "geomrobust-no-such-compiler" in ext.kernel_error()


def test_python_kernel_by_environment_skips_the_build_silently(fresh, monkeypatch):
    monkeypatch.setenv(ext.ENV_KERNEL, "python")
    monkeypatch.setenv("CXX", "geomrobust-no-such-compiler")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ext.compiled_kernel_available() is False
    assert ext.kernel_error() == "GEOMROBUST_DEFORM_KERNEL=python"
    assert not (fresh / "kernels").exists()
