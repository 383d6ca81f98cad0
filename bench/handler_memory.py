"""How much memory the handler needs to decode one image, by format, mode and size: the measurement
behind the pixel caps (README "Reliability").

Each case runs in a fresh process (Linux): it reads the encoded file, resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), runs the handler's own ``decode_image`` and ``resize_crop`` (what each row
of a batch goes through), and reports how far the peak (``VmHWM``) rose over the resident size before
(``VmRSS``), in MB and in bytes per declared pixel. The images are blank, so they are
small on the wire and full size in memory, the case a hostile client would send.

Run: ``python -m bench.handler_memory --megapixels 16 64`` (prints a table and JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CASES = (("PNG", "RGBA"), ("PNG", "RGB"), ("PNG", "L"), ("JPEG", "RGB"))
RESIZE, CROP = 256, 224


def make_image(path: Path, fmt: str, mode: str, megapixels: float) -> None:
    from PIL import Image

    side = int(math.sqrt(megapixels * 1_000_000))
    Image.new(mode, (side, side)).save(path, format=fmt)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_one(path: Path) -> dict[str, Any]:
    """In this process: the peak RSS the decode adds (run in a fresh process per image)."""
    import handlers  # noqa: F401  (puts the handler's directory on sys.path, as TorchServe does)
    from classifier_image import decode_image, resize_crop

    data = path.read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # the peak mark starts again from the current size
    before = _status_kib("VmRSS")
    image, info = decode_image(data, max_pixels=10**9, draft_size=RESIZE)
    resize_crop(image, RESIZE, CROP)
    after = _status_kib("VmHWM")
    pixels = int(info["width"]) * int(info["height"])
    added = (after - before) * 1024
    return {
        "pixels": pixels,
        "bytes_on_wire": len(data),
        "peak_added_mb": round(added / 2**20, 1),
        "bytes_per_pixel": round(added / pixels, 2),
    }


def run(megapixels: list[float]) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in megapixels:
            for fmt, mode in CASES:
                path = Path(tmp) / f"{fmt}-{mode}-{size}.{fmt.lower()}"
                make_image(path, fmt, mode, size)
                out = subprocess.run(
                    [sys.executable, "-m", "bench.handler_memory", "--one", str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results.append({"format": fmt, "mode": mode, "megapixels": size, **json.loads(out.stdout)})
                path.unlink()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megapixels", type=float, nargs="+", default=[16.0, 64.0])
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one)))
        return 0
    results = run(args.megapixels)
    print("format mode  MP    on wire    peak added   bytes/pixel")
    for r in results:
        print(
            f"{r['format']:<6} {r['mode']:<5} {r['megapixels']:<5g} {r['bytes_on_wire'] / 1024:8.0f} KB "
            f"{r['peak_added_mb']:9.1f} MB {r['bytes_per_pixel']:10.2f}"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
