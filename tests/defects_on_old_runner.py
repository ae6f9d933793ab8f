"""Issue 12's defects replayed on the TensorRT runner of ab70fef, on the same stand-in GPU the tests use.

Not a test (pytest does not collect it): it runs the *old* package and shows, defect by defect, that the
scenario of the matching test in tests/test_gpu_runtime.py / tests/test_engines.py fails there.

    git worktree add /tmp/old ab70fef
    elir-edge export -q --no-fp16 --image-size 64 elir_edge/demo/elir_demo.ckpt -o /tmp/old_exp
    python tests/defects_on_old_runner.py --code /tmp/old --export /tmp/old_exp

Issue 22's defects are replayed the equivalent way: their tests (test_gpu_runtime.py, `test_i22_*`) run on
the old package, the current stand-in kept. Every one fails on 1d83821; all but defect 9's (fixed in 256cd80)
on 55f760b:

    mkdir /tmp/old22 && git archive 1d83821 elir_edge | tar -x -C /tmp/old22
    cd /tmp/old22 && python -m pytest -p no:cacheprovider "$OLDPWD/tests/test_gpu_runtime.py" -k i22

Issue 32's the same way, on c84a6ef (`test_i32_*`; benchmarks/RESULTS.md has the counts):

    mkdir /tmp/old32 && git archive c84a6ef elir_edge | tar -x -C /tmp/old32
    cd /tmp/old32 && python -m pytest -p no:cacheprovider "$OLDPWD/tests/test_gpu_runtime.py" -k i32
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, required=True, help="a checkout of the old commit")
    ap.add_argument("--export", type=Path, required=True, help="an export folder (model.onnx, 64 px)")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import fake_gpu  # imports the real tensorrt_rtx and cuda.bindings before the stand-ins replace them
    import numpy as np
    import onnx
    import pytest
    import tensorrt_rtx as real_rtx

    sys.path.insert(0, str(args.code.resolve()))
    import elir_edge

    assert Path(elir_edge.__file__).resolve().is_relative_to(args.code.resolve()), elir_edge.__file__
    import elir_edge.tensorrt_engine as te

    work = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    lq = rng.random((1, 3, 64, 64), dtype=np.float32)
    eps = rng.standard_normal((1, 16, 8, 8)).astype(np.float32)
    results = []

    def scenario(number, what, body):
        mp = pytest.MonkeyPatch()
        try:
            verdict = body(mp)
        except Exception as e:  # what the old code raised is the finding
            verdict = f"FAILS: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            if not isinstance(e, (te.EngineUnavailable, AttributeError, NotImplementedError, TypeError)):
                traceback.print_exc()
        finally:
            mp.undo()
        results.append((number, what, verdict))
        print(f"{number:>2}  {what}\n    {verdict}", flush=True)

    def gpu(mp, **kw):
        fake = fake_gpu.FakeCuda(**kw)
        trt = fake_gpu.FakeTrt(fake, name="tensorrt")
        bindings = type(sys)("cuda.bindings")
        bindings.runtime, bindings.__version__ = fake, "13.5.0"
        mp.setitem(sys.modules, "cuda.bindings", bindings)
        mp.setitem(sys.modules, "cuda.bindings.runtime", fake)
        mp.setitem(sys.modules, "tensorrt", trt)
        env = {"tensorrt": trt.__version__, "gpu_name": "NVIDIA GeForce RTX 2080 Ti",
               "gpu_compute_capability": "7.5"}
        mp.setattr(te, "environment", lambda: env)  # the old probe is a subprocess: defects 10 and 11
        return fake, trt, env

    def engine(env, io=None, dynamic=False):
        folder = work / f"e{len(results)}"
        shutil.copytree(args.export, folder)
        plan = fake_gpu.make_plan((folder / "model.onnx").read_bytes(), io, dynamic)
        (folder / "model.engine").write_bytes(plan)
        (folder / "model.engine.json").write_text(json.dumps({**env, "onnx": "model.onnx"}))
        return folder / "model.engine"

    def d2(mp):
        _, _, env = gpu(mp)
        te.TrtRunner(engine(env, io={"lq": "HALF", "eps": "HALF", "hq": "HALF"}))(lq, eps)
        return "passes"

    def d4(mp):
        _, _, env = gpu(mp, enqueue_ms=5.0, kernel_ms=20.0)
        t = te.TrtRunner(engine(env)).device_timed(lq, eps)
        ok = abs(t["compute_ms"] - 20.0) <= 0.5
        return ("passes" if ok else "FAILS") + f": compute {t['compute_ms']:.1f} ms for 20 ms of kernels " \
            "(the test wants 20 +- 0.5: the host's 5 ms enqueue is inside the events)"

    def d5(mp):
        fake, _, env = gpu(mp)
        fake.faults.add("enqueue_fails_in_capture")
        try:
            te.TrtRunner(engine(env), cuda_graph=True)
        except te.EngineUnavailable:
            pass
        capturing = [h for h, s in fake.streams.items() if s["capture"] is not None]
        return ("FAILS" if capturing else "passes") + f": after the failed enqueue {len(capturing)} stream(s) " \
            "still in capture mode (the test wants none)"

    def d6(mp):
        fake, _, env = gpu(mp)
        before = fake.live()
        runner = te.TrtRunner(engine(env), cuda_graph=True)
        runner(lq, eps)
        runner.close()
        after = fake.live()
        leaked = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        try:
            runner(lq, eps)
            later = "a run after close() was accepted"
        except Exception as e:
            later = f"a run after close() raised {type(e).__name__}"
        return ("FAILS" if leaked else "passes") + f": left after close(): {leaked}; {later}"

    def d7(mp):
        fake, _, env = gpu(mp)
        fake.faults.add("address_refused")
        te.TrtRunner(engine(env))
        return "FAILS: set_tensor_address refused every address, the runner went on without a word " \
            "(no_context, the other half of the test, ends in AttributeError: see below)"

    def d7b(mp):
        fake, _, env = gpu(mp)
        fake.faults.add("no_context")
        te.TrtRunner(engine(env))
        return "passes"

    def d8(mp):
        _, _, env = gpu(mp)
        te.TrtRunner(engine(env, dynamic=True))(lq, eps)
        return "passes"

    def d10(mp):
        gpu(mp, driver=12080)
        te.gpu_info()  # the test wants: "... supports CUDA 12 ... cuda-bindings 13.5.0 need CUDA 13 ..."
        return "passes"

    def d11(mp):
        gpu(mp)
        started = []
        real_run = subprocess.run
        mp.setattr(subprocess, "run", lambda *a, **k: started.append(a) or real_run(*a, **k))
        try:
            te.gpu_info()
        except te.EngineUnavailable:
            pass
        return ("FAILS" if started else "passes") + f": {len(started)} probe subprocess(es) started " \
            "(the test wants the probe in process, once)"

    def builder(mp, version, fp16_flag, cache_fits=True):
        gpu(mp)
        trt = fake_gpu.fake_tensorrt_builder(version, fp16_flag, cache_fits)
        trt.OnnxParser.parse = lambda self, data: True  # the old code hands the parser bytes
        mp.setitem(sys.modules, "tensorrt", trt)
        mp.setattr(te, "environment", lambda: {"tensorrt": version})
        return trt

    def d1(mp):
        builder(mp, "10.8.0", True)
        m = te.build_engine(args.export / "model.onnx", work / "d1.trt", fp16=True)
        return f"passes ({m['precision']})"

    def d3(mp):
        builder(mp, "10.8.0", True, cache_fits=False)
        shutil.copy(args.export / "model.onnx", work / "d3.onnx")
        (work / "d3.timing_cache").write_bytes(b"foreign cache")
        te.build_engine(work / "d3.onnx", work / "d3.trt")
        return "passes"

    def d9(mp):
        mp.setitem(sys.modules, "tensorrt", real_rtx)  # NVIDIA's own parser, as the test uses
        mp.setattr(te, "environment", lambda: {"tensorrt": real_rtx.__version__})
        model = onnx.load(str(args.export / "model.onnx"))
        (work / "ext").mkdir()
        onnx.save(model, str(work / "ext" / "ext.onnx"), save_as_external_data=True, location="ext.weights",
                  size_threshold=0)
        mp.chdir(work)  # the user's shell is elsewhere: weights are found only relative to the file
        te.build_engine(work / "ext" / "ext.onnx", work / "ext" / "ext.engine")
        return "passes"

    for number, what, body in [
            (1, "STRONGLY_TYPED from 10.0; FP16 builder flag on TensorRT 10.8", d1),
            (2, "fp16 inputs and outputs", d2),
            (3, "a timing cache made on another GPU", d3),
            (4, "compute time excludes the host's enqueue", d4),
            (5, "a failed enqueue inside CUDA-graph capture", d5),
            (6, "close() gives back streams, events, graph exec, memory; later runs refused", d6),
            (7, "set_tensor_address refused", d7),
            (7, "create_execution_context returns None", d7b),
            (8, "a --dynamic engine (dims -1)", d8),
            (9, "an ONNX with external weights, built from another folder", d9),
            (10, "CUDA 12 driver with cuda-bindings 13", d10),
            (11, "the GPU probe", d11)]:
        scenario(number, what, body)
    os.chdir(HERE)
    shutil.rmtree(work, ignore_errors=True)
    failed = sum(r[2].startswith("FAILS") for r in results)
    print(f"\n{failed} of {len(results)} scenarios fail on {args.code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
