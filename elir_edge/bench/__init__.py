"""Stage 4, bench: artifacts -> speed (trtexec-style percentiles) and quality drift (PSNR/SSIM vs the
float model and the ground truth, bootstrap intervals, noise floor, FID/KID with real weights), as a
table, JSON and a plot.

    from elir_edge.bench import BenchOptions, run_bench
"""

from elir_edge.bench.options import BenchOptions

__all__ = ["BenchOptions", "run_bench"]


def __getattr__(name: str):  # the stage loads on first use, not when options are imported
    if name == "run_bench":
        from elir_edge.bench.stage import run_bench

        return run_bench
    raise AttributeError(name)
