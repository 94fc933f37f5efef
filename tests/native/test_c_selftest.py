"""The C self-test (c/selftest.c): every ISA path against the scalar reference without
Python in between, natively and, where a cross compiler and qemu are installed, for the
NEON build on AArch64 (`apt-get install gcc-aarch64-linux-gnu qemu-user`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "native" / "src"
SOURCES = [
    "dispatch.c",
    "threadpool.c",
    "arena.c",
    "common.c",
    "isa_scalar.c",
    "isa_avx2.c",
    "isa_avx512.c",
    "isa_neon.c",
]


def build(cc: str, out: Path, emu16: bool = False) -> None:
    """emu16 adds a portable 16-lane build: the AVX-512 code shape, runnable on any CPU."""
    here = Path(__file__).parent / "c"
    extra = ["-DSKM_SELFTEST_EMU16", "-Wno-psabi", str(here / "isa_emu16.c")] if emu16 else []
    cmd = [
        cc,
        *extra,
        "-O2",
        "-std=gnu11",
        "-pthread",
        f"-I{SRC}",
        str(Path(__file__).parent / "c" / "selftest.c"),
        *[str(SRC / s) for s in SOURCES],
        "-lm",
        "-o",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"
)
def test_selftest_native(tmp_path):
    exe = tmp_path / "selftest"
    build(shutil.which("cc") or shutil.which("gcc"), exe, emu16=True)
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failures" in result.stdout and "emu16" in result.stdout


@pytest.mark.skipif(
    not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")),
    reason="no AArch64 cross compiler / qemu-user",
)
def test_selftest_neon_under_qemu(tmp_path):
    exe = tmp_path / "selftest_arm"
    build("aarch64-linux-gnu-gcc", exe)
    result = subprocess.run(
        ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(exe)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "best=neon" in result.stdout and "0 failures" in result.stdout
