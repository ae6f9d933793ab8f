"""The Ray layer's own decisions, checked without a cluster (fast): which nodes fit and how many actors they hold,
the scheduling labels, which shards are planned again, what a node says when it cannot take part, one line for
an address that does not answer, and map_actors' retry pass over Ray Data's own classes with the execution
replaced by a stand-in that keeps Dataset.map_batches' signature. The expectations are worked out by hand."""

from __future__ import annotations

import inspect
import json
import logging
import socket
import warnings
from collections import Counter

import numpy as np
import pytest

import elir_edge.cluster.ray_data as rd
from elir_edge.errors import UserError


def _node(node_id: str, cpu: float = 0, gpu: float = 0) -> dict:
    return {"NodeID": node_id, "Resources": {**({"CPU": cpu} if cpu else {}), **({"GPU": gpu} if gpu else {})}}


class _Actor:
    def __init__(self, settings):
        self.refused = settings.get("refused")

    def __call__(self, batch):
        return batch


def test_actors_per_fleet_worked_out_by_hand():
    fleet = rd.Fleet([_node("a", cpu=3, gpu=2), _node("b", cpu=1), _node("c", cpu=2.5, gpu=1)], [])
    assert fleet.actors(rd.Work(_Actor, {}, num_cpus=1)) == 3 + 1 + 2
    assert fleet.actors(rd.Work(_Actor, {}, num_cpus=2)) == 1 + 0 + 1
    assert fleet.actors(rd.Work(_Actor, {}, num_cpus=0.5)) == 6 + 2 + 5
    assert fleet.actors(rd.Work(_Actor, {}, num_cpus=1, num_gpus=1)) == 2 + 0 + 1  # one per GPU, CPUs aside
    assert rd.Fleet([_node("a", cpu=1)], []).actors(rd.Work(_Actor, {}, num_cpus=4)) == 1  # never none
    assert rd.Fleet([_node("a", cpu=8)], []).actors(rd.Work(_Actor, {}, num_gpus=1)) == 1


def test_which_nodes_fit_one_actor():
    work, gpu_work = rd.Work(_Actor, {}, num_cpus=2), rd.Work(_Actor, {}, num_cpus=1, num_gpus=1)
    assert rd._fits(_node("a", cpu=2), work) and not rd._fits(_node("a", cpu=1.5), work)
    assert not rd._fits({"NodeID": "a"}, work)  # a node that reports no resources
    assert rd._fits(_node("a", cpu=1, gpu=1), gpu_work) and not rd._fits(_node("a", cpu=8), gpu_work)
    assert not rd._fits(_node("a", gpu=4), gpu_work)  # a GPU but no CPU


class _Cluster:
    """Ray's two calls this_machine makes: ray.nodes() and ray.get_runtime_context().get_node_id()."""

    def __init__(self, nodes: list[dict], driver: str):
        self._nodes, self._driver = nodes, driver

    def nodes(self) -> list[dict]:
        return self._nodes

    def get_runtime_context(self):
        return type("RuntimeContext", (), {"get_node_id": lambda _: self._driver})()


def test_only_a_cluster_that_is_the_drivers_node_alone_skips_the_node_check():
    work, here, there = rd.Work(_Actor, {}), {**_node("here", cpu=2), "Alive": True}, {**_node("there", cpu=2), "Alive": True}
    assert rd.this_machine(_Cluster([here], "here"), work).usable == [here]
    assert rd.this_machine(_Cluster([here, {**there, "Alive": False}], "here"), work).usable == [here]  # a dead one
    assert rd.this_machine(_Cluster([here, there], "here"), work) is None  # another node: every node is checked
    assert rd.this_machine(_Cluster([there], "here"), work) is None  # a node, but not the driver's
    assert rd.starts_here("local") and rd.starts_here(None) and not rd.starts_here("auto")
    assert not rd.starts_here("127.0.0.1:6379")


def test_scheduling_labels_keep_work_on_the_checked_nodes():
    fleet = rd.Fleet([_node("n1", cpu=1), _node("n2", cpu=1)], ["x9", "y8"])
    assert fleet.label_selector() == {"ray.io/node-id": "!in(x9,y8)"}
    assert fleet.checked() == {"ray.io/node-id": "in(n1,n2)"}
    assert rd.Fleet([_node("n1", cpu=1)], []).label_selector() is None  # nothing left out: no selector at all


def test_only_the_shards_with_rows_missing_are_planned_again():
    planned = {0: 2, 1: 3, 2: 1, 3: 2}

    def plan(shard):
        return [{"index": 10 * shard["index"] + j} for j in range(planned[shard["index"]])]

    sharded = rd.Sharded([{"index": s} for s in planned], plan)
    got, made = Counter({0: 2, 1: 1, 3: 2}), {0: 2, 1: 3, 3: 2}  # shard 1 lost two rows, shard 2 sent none
    assert sharded.missing(got, made) == [{"index": 10, "shard": 1, "of": 3}, {"index": 11, "shard": 1, "of": 3},
                                          {"index": 12, "shard": 1, "of": 3}, {"index": 20, "shard": 2, "of": None}]
    assert sharded.missing(Counter(planned), planned) == []
    empty = rd.Sharded([{"index": 0}], lambda s: [])  # a folder with nothing to do, its one row of nothing back
    assert empty.missing(Counter({0: 0}), {0: 0}) == []


def test_a_planned_shard_marks_each_item_with_its_shard_and_count():
    rows = rd._planned(lambda s: [{"index": 7, "source": "a.png"}, {"index": 8, "source": "b.png"}],
                       {"shard": json.dumps({"index": 4, "folder": "/in/x"})})
    assert [json.loads(r["item"]) for r in rows] == [{"index": 7, "source": "a.png", "shard": 4, "of": 2},
                                                     {"index": 8, "source": "b.png", "shard": 4, "of": 2}]


def test_an_item_keeps_its_shard_through_work_and_failure():
    seen = []

    def work(item):
        seen.append(dict(item))
        if item["index"] == 2:
            raise ValueError("x" * 300)
        return {"index": item["index"], "status": "restored"}, b"png"

    def failed(item, why):
        return {"index": item["index"], "status": "failed", "error": why}, b""

    assert rd._one({"index": 1, "shard": 5, "of": 9}, work, failed) == \
        ({"index": 1, "status": "restored", "shard": 5, "of": 9}, b"png")
    row, blob = rd._one({"index": 2, "shard": 5, "of": 9}, work, failed)
    assert seen == [{"index": 1}, {"index": 2}]  # work never sees the driver's bookkeeping
    assert row == {"index": 2, "status": "failed", "shard": 5, "of": 9,
                   "error": f"ValueError: {'x' * 160} (on a Ray worker)"} and blob == b""
    assert rd._one({"index": 3}, work, failed) == ({"index": 3, "status": "restored"}, b"png")


def test_what_a_node_says_when_it_cannot_take_part(tmp_path):
    readable = tmp_path / "in.png"
    readable.write_bytes(b"x")
    marker = tmp_path / "out" / ".elir-edge-reach-t"
    marker.parent.mkdir()
    assert rd._sees(None, "t", [str(readable)]) is None
    gone = tmp_path / "nowhere.png"
    assert rd._sees(None, "t", [str(readable), str(gone)]) == f"cannot read {gone}: {rd.SHARED}"
    unseen = f"does not see the output folder {marker.parent} the driver sees: {rd.SHARED}"
    assert rd._sees(str(marker), "t", []) == unseen  # no marker: another folder of that name
    marker.write_text("another run's token")
    assert rd._sees(str(marker), "t", []) == unseen
    marker.write_text("t")
    assert rd._sees(str(marker), "t", [str(readable)]) is None
    ok = rd.Work(_Actor, {})
    assert rd._check_node(str(marker), "t", [str(gone)], ok) == f"cannot read {gone}: {rd.SHARED}"
    assert rd._check_node(str(marker), "another token", [], ok) == \
        f"does not see the output folder {marker.parent} the driver sees: {rd.SHARED}"
    assert rd._check_node(str(marker), "t", [], ok) is None
    assert rd._check_node(None, "t", [], rd.Work(_Actor, {"refused": "no VNNI"})) == "no VNNI"

    class Broken:
        def __init__(self, settings):
            raise OSError("y" * 200)

    assert rd._check_node(None, "t", [], rd.Work(Broken, {})) == f"cannot start a worker (OSError: {'y' * 160})"


def test_a_folder_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    marker = tmp_path / ".elir-edge-reach-t"
    marker.write_text("t")
    monkeypatch.setattr(rd.os, "access", lambda p, mode: mode != rd.os.W_OK)  # root can write anywhere here
    assert rd._sees(str(marker), "t", []) == f"cannot write to the output folder {tmp_path}: {rd.SHARED}"


def test_the_bottom_line_of_a_ray_error():
    assert rd._last_line(RuntimeError("ray::MapWorker (pid=3)\n  File x\n\n  OSError: disk full  \n\n")) == \
        "OSError: disk full"
    assert rd._last_line(RuntimeError("z" * 300)) == "z" * 200
    assert rd._last_line(TimeoutError()) == "TimeoutError"


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_an_address_that_does_not_answer_is_one_line_at_once():
    port = _closed_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(UserError) as e:
            rd.precheck(address, timeout_s=2)
        assert str(e.value).startswith(f"cannot reach the Ray cluster at {address} (") and "\n" not in str(e.value)
        assert "Connection refused" in str(e.value)
        assert str(e.value).endswith("start it with `ray start --head` and pass its address (or `auto`), or run "
                                     "`--ray` alone to start one here")


def test_an_address_that_answers_or_is_rays_to_find_is_not_refused(monkeypatch):
    import ray

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert rd.precheck(f"127.0.0.1:{listening.getsockname()[1]}") is ray
    asked, closed = [], []

    class Connection:
        def close(self):
            closed.append(True)

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: asked.append((a, k)) or Connection())
    for address in ("auto", rd.LOCAL, None, "head-node", "head-node:client", ":6379"):  # Ray resolves these
        assert rd.precheck(address) is ray
    assert asked == []
    assert rd.precheck("head-node:6379") is ray and closed == [True]
    assert asked == [((("head-node", 6379),), {"timeout": 5.0})]  # a silent host is given 5 s, not the OS's minutes


def test_an_ipv6_address_is_checked_without_its_brackets():
    import ray

    listening = socket.socket(socket.AF_INET6)
    try:
        listening.bind(("::1", 0))
    except OSError:
        listening.close()
        pytest.skip("this machine has no IPv6 loopback")
    with listening:  # Ray writes an IPv6 host in brackets
        listening.listen()
        assert rd.precheck(f"[::1]:{listening.getsockname()[1]}") is ray
        closed = socket.socket(socket.AF_INET6)
        closed.bind(("::1", 0))
        port = closed.getsockname()[1]
        closed.close()
    with pytest.raises(UserError, match=r"cannot reach the Ray cluster at \[::1\]:\d+ \(.*Connection refused"):
        rd.precheck(f"[::1]:{port}")


def test_without_ray_the_install_line_is_named(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(UserError) as e:
        rd.precheck("auto")
    assert str(e.value) == "--ray needs Ray, which is not installed: pip install 'elir-edge[ray]'"


def test_a_version_mismatch_is_one_whole_line_and_only_a_mismatch_is_named_so():
    from ray._private.utils import check_version_info

    with pytest.raises(RuntimeError) as e:  # Ray's own check, as ray.init runs it against the cluster's GCS
        check_version_info({"ray_version": "2.9.0", "python_version": "3.10.4"}, "this node")
    here = __import__("ray").__version__, __import__("platform").python_version()
    assert rd.refusal("10.0.0.5:6379", e.value) == (
        f"the Ray cluster at 10.0.0.5:6379 runs Ray 2.9.0 on Python 3.10.4, this machine Ray {here[0]} on Python "
        f"{here[1]}: install the cluster's versions here (pip install 'ray[data]==2.9.0' on Python 3.10.4), or "
        "submit the run to the cluster (`ray job submit -- elir-edge restore ... --ray auto`)")
    other = ConnectionError("handshake failed\n - Ray: 2.9.0 Python: 3.10.4\n - Ray: 2.60.0 Python: 3.11.7")
    assert rd.refusal("h:1", other).startswith("cannot reach the Ray cluster at h:1 (handshake failed)")


def test_an_unnamed_refusal_keeps_the_first_line_of_rays_message():
    line = rd.refusal("10.0.0.5:6379", ConnectionError("Could not find any running Ray instance.\nmore"))
    assert line == ("cannot reach the Ray cluster at 10.0.0.5:6379 (Could not find any running Ray instance.): start "
                    "it with `ray start --head` and pass its address (or `auto`), or run `--ray` alone to start one "
                    "here")
    assert rd.refusal("h:1", TimeoutError()).startswith("cannot reach the Ray cluster at h:1 (TimeoutError): ")
    assert "(" + "w" * 160 + ")" in rd.refusal("h:1", ValueError("w" * 400))


def test_the_console_shows_ray_datas_warnings_and_nothing_else():
    def record(name, level, exc=False):
        r = logging.LogRecord(name, level, __file__, 1, "m", None, (ValueError, ValueError("v"), None) if exc else None)
        return rd._Console().filter(r)

    assert record("ray.data._internal.execution", logging.WARNING)
    assert record("ray.data", logging.ERROR)
    assert not record("ray.data", logging.INFO)
    assert not record("ray.data", logging.WARNING, exc=True)  # a dropped block's traceback: the rows say it
    assert not record("ray.data._internal.progress.progress_bar", logging.WARNING)


class _Stand:
    """Ray Data's execution, replaced: Dataset.map_batches' own signature binds the arguments (a misnamed one fails
    as it would in Ray), the actor class runs here one batch per block, and the blocks in `drop` are the ones
    Ray gave up on (their rows never come back), pass by pass."""

    def __init__(self, drop: list[set[int]]):
        import ray.data

        self.drop, self.passes = drop, []
        self.signature = inspect.signature(ray.data.Dataset.map_batches)

    def from_items(self, items, override_num_blocks=None):
        if items and "shard" in items[0]:  # shards, each planned by flat_map into a block of its own
            self.passes.append({"shards": [json.loads(i["shard"]) for i in items], "blocks": override_num_blocks})
        else:
            self.passes.append({"items": [json.loads(i["item"]) for i in items], "blocks": override_num_blocks})
        return self

    def flat_map(self, fn, **kwargs):
        import ray.data

        inspect.signature(ray.data.Dataset.flat_map).bind(None, fn, **kwargs)
        p = self.passes[-1]
        planned = [[json.loads(r["item"]) for r in fn({"shard": json.dumps(s)})] for s in p.pop("shards")]
        p.update(planning=kwargs, items=[i for shard in planned for i in shard], shard_blocks=p["blocks"],
                 blocks=len(planned), per_block=[len(shard) for shard in planned])
        return self

    def map_batches(self, fn, **kwargs):
        from ray.data.dataset import _warn_on_ray_remote_args

        _warn_on_ray_remote_args(self.signature.bind(None, fn, **kwargs).arguments.get("ray_remote_args"))
        self.passes[-1].update(kwargs)
        self.fn = fn
        return self

    def iter_rows(self):
        p = self.passes[-1]
        actor = self.fn(**p["fn_constructor_kwargs"])
        items, n = p["items"], p["blocks"]
        sizes = p.get("per_block") or [-(-len(items) // n)] * n
        dropped = self.drop[len(self.passes) - 1] if len(self.passes) <= len(self.drop) else set()
        for b in range(n):
            block = items[sum(sizes[:b]):sum(sizes[:b + 1])]
            if block and b not in dropped:
                out = actor({"item": np.array([json.dumps(i) for i in block], dtype=object)})
                yield from ({"row": r, "blob": bl} for r, bl in zip(out["row"], out["blob"]))


class _Echo:
    def __init__(self, settings):
        self.tag = settings["tag"]

    def __call__(self, batch):
        return rd.batch_rows(batch, lambda item: ({"index": item["index"], "by": self.tag}, bytes([item["index"]])),
                             lambda item, why: ({"index": item["index"], "failed": why}, b""))


def _run(monkeypatch, stand: _Stand, n: int, actors: int, gpus: float = 0) -> list[tuple[dict, bytes]]:
    import ray

    monkeypatch.setattr(ray.data, "from_items", stand.from_items)
    ctx = ray.data.DataContext.get_current()  # Ray's defaults, whatever an earlier test's run left
    for name, default in (("max_errored_blocks", 0), ("max_consecutive_actor_init_deaths", 10),
                          ("enable_progress_bars", True), ("print_on_execution_start", True)):
        monkeypatch.setattr(ctx, name, default)
    work = rd.Work(_Echo, {"tag": "w"}, num_cpus=1, num_gpus=gpus)
    fleet = rd.Fleet([_node("a", cpu=actors)], ["gone"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what Ray would warn a user of (the stand calls its own warning)
        return list(rd.map_actors(ray, [{"index": i} for i in range(n)], work, fleet, actors,
                                  lambda item, why: ({"index": item["index"], "failed": why}, b"")))


def test_a_dropped_block_is_tried_again_item_by_item_and_counted_once(monkeypatch):
    import ray

    stand = _Stand(drop=[{1}, {4}])  # pass 1 loses block 1 (items 14-27); pass 2 loses item 18 again
    rows = _run(monkeypatch, stand, 40, 2)
    first, second = stand.passes
    assert first["blocks"] == 3 and first["batch_size"] == 1  # 40 items: blocks of 16 at most
    assert first["compute"].min_size == first["compute"].max_size == 2
    assert first["compute"].max_tasks_in_flight_per_actor != 1  # Ray's own default for whole blocks
    assert first["max_restarts"] == -1 and first["max_task_retries"] == rd.RETRIES == 3
    assert first["label_selector"] == {"ray.io/node-id": "!in(gone)"} and first["num_cpus"] == 1
    assert first["num_gpus"] is None and first["fn_constructor_kwargs"] == {"settings": {"tag": "w"}}
    assert [i["index"] for i in second["items"]] == list(range(14, 28)) and second["blocks"] == 14
    assert second["compute"].min_size == 2 and second["compute"].max_tasks_in_flight_per_actor == 1
    assert sorted(r["index"] for r, _ in rows) == list(range(40))  # each item once
    done = {r["index"]: (r, b) for r, b in rows}
    assert all(done[i] == ({"index": i, "by": "w"}, bytes([i])) for i in range(40) if i != 18)
    assert done[18] == ({"index": 18, "failed": "its Ray worker died on every try (4): an image that crashes the "
                                                 "runtime (or nodes lost): run it alone without --ray to see why"}, b"")
    ctx = ray.data.DataContext.get_current()
    assert ctx.max_errored_blocks == -1 and ctx.max_consecutive_actor_init_deaths == 3
    assert not ctx.enable_progress_bars and not ctx.print_on_execution_start  # the driver shows its own bar


def test_a_run_where_nothing_is_lost_makes_one_pass(monkeypatch):
    stand = _Stand(drop=[])
    rows = _run(monkeypatch, stand, 5, 4, gpus=1)
    assert len(stand.passes) == 1 and stand.passes[0]["blocks"] == 4  # fewer items than a block: one per actor
    assert stand.passes[0]["num_gpus"] == 1  # an engine's actor takes its GPU
    assert [r for r, _ in sorted(rows, key=lambda rb: rb[0]["index"])] == [{"index": i, "by": "w"} for i in range(5)]


def test_a_retried_blocks_rows_count_once(monkeypatch):
    """Ray retries a block whose worker died: rows that came back from the first try may come back again."""
    stand = _Stand(drop=[])
    stand.iter_rows_real = stand.iter_rows

    def twice():
        rows = list(stand.iter_rows_real())
        yield from rows[:3]
        yield from rows  # the block retried: its first three rows again
    stand.iter_rows = twice
    rows = _run(monkeypatch, stand, 6, 1)
    assert sorted(r["index"] for r, _ in rows) == list(range(6))


def test_a_planned_run_plans_again_only_the_shard_whose_block_was_lost(monkeypatch):
    import ray

    sizes = {0: 3, 1: 2, 2: 4}
    asked = []

    def plan(shard):
        asked.append(shard["index"])
        return [{"index": 10 * shard["index"] + j} for j in range(sizes[shard["index"]])]

    stand = _Stand(drop=[{1}])  # shard 1's block never comes back
    monkeypatch.setattr(ray.data, "from_items", stand.from_items)
    monkeypatch.setattr(ray.data.DataContext.get_current(), "target_max_block_size", 128 * 1024 * 1024)
    fleet = rd.Fleet([_node("n1", cpu=2)], ["gone"])
    rows = list(rd.map_actors(ray, rd.Sharded([{"index": s} for s in sizes], plan), rd.Work(_Echo, {"tag": "w"}),
                              fleet, 2, lambda item, why: ({"index": item["index"], "failed": why}, b"")))
    first, second = stand.passes
    assert first["planning"] == {"num_cpus": 0, "label_selector": {"ray.io/node-id": "in(n1)"}}
    assert first["shard_blocks"] == 3  # a block per shard: each shard's listing a task of its own
    assert ray.data.DataContext.get_current().target_max_block_size == 16 * 256
    assert asked == [0, 1, 2, 1]  # each shard planned on the cluster, then shard 1 again by the driver
    assert [i["index"] for i in second["items"]] == [10, 11] and second["blocks"] == 2
    assert sorted(r["index"] for r, _ in rows) == [0, 1, 2, 10, 11, 20, 21, 22, 23]
    assert all("shard" not in r and "of" not in r for r, _ in rows)  # the driver's bookkeeping stays its own


def test_ray_datas_console_gets_the_filter_once():
    from ray.data._internal.logging import HiddenRecordFilter

    handler = logging.StreamHandler()
    handler.addFilter(HiddenRecordFilter())
    other = logging.StreamHandler()  # a handler of the user's own: left as it is
    logger = logging.getLogger("ray.data")
    logger.addHandler(handler)
    logger.addHandler(other)
    try:
        rd._quiet_console()
        rd._quiet_console()
        assert [type(f) for f in handler.filters] == [HiddenRecordFilter, rd._Console] and other.filters == []
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(other)


def test_a_batchs_rows_are_a_column_of_python_strings():
    """A fixed-width numpy string column would pad every row of a block to its longest (a long error) row."""
    batch = {"item": np.array([json.dumps({"index": i}) for i in range(3)], dtype=object)}
    out = rd.batch_rows(batch, lambda item: ({"index": item["index"], "e": "x" * 10 ** item["index"]}, b""),
                        lambda item, why: ({}, b""))
    assert out["row"].dtype == object and out["blob"].dtype == object
    assert [json.loads(r)["index"] for r in out["row"]] == [0, 1, 2]


def test_ray_datas_guard_is_named_by_its_first_line_cut_at_160(monkeypatch):
    import ray

    class Stalled:
        def map_batches(self, *a, **k):
            return self

        def iter_rows(self):
            raise ray.data.exceptions.ExecutionTimeoutError("g" * 300 + "\nOperators still running: ...")
            yield

    monkeypatch.setattr(ray.data, "from_items", lambda *a, **k: Stalled())
    with pytest.raises(UserError) as e:
        list(rd.map_actors(ray, [{"index": 0}], rd.Work(_Echo, {"tag": "w"}), rd.Fleet([], []), 1,
                           lambda item, why: ({}, b"")))
    assert str(e.value).startswith(f"the Ray run stopped ({'g' * 160}): see `ray status`")


def test_no_more_actors_than_blocks_to_give_them():
    one = [{"index": 0}]
    assert rd.useful_actors(one, 4) == 1 and rd.useful_actors([{"index": i} for i in range(40)], 2) == 2
    assert rd.useful_actors(rd.Sharded([{"index": 0}], lambda s: []), 6) == 6  # sizes unknown: as asked
    assert rd.useful_actors(rd.Sharded([{"index": 0}], lambda s: [], [5]), 4) == 1  # 5 images: one block
    assert rd.useful_actors(rd.Sharded([{}, {}], lambda s: [], [20, 3]), 4) == 2 + 1  # blocks of 16 a shard
    assert rd.useful_actors(rd.Sharded([{}, {}], lambda s: [], [20, 3]), 2) == 2
    assert rd.useful_actors(rd.Sharded([{}], lambda s: [], [0]), 3) == 1


def test_a_small_planned_run_starts_one_actor(monkeypatch):
    import ray

    stand = _Stand(drop=[])
    monkeypatch.setattr(ray.data, "from_items", stand.from_items)
    sharded = rd.Sharded([{"index": 0}], lambda s: [{"index": i} for i in range(5)], [5])
    rows = list(rd.map_actors(ray, sharded, rd.Work(_Echo, {"tag": "w"}), rd.Fleet([_node("n1", cpu=4)], []), 4,
                              lambda item, why: ({}, b"")))
    assert stand.passes[0]["compute"].min_size == stand.passes[0]["compute"].max_size == 1 and len(rows) == 5


# what the driver of `elir-edge restore EXPORT photos/ -o out --ray` loads, read off a run (sys.modules at its end)
DRIVER_MODULES = ["elir_edge.cli", "elir_edge.cluster.ray_data", "elir_edge.common.metrics", "elir_edge.restore.stage",
                  "elir_edge.restore.on_ray", "elir_edge.restore.plan", "elir_edge.restore.image",
                  "elir_edge.restore.tiling", "elir_edge.model.noise", "elir_edge.runtime.choose",
                  "elir_edge.runtime.probe", "elir_edge.runtime.open", "elir_edge.runtime.ort",
                  "elir_edge.runtime.cpu_roof", "elir_edge.model.export_folder"]


def test_a_ray_driver_and_a_planning_task_start_without_torch():
    """torch costs 1.5 s of a 2-core node's start: the driver (plans, probes the file with PSNR, collects rows)
    and the shard-planning task never draw a noise field, so importing what they run loads no torch; drawing
    one still gives torch's field."""
    import subprocess
    import sys

    code = ("import sys, importlib; [importlib.import_module(m) for m in sys.argv[1:]]; "
            "from elir_edge.common.metrics import psnr; import numpy as np; assert psnr(np.zeros(4), np.ones(4)) == 0; "
            "print(sorted(m for m in ('torch', 'torchmetrics') if m in sys.modules))")
    for modules in (DRIVER_MODULES, ["elir_edge.restore.plan"]):
        out = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]", (modules, out.stdout, out.stderr[-400:])
    import torch

    from elir_edge.model.noise import latent_noise

    expected = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(7)).numpy()
    assert np.array_equal(latent_noise(4, 16, 24, seed=7), expected)


def test_a_ray_started_here_drops_only_rays_own_token_notice(monkeypatch):
    """Ray 2.60 starts a local Ray with token authentication on and says so (its own function, called here from a
    stand-in of ray.init): the Ray `--ray` starts for one run drops that line, any other line of Ray's passes, and
    a cluster joined by address keeps the notice."""
    import ray
    from ray._private.authentication import authentication_token_setup as setup

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    def init(address=None, **kwargs):
        setup._warn_token_auth_enabled()
        logging.getLogger(rd.TOKEN_LOGGER).warning("another line")

    handler, logger = Keep(), logging.getLogger(rd.TOKEN_LOGGER)
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "disabled", False)  # whatever an earlier ray.init in this process set
    level = logger.level
    logger.setLevel(logging.WARNING)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(rd, "precheck", lambda address: ray)
    try:
        with rd.cluster(rd.LOCAL):
            pass
        assert seen == ["another line"]
        with rd.cluster("auto"):
            pass
        assert len(seen) == 3 and seen[1].startswith("Token authentication is enabled")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
