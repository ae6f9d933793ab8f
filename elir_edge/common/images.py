"""Image files in and out with Pillow: any mode (grayscale, RGBA, 16-bit, palette), EXIF orientation."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from elir_edge.errors import UserError

# What Pillow raises for a file it cannot or will not decode (a decompression bomb is refused on purpose).
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)
SOFTWARE = "elir-edge"  # the PNG text tag that marks an image this tool wrote

# every kind of image file Pillow opens (GIF, ICO, TGA, JPEG 2000, ... too), not a list of our own
SUFFIXES = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
DOCS = {".md", ".txt"}  # a folder's notes (sources, licences) are expected, not warned about


def read_rgb(path: Path, data: bytes | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB; 16-bit images are scaled down, alpha is composited on white, EXIF rotation applied; of
    a multi-frame file (animated GIF/WebP/PNG, multi-page TIFF) the first frame, said in a warning. `data`: the
    file's bytes, already read."""
    with Image.open(io.BytesIO(data) if data is not None else path) as im:
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            im.seek(0)
            warnings.warn(f"{path} has {frames} frames: used the first", stacklevel=2)
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            peak = 65535.0 if arr.max() > 255 else 255.0
            return np.repeat((arr / peak * 255 + 0.5).clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(canvas, im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def list_images(folder: Path, what: str = "image folder") -> list[Path]:
    """Image files below `folder` (recursively), sorted; other files are skipped with a warning."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"{what} {folder} does not exist: give a folder of images")
    if not folder.is_dir():
        raise UserError(f"{what} {folder} is not a folder: give a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in SUFFIXES]
    skipped = [p for p in files if p.suffix.lower() not in SUFFIXES | DOCS]
    if skipped:
        warnings.warn(f"skipped {len(skipped)} non-image file(s) in {folder}, e.g. {skipped[0].name}", stacklevel=2)
    if not images:
        raise UserError(f"{what} {folder} holds no images (PNG, JPEG, TIFF, WebP, GIF or any kind Pillow reads): "
                        "add some")
    return images


def load_images(folder: Path, what: str = "image folder") -> list[tuple[str, np.ndarray]]:
    """(relative name, HxWx3 uint8) for every readable image; unreadable ones are skipped with a warning."""
    out = []
    for p in list_images(folder, what):
        try:
            out.append((str(p.relative_to(folder)), read_rgb(p)))
        except UNREADABLE as e:
            warnings.warn(f"skipped unreadable image {p.name}: {type(e).__name__}", stacklevel=2)
    if not out:
        raise UserError(f"{what} {folder} has no readable images: check the files")
    return out


def fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (bicubic) so the image covers HxW, then centre-crop: the graph's fixed input size."""
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    return np.asarray(ImageOps.fit(Image.fromarray(img), (width, height), Image.BICUBIC))


def to_chw(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32 in [0,1]."""
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 255


def to_uint8(chw: np.ndarray) -> np.ndarray:
    return (np.clip(chw, 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def save_png(img: np.ndarray | Image.Image, path: Path, text: dict[str, str] | None = None) -> None:
    """Atomically (temp file, then rename), tagged as written by elir-edge, with any further text chunks."""
    from PIL.PngImagePlugin import PngInfo

    from elir_edge.common.files import atomic_file

    info = PngInfo()
    info.add_text("Software", SOFTWARE)
    for key, value in (text or {}).items():
        info.add_text(key, value)
    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    with atomic_file(Path(path)) as tmp:
        im.save(tmp, format="PNG", pnginfo=info)


def png_text(path: Path) -> dict[str, str]:
    """The text chunks of a PNG ({} for anything else or unreadable)."""
    try:
        with Image.open(path) as im:
            return {k: v for k, v in im.info.items() if isinstance(v, str)} if im.format == "PNG" else {}
    except UNREADABLE:
        return {}


def tagged(text: dict[str, str]) -> bool:
    """PNG text chunks (png_text) carrying the tag save_png writes."""
    return text.get("Software") == SOFTWARE


def written_by_us(path: Path) -> bool:
    """A PNG this tool wrote (tagged by save_png): the one kind of existing file restore may replace."""
    return tagged(png_text(path))
