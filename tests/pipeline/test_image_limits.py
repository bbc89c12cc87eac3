"""Images that cost far more than they look are refused before decoding, naming the limit and
how to raise it (issue 16, defect 9)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from fossil.pipeline.images import decode_bytes, load_image


def bilevel_png(path: Path, width: int, height: int) -> Path:
    """A valid all-black 1-bit PNG, written row by row (never held decoded)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(row * height, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Image.Image) -> None:
        raise AssertionError("decoded an image that should have been refused from its header")

    monkeypatch.setattr(Image.Image, "load", refuse)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", refuse)


def test_a_tiny_file_that_decodes_to_gigabytes_is_refused_from_its_header(
    tmp_path: Path, no_decoding: None
) -> None:
    path = bilevel_png(tmp_path / "bomb.png", 16000, 16000)
    assert path.stat().st_size < 100_000
    with pytest.raises(
        ValueError,
        match=r"bomb.png.*16000x16000 \(1\).*MB limit.*max_mb.*FOSSIL_MAX_IMAGE_MB",
    ):
        load_image(path)


def test_the_budget_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    path = bilevel_png(tmp_path / "big.png", 2000, 2000)
    needed_mb = decode_bytes(2000, 2000, "1") / 2**20
    monkeypatch.setenv("FOSSIL_MAX_IMAGE_MB", str(needed_mb / 2))
    with pytest.raises(ValueError, match="FOSSIL_MAX_IMAGE_MB"):
        load_image(path)
    monkeypatch.setenv("FOSSIL_MAX_IMAGE_MB", str(needed_mb * 2))
    assert load_image(path).shape == (2000, 2000, 3)
    monkeypatch.setenv("FOSSIL_MAX_IMAGE_MB", "lots")
    with pytest.raises(ValueError, match="must be a number of megabytes"):
        load_image(path)


def test_the_flag_overrides_the_environment(tmp_path: Path, monkeypatch, capsys) -> None:
    """`fossil segment --max-image-mb` reaches load_image and wins over the variable."""
    from fossil.cli import main

    path = bilevel_png(tmp_path / "big.png", 2000, 2000)
    needed_mb = decode_bytes(2000, 2000, "1") / 2**20
    monkeypatch.setenv("FOSSIL_MAX_IMAGE_MB", str(needed_mb * 2))
    with pytest.raises(ValueError, match="raise the limit \\(max_mb"):
        load_image(path, max_mb=needed_mb / 2)
    assert load_image(path, max_mb=needed_mb * 2).shape == (2000, 2000, 3)
    with pytest.raises(ValueError, match=r"max_mb \(0.0\) must be > 0"):
        load_image(path, max_mb=0.0)
    argv = ["segment", str(path), "--concepts", "dog", "--store", str(tmp_path / "none")]
    assert main([*argv, "--max-image-mb", str(needed_mb / 2)]) == 1
    err = capsys.readouterr().err
    assert "big.png" in err  # the image is refused, before the store is
    assert err.rstrip().endswith("(flag: --max-image-mb MB)")  # the command names its flag


@pytest.mark.parametrize("size", [(20000, 1), (20000, 20), (5, 400)])
def test_elongated_images_are_refused_up_front(tmp_path: Path, no_decoding: None, size) -> None:
    path = bilevel_png(tmp_path / "strip.png", *size)
    with pytest.raises(ValueError, match=r"strip.png.*more than 20:1 apart.*crop it"):
        load_image(path)
