"""The bundled demo: a small ELIR trained here on public-domain photographs (see MODEL_CARD.md)."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
CHECKPOINT = DEMO_DIR / "elir_demo.ckpt"
HELDOUT_DIR = DEMO_DIR / "heldout"
CALIBRATION_DIR = DEMO_DIR.parent / "data" / "calibration"  # quantize's bundled set (quantize.calibration.BUNDLED)
