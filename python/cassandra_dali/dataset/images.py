"""A stand-in for Imagenette (imagenette2-320), generated locally and deterministically.

Imagenette cannot be downloaded here, so tests, the demo and the benchmarks use images with the
same layout: ``ROOT/train/<wnid>/<wnid>_<n>.JPEG`` and ``ROOT/val/<wnid>/ILSVRC2012_val_<n>.JPEG``
for the 10 real Imagenette WordNet ids, JPEGs with a 320-pixel short side.

The pictures are smooth gradients and blurred shapes with sensor-like noise: the noise is what
makes JPEG sizes realistic (tens of KB, like the real 320-px set) rather than a few KB for flat
colour. Each class has its own hue bias, so a classifier can learn something from them.

Every image is a pure function of (seed, split, class, index): the same seed gives the same
bytes with the same Pillow/libjpeg, whatever the number of worker processes.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .._files import write_atomically

log = logging.getLogger(__name__)

# The 10 Imagenette classes (WordNet ids), in the order of the real dataset's folders.
IMAGENETTE_CLASSES: tuple[str, ...] = (
    "n01440764",  # tench
    "n02102040",  # English springer
    "n02979186",  # cassette player
    "n03000684",  # chain saw
    "n03028079",  # church
    "n03394916",  # French horn
    "n03417042",  # garbage truck
    "n03425413",  # gas pump
    "n03445777",  # golf ball
    "n03888605",  # parachute
)
SPLITS: tuple[str, ...] = ("train", "val")
SHORT_SIDE = 320
# Long sides seen in imagenette2-320 (4:3, 3:2, 16:9 and square pictures).
LONG_SIDES: tuple[int, ...] = (320, 400, 426, 480, 569)
JPEG_QUALITY = 90


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """One image to generate: where it goes and what seeds it."""

    split: str
    wnid: str
    class_index: int
    index: int  # within (split, class)
    seed: int

    @property
    def filename(self) -> str:
        # The real set names train files after the class and val files after ILSVRC2012's
        # validation numbering; keep both so path-handling code meets the same shapes.
        if self.split == "val":
            number = 1 + self.class_index * 100_000 + self.index
            return f"ILSVRC2012_val_{number:08d}.JPEG"
        return f"{self.wnid}_{10_000 + self.index}.JPEG"

    @property
    def relative_path(self) -> str:
        return f"{self.split}/{self.wnid}/{self.filename}"


@dataclasses.dataclass(frozen=True)
class GenerateSummary:
    root: Path
    files: int
    total_bytes: int
    min_bytes: int
    max_bytes: int

    @property
    def mean_bytes(self) -> float:
        return self.total_bytes / self.files if self.files else 0.0


def image_specs(
    train_per_class: int,
    val_per_class: int,
    seed: int,
    classes: Sequence[str] = IMAGENETTE_CLASSES,
) -> list[ImageSpec]:
    if train_per_class < 0 or val_per_class < 0:
        raise ValueError("images per class must be >= 0")
    counts = {"train": train_per_class, "val": val_per_class}
    return [
        ImageSpec(split, wnid, c, i, seed)
        for split in SPLITS
        for c, wnid in enumerate(classes)
        for i in range(counts[split])
    ]


def _rng(spec: ImageSpec) -> np.random.Generator:
    # A SeedSequence over all coordinates: independent streams, no accidental overlap between
    # e.g. (class 1, index 10) and (class 10, index 1).
    return np.random.default_rng(
        [spec.seed, SPLITS.index(spec.split), spec.class_index, spec.index]
    )


def render_jpeg(spec: ImageSpec) -> bytes:
    """The JPEG bytes of one image (deterministic for the spec)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = _rng(spec)
    long_side = int(rng.choice(LONG_SIDES))
    portrait = rng.random() < 0.25
    width, height = (SHORT_SIDE, long_side) if portrait else (long_side, SHORT_SIDE)

    # Background: a linear gradient between two colours leaning to the class's hue...
    hue = np.array(
        [
            np.cos(spec.class_index * 0.628),
            np.cos(spec.class_index * 0.628 + 2.1),
            np.cos(spec.class_index * 0.628 + 4.2),
        ],
        dtype=np.float32,
    )
    c0 = np.clip(rng.integers(0, 256, 3) + 60 * hue, 0, 255)
    c1 = np.clip(rng.integers(0, 256, 3) + 60 * hue, 0, 255)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = np.cos(angle) * xx / width + np.sin(angle) * yy / height
    t = (t - t.min()) / (t.max() - t.min() + 1e-6)
    pixels = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    # ...plus low-frequency texture (a coarse random grid, upsampled smoothly).
    coarse = rng.normal(128, 40, (height // 32 + 2, width // 32 + 2, 3))
    texture = Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    pixels = pixels + np.asarray(texture, dtype=np.float32) - 128
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    # Foreground: a few ellipses and polygons, blurred so edges look photographic.
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 12))):
        x0 = int(rng.integers(-width // 4, width))
        y0 = int(rng.integers(-height // 4, height))
        size = int(rng.integers(20, max(width, height) // 2))
        colour = tuple(int(v) for v in np.clip(rng.integers(0, 256, 3) + 40 * hue, 0, 255))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + size, y0 + int(size * rng.uniform(0.5, 1.5))], fill=colour)
        else:
            corners = int(rng.integers(3, 7))
            points = [
                (x0 + int(rng.integers(0, size)), y0 + int(rng.integers(0, size)))
                for _ in range(corners)
            ]
            draw.polygon(points, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 2.0))))

    # Sensor-like noise: sets the JPEG size (sigma 4..10 gives about 20..65 KB at quality 90).
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(
        0, rng.uniform(4, 10), (height, width, 3)
    )
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _write(args: tuple[Path, ImageSpec]) -> int:
    root, spec = args
    path = root / spec.relative_path
    data = render_jpeg(spec)
    write_atomically(path, data)  # never a half-written JPEG for a later ingest to read
    return len(data)


def generate(
    root: Path | str,
    train_per_class: int,
    val_per_class: int,
    seed: int = 0,
    *,
    classes: Sequence[str] = IMAGENETTE_CLASSES,
    workers: int | None = None,
    progress: bool = False,
) -> GenerateSummary:
    """Write the dataset under ``root`` (existing files with the same names are replaced)."""
    root = Path(root)
    specs = image_specs(train_per_class, val_per_class, seed, classes)
    for split in SPLITS:
        for wnid in classes:
            (root / split / wnid).mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or os.cpu_count() or 1, 16))
    jobs = [(root, spec) for spec in specs]
    if workers == 1 or len(jobs) < 32:  # a pool costs more than it saves on a few images
        results = list(_with_progress(map(_write, jobs), len(jobs), progress))
    else:
        # Not fork: the caller may hold DALI pipelines and driver sessions (threads), and a forked
        # worker that garbage-collects its copy of one crashes (seen in the test suite).
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(_with_progress(pool.map(_write, jobs, chunksize=8), len(jobs), progress))
    summary = GenerateSummary(
        root=root,
        files=len(results),
        total_bytes=sum(results),
        min_bytes=min(results, default=0),
        max_bytes=max(results, default=0),
    )
    log.info(
        "generated %d JPEGs in %s: %.1f MB, %.1f KB on average (%.1f..%.1f KB)",
        summary.files,
        root,
        summary.total_bytes / 1e6,
        summary.mean_bytes / 1e3,
        summary.min_bytes / 1e3,
        summary.max_bytes / 1e3,
    )
    return summary


def _with_progress(items: Iterable[int], total: int, enabled: bool) -> Iterable[int]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, unit="img", desc="generating", dynamic_ncols=True)
