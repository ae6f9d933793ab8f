"""The check every node passes before a `--ray` run, against a real one-node Ray started here for the module (1 CPU):
which nodes take part, and the one line for a run no node can take, each reason word for word. (tests/test_ray.py
runs the same check on a three-node cluster inside whole restore runs; these take seconds, not minutes.)"""

from __future__ import annotations

import sys
import warnings

import pytest

import elir_edge.cluster.ray_data as rd
from elir_edge.errors import UserError


@pytest.fixture(scope="module")
def ray():
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the actors below travel by value
    yield ray
    ray.shutdown()


class Opens:
    def __init__(self, settings):
        self.refused = settings.get("refused")


class Crashes:
    def __init__(self, settings):
        import os

        os._exit(3)  # a runtime that takes its process down opening the artifact


class Slow:
    def __init__(self, settings):
        import time

        time.sleep(settings["sleep"])
        self.refused = None


def _node(ray) -> dict:
    (node,) = [n for n in ray.nodes() if n["Alive"]]
    return node


def _names(node: dict) -> str:
    return f"the Ray node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"


def test_a_node_that_can_take_part_is_the_fleet_and_the_marker_goes(ray, tmp_path):
    image = tmp_path / "in.png"
    image.write_bytes(b"x")
    fleet = rd.check_nodes(ray, rd.Work(Opens, {}), [image], writes=tmp_path)
    assert [n["NodeID"] for n in fleet.usable] == [_node(ray)["NodeID"]] and fleet.excluded == []
    assert [p.name for p in tmp_path.iterdir()] == ["in.png"]  # the reach marker is removed after the check


def test_no_node_with_a_workers_resources_is_one_line(ray, tmp_path):
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Opens, {}, num_gpus=1), [])
    assert str(e.value) == "no node of the Ray cluster has 1 GPU for a worker: add such nodes, or pass fewer --threads"
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Opens, {}, num_cpus=2), [])
    assert str(e.value) == "no node of the Ray cluster has 2 CPU for a worker: add such nodes, or pass fewer --threads"


def test_a_run_no_node_can_take_is_one_line_naming_the_node_and_why(ray, tmp_path):
    node, gone = _node(ray), tmp_path / "not-here.png"
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Opens, {}), [gone], writes=tmp_path)
    assert str(e.value) == f"{_names(node)}: cannot read {gone}: {rd.SHARED}: no node can take part"
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Opens, {"refused": "computes model_int8.onnx wrongly"}), [])
    assert str(e.value) == f"{_names(node)}: computes model_int8.onnx wrongly: no node can take part"
    assert list(tmp_path.iterdir()) == []  # nor is the marker left when the check refuses the run


def test_a_node_that_does_not_answer_in_time_is_named(ray):
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Slow, {"sleep": 5}), [], timeout_s=0.5)
    assert str(e.value) == (f"{_names(_node(ray))}: did not answer the check within 0.5 s: see `ray status` and the "
                            "node's raylet log: no node can take part")


def test_a_node_whose_check_dies_is_named_not_a_traceback(ray):
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Crashes, {}), [])
    said = str(e.value)
    assert said.startswith(f"{_names(_node(ray))}: its check's worker died (") and "\n" not in said
    assert "worker died unexpectedly" in said  # Ray's own last line, not a placeholder
    assert said.endswith("): run elir-edge there alone to see why: no node can take part")


def test_a_node_without_elir_edge_is_named_with_the_install_line(ray, tmp_path, monkeypatch):
    (tmp_path / "driver_only.py").write_text("def check(marker, token, reads, work):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import driver_only  # a module only the driver has: the node's worker cannot load the check

    monkeypatch.setattr(rd, "_check_node", driver_only.check)
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Opens, {}), [])
    from elir_edge import __version__

    assert str(e.value) == (f"{_names(_node(ray))}: cannot import elir-edge: pip install 'elir-edge[ray]=="
                            f"{__version__}' on every node (the same version as the driver's): no node can take part")


def test_a_node_that_sees_another_output_folder_is_named(ray, tmp_path, monkeypatch):
    """The driver writes a token in the output folder and each node must read it back; a node that reads other
    bytes there (another machine's folder of that name) cannot take part. Played here by the driver writing other
    bytes than the token it sends."""
    real = rd.Path.write_text
    monkeypatch.setattr(rd.Path, "write_text", lambda self, data, *a, **k: real(self, "another folder", *a, **k))
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Opens, {}), [], writes=tmp_path)
    assert str(e.value) == (f"{_names(_node(ray))}: does not see the output folder {tmp_path} the driver sees: "
                            f"{rd.SHARED}: no node can take part")


class Holds:
    def ping(self):
        return True


def test_a_node_busy_with_other_work_still_answers(ray):
    """The check takes no CPU: a node whose CPUs another job's actor holds answers at once, not when it ends."""
    holder = ray.remote(num_cpus=1)(Holds).remote()
    try:
        assert ray.get(holder.ping.remote(), timeout=60)  # the node's one CPU is taken
        assert rd.check_nodes(ray, rd.Work(Opens, {}), [], timeout_s=30).excluded == []
    finally:
        ray.kill(holder)


def test_when_every_node_fails_the_line_names_the_first_and_counts_the_rest(ray, tmp_path, monkeypatch):
    node, gone = _node(ray), tmp_path / "not-here.png"
    others = [{**node, "NodeID": f"{i}a" * 28, "NodeManagerAddress": f"10.1.2.{i}"} for i in (3, 4)]
    real = ray.nodes
    monkeypatch.setattr(ray, "nodes", lambda: real() + others)  # two more nodes, gone when their checks are placed
    with pytest.raises(UserError) as e:
        rd.check_nodes(ray, rd.Work(Opens, {}), [gone])
    assert str(e.value) == f"{_names(node)}: cannot read {gone}: {rd.SHARED} (and 2 more nodes): no node can take part"
    monkeypatch.setattr(ray, "nodes", lambda: real() + others[:1])
    with pytest.raises(UserError, match=r": cannot read .* \(and 1 more nodes\): no node can take part$"):
        rd.check_nodes(ray, rd.Work(Opens, {}), [gone])


def test_a_node_gone_before_its_check_is_left_out_with_a_warning(ray, monkeypatch):
    node = _node(ray)
    gone = {**node, "NodeID": "ab" * 28, "NodeManagerAddress": "10.1.2.3"}
    dead = {**node, "NodeID": "cd" * 28, "Alive": False, "alive": False}  # Ray lists a dead node: not checked
    real = ray.nodes
    monkeypatch.setattr(ray, "nodes", lambda: real() + [gone, dead])  # listed, then gone when its check is placed
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        fleet = rd.check_nodes(ray, rd.Work(Opens, {}), [])
    assert [n["NodeID"] for n in fleet.usable] == [node["NodeID"]] and fleet.excluded == [gone["NodeID"]]
    assert [str(w.message) for w in said] == \
        ["the Ray node 10.1.2.3 (abababab): left the cluster during the check: left out of this run"]
    assert fleet.label_selector() == {rd.NODE_ID: f"!in({'ab' * 28})"}


class Echo:
    def __init__(self, settings):
        self.refused = None

    def __call__(self, batch):
        return rd.batch_rows(batch, lambda item: ({"index": item["index"]}, b""), lambda item, why: ({}, b""))


def _five(shard):
    return [{"index": i} for i in range(5)]


def test_a_pool_given_fewer_blocks_than_actors_says_nothing_the_user_cannot_act_on(ray):
    """Five items planned on the cluster come as one block; with two actors (their sizes unknown here) Ray Data
    warns that the pool "only received 1 input(s)": the block sizes are elir-edge's to choose, not the user's."""
    work = rd.Work(Echo, {}, num_cpus=0.5)  # two actors fit on the one CPU
    fleet = rd.check_nodes(ray, work, [])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        rows = list(rd.map_actors(ray, rd.Sharded([{"index": 0}], _five), work, fleet, 2, lambda item, why: ({}, b"")))
    assert sorted(r["index"] for r, _ in rows) == list(range(5))
    assert [str(w.message) for w in said if "only received" in str(w.message)] == []


def test_a_ray_that_is_this_machine_alone_needs_no_node_check(ray, tmp_path, monkeypatch):
    """A Ray started here whose one node is the driver's: restore's driver has read the inputs, made the output
    folder and probed its CPU file on this machine, so the node check is not run again; an engine (the driver
    never opened it), a Ray joined rather than started, or a node that cannot hold a worker still are."""
    import elir_edge.restore.on_ray as on_ray
    from elir_edge.restore.image import Settings

    fleet = rd.this_machine(ray, rd.Work(Opens, {}))
    assert [n["NodeID"] for n in fleet.usable] == [_node(ray)["NodeID"]] and fleet.excluded == []
    with pytest.raises(UserError, match="no node of the Ray cluster has 2 CPU"):
        rd.this_machine(ray, rd.Work(Opens, {}, num_cpus=2))
    checked, used = [], []
    monkeypatch.setattr(rd, "check_nodes", lambda ray, work, *a: checked.append(work) or fleet)
    monkeypatch.setattr(on_ray, "map_actors", lambda ray, items, work, fleet, *a: used.append(fleet) or iter(()))
    for artifact, started_here in (("m.onnx", True), ("m.onnx", False), ("m.engine", True)):
        s = Settings(str(tmp_path / artifact), "ab" * 32, "denoising", None, 0, 0, 1, "ort", 1)
        list(on_ray.restore_on_ray(ray, s, [], False, [], tmp_path, 1, started_here))
    assert len(checked) == 2 and [w.num_gpus for w in checked] == [0, 1] and len(used) == 3


def test_bench_on_a_ray_started_here_skips_the_node_check_as_restore_does(monkeypatch):
    """bench --ray decides its nodes as restore does: a Ray it started here (`--ray` alone) is this machine, a Ray
    it joined has every node checked."""
    import contextlib

    import elir_edge.bench.on_ray as bench_ray
    from elir_edge.bench.options import BenchOptions

    asked = []
    monkeypatch.setattr(bench_ray, "cluster", lambda address: contextlib.nullcontext("ray"))
    monkeypatch.setattr(bench_ray, "nodes_for", lambda ray, work, started_here, reads: asked.append(started_here))
    monkeypatch.setattr(bench_ray, "map_actors", lambda *a: iter(()))
    monkeypatch.setattr(bench_ray, "actor_settings", lambda *a: {})
    for address in ("local", "auto"):
        opts = BenchOptions(engines=[], ray=address, actors=1)
        list(bench_ray.score_on_ray(opts, [], None, [], None, None))
    assert asked == [True, False]
