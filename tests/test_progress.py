"""What a user watching a long stage sees: the stage's header stays whole, each progress line stands on a
line of its own with elapsed time and an estimate of what remains, and the stage closes with its time."""

from __future__ import annotations

import io
import re

from elir_edge.common.progress import Stages, each
from elir_edge.quantize.mct import MctProgress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_stage_without_inner_progress_is_one_line():
    out = io.StringIO()
    with Stages(2, stream=out)("read"):
        pass
    assert re.fullmatch(r"\[1/2\] read \.\.\. \d+\.\d s\n", out.getvalue())


def test_progress_lines_inside_a_stage_keep_the_header_whole():
    out = io.StringIO()
    stages = Stages(2, stream=out)
    with stages("read"):
        pass
    with stages("sensitivity"):
        list(each(range(3), "blocks", stream=out, every_s=0))
    lines = out.getvalue().splitlines()
    assert lines[1] == "[2/2] sensitivity ..."
    assert [re.sub(r"\(.*\)", "()", x) for x in lines[2:5]] == ["    blocks: 1/3 ()", "    blocks: 2/3 ()",
                                                                "    blocks: 3/3 ()"]
    assert re.search(r"\d+ s, ~\d+ s left", lines[2])
    assert re.fullmatch(r"    done in \d+\.\d s", lines[5]) and len(lines) == 6


def test_the_stage_where_the_peak_memory_rose_last_is_named():
    """A fresh process (a test worker's own peak is already past anything a stage here allocates): the middle
    stage writes 300 MB, the stages around it nothing."""
    import subprocess
    import sys

    code = ("from elir_edge.common.progress import Stages\n"
            "s = Stages(3, quiet=True)\n"
            "with s('light'): pass\n"
            "with s('heavy'): block = b'x' * 300_000_000\n"
            "del block\n"
            "with s('after'): pass\n"
            "print(s.peak_stage)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "heavy"


def test_mct_phases_in_a_log_and_on_a_terminal():
    for out in (io.StringIO(), Terminal()):
        stages = Stages(1, stream=out)
        with stages("MCT"):
            progress = MctProgress(stream=out, every_s=0)
            list(progress((i for i in range(4)), desc="Statistics Collection"))  # length unknown, as in MCT
            list(progress(range(2), desc="Calculating quantization parameters"))
        screen = [line.split("\r")[-1] for line in out.getvalue().split("\n")][:-1]  # what a terminal shows
        stats = [x for x in screen if x.startswith("    Statistics Collection: ")]
        params = [x for x in screen if x.startswith("    Calculating quantization parameters: ")]
        assert screen[0] == "[1/1] MCT ..." and re.fullmatch(r"    done in \d+\.\d s", screen[-1])
        assert stats[-1].startswith("    Statistics Collection: 4/? (") and "left" not in stats[-1]
        assert params[-1].startswith("    Calculating quantization parameters: 2/2 (") and "s left" in params[-1]
        assert len(screen) == (4 if isinstance(out, Terminal) else 2 + len(stats) + len(params))
        assert [p["phase"] for p in progress.phases] == ["Statistics Collection", "Calculating quantization parameters"]


def test_statistics_collection_counts_against_the_calibration_batches(monkeypatch):
    """MCT iterates our generator (no length): quantize_module tells the progress how many batches come."""
    import model_compression_toolkit as mct
    import torch

    from elir_edge.quantize.mct import STATISTICS, PTQOptions, quantize_module

    out = io.StringIO()
    progress = MctProgress(stream=out, every_s=0)

    def fake_ptq(module, gen, **_):
        import model_compression_toolkit.core.quantization_prep_runner as runner
        list(runner.tqdm(gen(), STATISTICS))  # MCT's own call, as in quantization_prep_runner
        return module, None

    monkeypatch.setattr(mct.ptq, "pytorch_post_training_quantization", fake_ptq)
    quantize_module(torch.nn.Identity(), [(torch.zeros(1),)] * 3, PTQOptions(), progress)
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith(f"    {STATISTICS}: 3/3 (") and "s left" in last
