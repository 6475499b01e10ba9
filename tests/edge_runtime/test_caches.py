"""Caches are verified, never trusted: a damaged or swapped compiled module is recompiled, a changed unpacked bundle
is unpacked again, and an archive that would unpack too much is refused without leaving anything behind."""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import wasmtime
from edge_bundle_factory import label_rows, session_model, tar_bundle, write_bundle
from receiver_process import REPO_ROOT, python_env
from test_frontend import _fake_module

from edge_runtime.bundle import MAX_ARCHIVE_MEMBERS, BundleError, open_bundle
from edge_runtime.frontend import MelFrontend
from edge_runtime.spec import FeatureSpec

SPEC = FeatureSpec()
BOMB_BYTES = 300 * 1024 * 1024


def cached_modules(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("*.cwasm"))


def test_a_swapped_compiled_module_is_recompiled_not_run(tmp_path):
    ours = _fake_module(tmp_path, compute_body="(i32.const 1)", name="ours.wasm")
    foreign = _fake_module(tmp_path, compute_body="(i32.const 2)", name="foreign.wasm")
    cache = tmp_path / "cache"
    MelFrontend.load(ours, spec=SPEC, cache_dir=cache).close()
    [our_cwasm] = cached_modules(cache)
    MelFrontend.load(foreign, spec=SPEC, cache_dir=cache).close()
    [foreign_cwasm] = [p for p in cached_modules(cache) if p != our_cwasm]
    our_cwasm.write_bytes(foreign_cwasm.read_bytes())  # valid machine code, but of another module
    for record in (p for p in cache.iterdir() if p.name.startswith(foreign_cwasm.name) and p != foreign_cwasm):
        (cache / record.name.replace(foreign_cwasm.name, our_cwasm.name)).write_bytes(record.read_bytes())
    with MelFrontend.load(ours, spec=SPEC, cache_dir=cache) as frontend:
        assert frontend.module_cache_hit is False
    with MelFrontend.load(ours, spec=SPEC, cache_dir=cache) as frontend:
        assert frontend.module_cache_hit is True  # the recompiled module was cached again, and is trusted


DAMAGED_LOAD = """
import sys
import numpy as np
from pathlib import Path
from edge_runtime.frontend import MelFrontend
from edge_runtime.spec import FeatureSpec
with MelFrontend.load(Path(sys.argv[1]), spec=FeatureSpec(), cache_dir=Path(sys.argv[2])) as frontend:
    out = frontend.log_mel(np.sin(np.arange(32000, dtype=np.float32) / 7))
    print(frontend.module_cache_hit, float(out.sum()))
"""


def elf_section(data: bytes, wanted: str) -> tuple[int, int]:
    """(offset, size) of a section of a little-endian ELF64 file (a compiled module is one)."""
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = headers[shstrndx][4]
    for name_at, _, _, _, offset, size, *_ in headers:
        if data[names + name_at : data.index(b"\0", names + name_at)].decode() == wanted:
            return offset, size
    raise AssertionError(f"no {wanted} section")


def test_a_damaged_compiled_module_is_recompiled_never_a_crash(tmp_path):
    from birdlab.frontend.wasm import build_wasm

    wasm = build_wasm()
    cache = tmp_path / "cache"

    def load() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", DAMAGED_LOAD, str(wasm), str(cache)], capture_output=True,
                              text=True, env=python_env(), cwd=REPO_ROOT, timeout=300)

    cold = load()
    assert cold.returncode == 0, cold.stderr
    [cwasm] = cached_modules(cache)
    data = bytearray(cwasm.read_bytes())
    rng = np.random.default_rng(20210401)
    offset, size = elf_section(bytes(data), ".text")
    for position in rng.integers(offset, offset + size, size=64):  # damaged machine code, as a bad SD card gives
        data[position] ^= 0xFF
    cwasm.write_bytes(bytes(data))
    damaged = load()
    assert damaged.returncode == 0, damaged.stderr
    assert damaged.stdout.split()[0] == "False"  # not used: recompiled
    assert damaged.stdout.split()[1] == cold.stdout.split()[1]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parts = tmp_path_factory.mktemp("cache_parts")
    wasm = parts / "empty.wasm"
    wasm.write_bytes(wasmtime.wat2wasm("(module)"))
    bundle = write_bundle(parts / "bundle", spec=SPEC, model_path=session_model(tmp_path_factory, n_outputs=4),
                          wasm_path=wasm, labels=label_rows(4))
    return tar_bundle(bundle, parts / "bundle.tar.gz")


def test_a_changed_unpacked_bundle_is_unpacked_again(tmp_path, archive):
    unpack = tmp_path / "unpacked"
    first = open_bundle(archive, unpack_dir=unpack)
    labels = first.root / "labels.csv"
    original = labels.read_bytes()
    labels.write_bytes(original.replace(b"eurrob1", b"zzzzzz1") if b"eurrob1" in original else original + b"\n")
    again = open_bundle(archive, unpack_dir=unpack)
    assert (again.root / "labels.csv").read_bytes() == original
    (again.root / "model.tflite").unlink()
    assert open_bundle(archive, unpack_dir=unpack).model_path.read_bytes()


def _zeros_archive(path: Path, *, member_bytes: int, members: int = 1) -> Path:
    """A .tar.gz of `members` files of zeros (written without ever holding them on disk)."""

    class Zeros(io.RawIOBase):
        def __init__(self, n: int) -> None:
            self.left = n

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    with gzip.open(path, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for k in range(members):
            info = tarfile.TarInfo(f"bundle/file{k}.bin")
            info.size = member_bytes
            tar.addfile(info, io.BufferedReader(Zeros(member_bytes)))
    return path


def test_an_archive_that_unpacks_to_300_mb_is_refused_and_leaves_nothing(tmp_path):
    bomb = _zeros_archive(tmp_path / "bomb.tar.gz", member_bytes=BOMB_BYTES)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    unpack = tmp_path / "unpacked"
    with pytest.raises(BundleError, match="unpacks to more than"):
        open_bundle(bomb, unpack_dir=unpack)
    assert not unpack.exists() or list(unpack.iterdir()) == []


def test_an_archive_with_too_many_members_is_refused_and_leaves_nothing(tmp_path):
    many = _zeros_archive(tmp_path / "many.tar.gz", member_bytes=1, members=MAX_ARCHIVE_MEMBERS + 1)
    unpack = tmp_path / "unpacked"
    with pytest.raises(BundleError, match=f"more than {MAX_ARCHIVE_MEMBERS} members"):
        open_bundle(many, unpack_dir=unpack)
    assert not unpack.exists() or list(unpack.iterdir()) == []


def test_a_truncated_archive_leaves_no_temporary_directory(tmp_path, archive):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    unpack = tmp_path / "unpacked"
    with pytest.raises(BundleError, match="cannot unpack"):
        open_bundle(cut, unpack_dir=unpack)
    assert not unpack.exists() or list(unpack.iterdir()) == []
