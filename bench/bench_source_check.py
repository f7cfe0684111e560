"""What re-hashing a build's source files costs (``pipelines.fetch.cache.check_fetched``).

Usage:  python bench/bench_source_check.py [--models DIR] [--synthetic-mb 500] [--repeat 5]

``convert`` and every ``measure`` re-hash each source file before reading it (a byte flipped
after the fetch must not be converted and then verified against itself). The table shows that
check on the largest shared model and on a synthetic file, next to a plain read of the same
bytes (the I/O any reader pays, page cache warm) and, for the real model, next to its in-process
conversion: the ratios say how much the check adds to a task.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.fetch.cache import check_fetched  # noqa: E402


def _median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _read(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def _ref(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "size": path.stat().st_size}


def _convert_s(prototxt: Path, caffemodel: Path, repeat: int) -> float:
    from pipelines.build.steps import convert_source

    files = {"prototxt": prototxt, "caffemodel": caffemodel}
    return _median_s(lambda: convert_source("caffe", files), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_models = Path(os.environ.get("ZOOMAKE_SHARED", REPO.parent / "shared")) / "models"
    parser.add_argument("--models", type=Path, default=default_models)
    parser.add_argument("--synthetic-mb", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    caffemodels = sorted(args.models.rglob("*.caffemodel"), key=lambda p: p.stat().st_size)
    largest = caffemodels[-1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = Path(tmp) / "synthetic.bin"
        with open(synthetic, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(args.synthetic_mb):
                f.write(block)
        for path in (largest, synthetic):
            ref = _ref(path)
            _read(path)  # warm the page cache: measure hashing, not the disk
            check = _median_s(lambda p=path, r=ref: check_fetched(p, r, "bench"), args.repeat)
            read = _median_s(lambda p=path: _read(p), args.repeat)
            convert = None
            if path == largest:
                prototxt = path.with_suffix(".prototxt")
                if prototxt.is_file():
                    convert = _convert_s(prototxt, path, args.repeat)
            rows.append((path, ref["size"], check, read, convert))

    print(f"{'file':48} {'MB':>8} {'check ms':>9} {'MB/s':>7} {'read ms':>8} {'check/read':>10} "
          f"{'convert ms':>10} {'check/convert':>13}")  # fmt: skip
    for path, size, check, read, convert in rows:
        name = str(path.relative_to(args.models)) if path.is_relative_to(args.models) else path.name
        conv = (
            f"{convert * 1e3:10.1f} {check / convert:13.3f}" if convert else f"{'-':>10} {'-':>13}"
        )
        print(
            f"{name:48} {size / 1e6:8.1f} {check * 1e3:9.1f} {size / 1e6 / check:7.0f} "
            f"{read * 1e3:8.1f} {check / read:10.2f} {conv}"
        )


if __name__ == "__main__":
    main()
