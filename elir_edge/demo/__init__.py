"""The bundled demo: a small ELIR trained here on public-domain photographs (see MODEL_CARD.md)."""

from pathlib import Path

from elir_edge.quantize.calibration import BUNDLED

DEMO_DIR = Path(__file__).resolve().parent
CHECKPOINT = DEMO_DIR / "elir_demo.ckpt"
HELDOUT_DIR = DEMO_DIR / "heldout"
CALIBRATION_DIR = BUNDLED  # the photographs quantize falls back to, shipped in the package
