"""Memory and time of reading huge images, each in a fresh process, against decoding alone.

Two files: a 9400x9400 RGBA PNG of a few hundred KB (just under PIL's decompression-bomb
limit) and a 12-megapixel JPEG "phone photo" of a digit. For each, the peak resident memory
(ru_maxrss) and wall time of a process that only decodes it with PIL (the floor), and of one
that runs digits_core.images.load_image on it, compared as ratios within this run.

    .venv/bin/python benchmarks/bench_large_images.py
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import json, resource, sys, time
from PIL import Image
Image.MAX_IMAGE_PIXELS = None if sys.argv[2] == "decode" else Image.MAX_IMAGE_PIXELS
start = time.perf_counter()
outcome = "ok"
if sys.argv[2] == "decode":
    with Image.open(sys.argv[1]) as image:
        image.load()
else:
    from digits_core.errors import DigitsError
    from digits_core.images import load_image
    try:
        load_image(sys.argv[1])
    except DigitsError as exc:
        outcome = str(exc)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rss_mb": peak, "s": seconds, "outcome": outcome}))
"""


def measure(path: Path, how: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), how], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


MAKE = """
import sys
from PIL import Image, ImageDraw
Image.new("RGBA", (9400, 9400), (255, 255, 255, 255)).save(sys.argv[1])
photo = Image.new("RGB", (4000, 3000), (235, 230, 220))
ImageDraw.Draw(photo).ellipse((1500, 700, 2500, 2300), outline=(20, 20, 30), width=120)  # a 0
photo.save(sys.argv[2], quality=90)
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bomb, photo = Path(tmp) / "bomb.png", Path(tmp) / "photo.jpg"
        # Made in a process of its own: a child inherits its parent's peak memory figure.
        subprocess.run([sys.executable, "-c", MAKE, str(bomb), str(photo)], check=True)
        print(f"{'file':<28}{'decode only':>22}{'load_image':>22}{'memory ratio':>14}  outcome")
        for label, path in (("9400x9400 RGBA PNG", bomb), ("12 MP JPEG photo", photo)):
            floor, ours = measure(path, "decode"), measure(path, "load")
            name = f"{label} ({path.stat().st_size // 1024} KB)"
            print(
                f"{name:<28}{floor['rss_mb']:>10.0f} MB {floor['s']:>6.2f} s"
                f"{ours['rss_mb']:>10.0f} MB {ours['s']:>6.2f} s{ours['rss_mb'] / floor['rss_mb']:>13.2f}x"
                f"  {ours['outcome']}"
            )


if __name__ == "__main__":
    main()
