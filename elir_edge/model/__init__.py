"""The model: ELIR's modules (`arch/`), checkpoint loading, folding, unrolling, presets, settings,
seeded noise, MAC/param counts.

Takes a checkpoint file (either format) or an export folder's folded weights; gives torch modules:
the looped reference (`Elir`), the folded model and the unrolled static graph (`UnrolledElir`).
"""
