"""Side-by-side image strips for a person to look at: one row per image, one labelled column per version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from elir_edge.common.images import save_png

LABEL_HEIGHT = 18


def write_strip(columns: dict[str, list[np.ndarray]], path: Path, gap: int = 4) -> None:
    """`columns`: label -> HxWx3 uint8 images, one per row, all the same size."""
    labels = list(columns)
    rows = len(columns[labels[0]])
    h, w = columns[labels[0]][0].shape[:2]
    canvas = Image.new("RGB", (len(labels) * (w + gap) - gap, LABEL_HEIGHT + rows * (h + gap) - gap), "white")
    draw = ImageDraw.Draw(canvas)
    for c, label in enumerate(labels):
        draw.text((c * (w + gap) + 4, 3), label, fill="black")
        for r, img in enumerate(columns[label]):
            canvas.paste(Image.fromarray(img), (c * (w + gap), LABEL_HEIGHT + r * (h + gap)))
    save_png(canvas, path)
