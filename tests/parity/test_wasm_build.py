"""`python -m birdlab wasm build`: cached by source hash, copied on request, deterministic, stripped,
and compiler errors reported with the compiler's words."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from birdlab.cli import main
from birdlab.frontend.wasm import (
    COMPILE_FLAGS,
    SOURCE_DIR,
    WasmBuildError,
    build_wasm,
    compile_wasm,
    default_wasm_path,
    source_hash,
)
from edge_runtime.frontend import MelFrontend
from edge_runtime.spec import FeatureSpec


def _custom_sections(wasm: bytes) -> list[str]:
    """Names of the custom sections (debug info, symbol names) of a wasm binary."""

    def leb128(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = wasm[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    assert wasm[:4] == b"\0asm"
    names, pos = [], 8
    while pos < len(wasm):
        section_id = wasm[pos]
        size, body = leb128(pos + 1)
        if section_id == 0:
            length, start = leb128(body)
            names.append(wasm[start : start + length].decode())
        pos = body + size
    return names


def test_source_hash_follows_the_sources(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(SOURCE_DIR, copy)
    assert source_hash(copy) == source_hash()
    header = copy / "melspec.h"
    header.write_text(header.read_text() + "\n// a change\n")
    assert source_hash(copy) != source_hash()


def test_build_is_cached_and_copied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = build_wasm()
    assert built == default_wasm_path() and built.name == f"melspec-{source_hash()}.wasm"
    stamp = built.stat().st_mtime_ns
    assert build_wasm() == built and built.stat().st_mtime_ns == stamp  # cached: not rebuilt
    assert _custom_sections(built.read_bytes()) == []  # stripped: no names, no debug info
    copied = build_wasm(tmp_path / "bundle" / "melspec.wasm")
    assert copied.read_bytes() == built.read_bytes()
    (tmp_path / "dir").mkdir()
    assert build_wasm(tmp_path / "dir") == tmp_path / "dir" / "melspec.wasm"
    assert main(["wasm", "build", "--out", f"{tmp_path / 'new'}/"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "new" / "melspec.wasm")


@pytest.mark.slow
def test_build_is_deterministic(tmp_path: Path) -> None:
    """Two real compilations (sources in other directories, with a comment that defeats zig's cache) give
    the cached module byte for byte."""
    outputs = []
    for tag in ("first", "second"):
        copy = tmp_path / tag
        shutil.copytree(SOURCE_DIR, copy)
        source = copy / "melspec.cpp"
        source.write_text(source.read_text() + f"\n// {tag} build\n")
        outputs.append(compile_wasm(tmp_path / f"{tag}.wasm", source_dir=copy).read_bytes())
    assert outputs[0] == outputs[1] == build_wasm().read_bytes()


@pytest.mark.slow
def test_compiler_errors_are_reported(tmp_path: Path) -> None:
    broken = tmp_path / "src"
    shutil.copytree(SOURCE_DIR, broken)
    (broken / "abi.cpp").write_text((broken / "abi.cpp").read_text() + "\nthis is not C++;\n")
    with pytest.raises(WasmBuildError, match=r"(?s)failed \(exit \d+\):.*abi\.cpp:\d+:\d+: error"):
        compile_wasm(tmp_path / "broken.wasm", source_dir=broken)
    assert not (tmp_path / "broken.wasm").exists()


@pytest.mark.slow
def test_scalar_build_is_bit_identical_to_simd(tmp_path: Path, rng: np.random.Generator) -> None:
    """The C++ has a scalar and a WebAssembly-SIMD path; both must give the same bits."""
    scalar = compile_wasm(tmp_path / "scalar.wasm", flags=tuple(f for f in COMPILE_FLAGS if f != "-msimd128"))
    assert scalar.read_bytes() != build_wasm().read_bytes()
    specs = [FeatureSpec(), dataclasses.replace(FeatureSpec(), n_fft=960, win_length=900, hop_length=333, power=1.5,
                                                 pad_mode="reflect", htk=True)]
    samples = (0.3 * rng.standard_normal(40_000)).astype(np.float32)
    for spec in specs:
        with (MelFrontend.load(scalar, spec=spec, cache_dir=tmp_path) as plain,
              MelFrontend.load(build_wasm(), spec=spec, cache_dir=tmp_path) as simd):
            for clip in (samples, samples[:12_345], samples[:7]):
                assert np.array_equal(plain.log_mel(clip).view(np.uint32), simd.log_mel(clip).view(np.uint32))
