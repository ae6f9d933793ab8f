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


def test_a_node_gone_before_its_check_is_left_out_with_a_warning(ray, monkeypatch):
    node = _node(ray)
    gone = {**node, "NodeID": "ab" * 28, "NodeManagerAddress": "10.1.2.3"}
    real = ray.nodes
    monkeypatch.setattr(ray, "nodes", lambda: real() + [gone])  # listed, then gone when its check is placed
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        fleet = rd.check_nodes(ray, rd.Work(Opens, {}), [])
    assert [n["NodeID"] for n in fleet.usable] == [node["NodeID"]] and fleet.excluded == [gone["NodeID"]]
    assert [str(w.message) for w in said] == \
        ["the Ray node 10.1.2.3 (abababab): left the cluster during the check: left out of this run"]
    assert fleet.label_selector() == {rd.NODE_ID: f"!in({'ab' * 28})"}
