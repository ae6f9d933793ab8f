"""Ray Data under `--ray`: join or start a cluster, check its workers see the run's files, and map an actor
class over a list of small items (paths and settings, never decoded images) with progress on the driver.

Ray's own parts do the distributed work: `ray.data.from_items`, `map_batches` over an actor pool, actors
restarted and tasks retried when a worker dies (Ray Data's defaults for actor pools). What is ours: the items
are JSON, each result is a small JSON row plus an optional blob of bytes, and the driver counts them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from elir_edge.errors import UserError

INSTALL = "pip install 'elir-edge[ray]'"
LOCAL = "local"  # `--ray` without an address: start Ray on this machine


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


@contextlib.contextmanager
def cluster(address: str = LOCAL, num_cpus: int | None = None):
    """Connected to the cluster at `address` (LOCAL: a Ray started here, given back at the end). A Ray this
    process already joined is used as it is."""
    ray = precheck(address)
    if ray.is_initialized():
        yield ray
        return
    local = address in (LOCAL, "", None)
    try:
        ray.init(address=None if local else address, num_cpus=num_cpus if local else None, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"cannot reach the Ray cluster at {address} ({first}): start it with `ray start --head` "
                        "and pass its address (or `auto`), or run `--ray` alone to start one here") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def precheck(address: str | None, timeout_s: float = 5.0):
    """Before any work: Ray is installed, and a host:port (or ray://host:port) takes a connection, named at
    once rather than after Ray's own retries (a minute). `auto` is left to Ray. Returns the ray module."""
    import socket

    ray = _ray()
    host, _, port = (address or LOCAL).removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address} ({e.strerror or type(e).__name__}): start it "
                        "with `ray start --head` and pass its address (or `auto`), or run `--ray` alone to start "
                        "one here") from None
    return ray


def check_reach(ray, reads: list[Path], writes: Path | None = None) -> None:
    """Refuse before any work when a node's workers cannot read the inputs or write the output folder (a
    local path given to a remote cluster): each node reads a token the driver wrote in the output folder."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    marker = Path(writes) / f".elir-edge-reach-{token}" if writes is not None else None
    if marker is not None:
        marker.write_text(token)
    try:
        probe = ray.remote(num_cpus=0)(_sees)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        answers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                           .remote(str(marker) if marker else None, token, [str(p) for p in reads]) for n in nodes])
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    for node, why in zip(nodes, answers):
        if why:
            raise UserError(f"the Ray node {node.get('NodeManagerAddress')} {why}: give paths on storage every "
                            "node mounts at the same place (a shared file system)")


def _sees(marker: str | None, token: str, reads: list[str]) -> str | None:
    """Run on one node: why it cannot do the run's I/O, or None."""
    if marker is not None:
        folder = os.path.dirname(marker)
        try:
            seen = Path(marker).read_text()
        except OSError:
            seen = None
        if seen != token:
            return f"does not see the output folder {folder} the driver sees"
        if not os.access(folder, os.W_OK):
            return f"cannot write to the output folder {folder}"
    missing = next((p for p in reads if not os.access(p, os.R_OK)), None)
    return f"cannot read {missing}" if missing else None


def default_actors(ray, gpu: bool, threads: int) -> int:
    """One actor per GPU of the cluster for engines, else one per `threads` of its CPUs."""
    resources = ray.cluster_resources()
    return max(1, int(resources.get("GPU", 1) if gpu else resources.get("CPU", 1) // threads))


def map_actors(ray, items: list[dict], actor: type, settings: dict, actors: int, num_cpus: float = 1,
               num_gpus: float = 0) -> Iterator[tuple[dict, bytes]]:
    """(row, blob) for every item, in the order they finish; `actor(settings)` is made once per worker and
    called on batches {"item": [json, ...]}, returning {"row": [json, ...], "blob": [bytes, ...]}."""
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the driver shows its own bar, and says what failed
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ds = ray.data.from_items([{"item": json.dumps(i)} for i in items], override_num_blocks=min(len(items), 1000))
    out = ds.map_batches(actor, fn_constructor_kwargs={"settings": settings}, batch_size=1,
                         compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=num_cpus,
                         num_gpus=num_gpus or None)
    for r in out.iter_rows():
        yield json.loads(r["row"]), bytes(r["blob"])


def batch_rows(batch: dict, work: Callable[[dict], tuple[dict, bytes]]) -> dict:
    """An actor's `__call__` body: each item of a Ray Data batch through `work`, results as columns."""
    done = [work(json.loads(str(i))) for i in batch["item"]]
    return {"row": np.array([json.dumps(r) for r, _ in done], dtype=object),
            "blob": np.array([b for _, b in done], dtype=object)}
