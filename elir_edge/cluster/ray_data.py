"""Ray Data under `--ray`: start a Ray here or join a cluster, check every node can take part (those that cannot
are left out by Ray's node-ID label), and map an actor class over a list of small items (paths and settings,
never decoded images) with progress on the driver.

Ray's own parts do the distributed work and carry the failure policy: items given by the driver
(`ray.data.from_items`) or planned by a task per shard (`flat_map`), in blocks of a fixed few items,
`map_batches` over an actor pool, a dead worker's actor restarted and its block retried
(`max_task_retries`), a block Ray gave up on dropped rather than ending the run (`max_errored_blocks`),
actors that die starting replaced up to a count (`max_consecutive_actor_init_deaths`). What is ours: the
items are JSON, each result is a small JSON row plus an optional blob of bytes, an item's exception is its
failed row, and the rows of a dropped block are tried again one by one."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import re
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from elir_edge.errors import UserError

INSTALL = "pip install 'elir-edge[ray]'"
LOCAL = "local"  # `--ray` without an address: start Ray on this machine
BLOCK = 16  # items per Ray Data block, whatever the archive's size
PLANNED_BLOCK_BYTES = BLOCK * 256  # a block of items planned on the cluster: about BLOCK images (200-300 B each)
RETRIES = 3  # Ray's retries of a block whose worker died (then its rows alone, as many times each)
START_DEATHS = 3  # actors that may die starting, in a row, before the run stops
NODE_ID = "ray.io/node-id"  # the label Ray gives every node
SHARED = "give paths on storage every node mounts at the same place (a shared file system)"
AGAIN = ("fix that and run again (`restore --resume` keeps what is done; the --report file's .partial has the rows "
         "so far)")


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
    local = starts_here(address)
    try:  # "local": a new Ray here, never RAY_ADDRESS's cluster or the host's last (maybe dead) `ray start`
        with _own_token_notice_dropped() if local else contextlib.nullcontext():
            ray.init(address="local" if local else address, num_cpus=num_cpus if local else None,
                     include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        raise UserError(refusal(address, e)) from None
    try:
        yield ray
    finally:
        ray.shutdown()


TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


class _OwnTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


@contextlib.contextmanager
def _own_token_notice_dropped():
    """Ray 2.60 turns token authentication on for a Ray it starts, and says so at WARNING with how to opt out: for
    the Ray started here for one run and stopped after it, that is the default doing its job, nothing for the user
    to act on. Joined clusters keep the line."""
    logger, notice = logging.getLogger(TOKEN_LOGGER), _OwnTokenNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def refusal(address: str, e: Exception) -> str:
    """The one line for a cluster that `ray.init` refused: a Ray/Python version mismatch named as such, with
    both sides' versions (Ray checks them before anything runs), else the address that did not answer."""
    text = str(e).strip()
    versions = re.findall(r"Ray: (\S+)\s+Python: (\S+)", text)
    if text.startswith("Version mismatch") and len(versions) == 2:
        (ray_there, py_there), (ray_here, py_here) = versions
        return (f"the Ray cluster at {address} runs Ray {ray_there} on Python {py_there}, this machine Ray "
                f"{ray_here} on Python {py_here}: install the cluster's versions here (pip install "
                f"'ray[data]=={ray_there}' on Python {py_there}), or submit the run to the cluster "
                "(`ray job submit -- elir-edge restore ... --ray auto`)")
    first = (text.splitlines() or [type(e).__name__])[0][:160]
    return (f"cannot reach the Ray cluster at {address} ({first}): start it with `ray start --head` and pass its "
            "address (or `auto`), or run `--ray` alone to start one here")


def precheck(address: str | None, timeout_s: float = 5.0):
    """Before any work: Ray is installed, and a host:port (or ray://host:port, [IPv6]:port) takes a connection,
    named at once rather than after Ray's own retries (a minute). `auto` is left to Ray. Returns the ray module."""
    import socket

    ray = _ray()
    host, _, port = (address or LOCAL).removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return ray
    try:
        socket.create_connection((host.removeprefix("[").removesuffix("]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UserError(refusal(address, e)) from None
    return ray


@dataclass(frozen=True)
class Work:
    """One actor of a run: its class (made as `actor(settings)`; it says in `refused` why it will not work on its
    node, or None), its settings (plain values) and the resources each one takes."""
    actor: type
    settings: dict
    num_cpus: float = 1
    num_gpus: float = 0


@dataclass(frozen=True)
class Fleet:
    """The nodes that passed the check, and the IDs of those left out of the run."""
    usable: list[dict]
    excluded: list[str]

    def actors(self, work: Work) -> int:
        """One actor per GPU of the usable nodes for engines, else one per `num_cpus` of their CPUs."""
        if work.num_gpus:
            return max(1, sum(int(n["Resources"].get("GPU", 0)) for n in self.usable))
        return max(1, sum(int(n["Resources"].get("CPU", 0) // work.num_cpus) for n in self.usable))

    def label_selector(self) -> dict | None:
        """Ray's scheduling option that keeps actors off the excluded nodes (every node has its ID as a label)."""
        return {NODE_ID: f"!in({','.join(self.excluded)})"} if self.excluded else None

    def checked(self) -> dict:
        """Ray's scheduling option for work that takes no CPU (listing): only on the nodes that passed the check."""
        return {NODE_ID: f"in({','.join(n['NodeID'] for n in self.usable)})"}


@dataclass(frozen=True)
class Sharded:
    """Items the cluster makes: `plan(shard)` (a shard as plain values -> its items) runs as a Ray task per shard on
    the checked nodes, beside the data, so the driver never lists them; the driver plans again, itself, only the
    shards whose rows did not all come back (a block Ray gave up on). `sizes`: at most how many items each shard
    makes, where the driver's walk saw that (it caps the actors started at the blocks they can be given)."""
    shards: list[dict]
    plan: Callable[[dict], list[dict]]
    sizes: list[int] | None = None

    def missing(self, got: Counter, made: dict) -> list[dict]:
        """The items of every shard with fewer rows back than it made (or none at all)."""
        return [{**i, "shard": s["index"], "of": made.get(s["index"])} for s in self.shards
                if got[s["index"]] != made.get(s["index"], -1) for i in self.plan(s)]


def starts_here(address: str | None) -> bool:
    """Whether `--ray ADDRESS` starts a new Ray on this machine (its workers run this Python) rather than join one."""
    return address in (LOCAL, "", None)


def this_machine(ray, work: Work) -> Fleet | None:
    """The fleet of a cluster that is this machine alone (one node, the driver's own), without the node check:
    for a Ray started here on a file the driver itself opened and probed, the check would repeat what the driver
    has just done on the same files, CPU and Python (2.4 s of a 2-core start). None for any other cluster."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) != 1 or nodes[0]["NodeID"] != ray.get_runtime_context().get_node_id():
        return None
    return Fleet(_fitting(nodes, work), [])


def nodes_for(ray, work: Work, started_here: bool, reads: list[Path], writes: Path | None = None) -> Fleet:
    """The nodes to run `work` on: this machine alone for a Ray `started_here` on CPU work (the driver has read
    `reads`, written `writes` and probed the CPU files on this machine), every node checked otherwise."""
    return (started_here and not work.num_gpus and this_machine(ray, work)) or check_nodes(ray, work, reads, writes)


def check_nodes(ray, work: Work, reads: list[Path], writes: Path | None = None, timeout_s: float = 180.0) -> Fleet:
    """Before any work, on every node that has the resources of one actor: its workers import elir-edge, read
    the inputs, write the output folder (each reads a token the driver wrote there) and start the actor (open
    the artifact, check its hash and probe it on the node's own CPU). A node that fails is left out with one
    warning line; the run is refused, in one line, when no node passes. The nodes answer side by side; each has
    `timeout_s` to start a Python worker, import the runtimes and open the artifact (a cold node, its packages on
    network storage, takes tens of seconds)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = _fitting([n for n in ray.nodes() if n.get("Alive")], work)
    token = uuid.uuid4().hex
    marker = Path(writes) / f".elir-edge-reach-{token}" if writes is not None else None
    if marker is not None:
        marker.write_text(token)
    try:
        check = ray.remote(num_cpus=0, num_gpus=work.num_gpus, max_retries=0)(_check_node)
        asked = [check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                 .remote(str(marker) if marker else None, token, [str(p) for p in reads], work) for n in nodes]
        deadline = time.monotonic() + timeout_s  # one wait for all: the nodes answer side by side
        answers = [_answer(ray, ref, max(0.0, deadline - time.monotonic()), timeout_s) for ref in asked]
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    failed = [f"the Ray node {n.get('NodeManagerAddress')} ({n['NodeID'][:8]}): {why}" for n, why in zip(nodes, answers) if why]
    if len(failed) == len(nodes):
        more = f" (and {len(failed) - 1} more nodes)" if len(failed) > 1 else ""
        raise UserError(f"{failed[0]}{more}: no node can take part")
    for line in failed:
        warnings.warn(f"{line}: left out of this run", stacklevel=2)
    return Fleet([n for n, why in zip(nodes, answers) if not why],
                 [n["NodeID"] for n, why in zip(nodes, answers) if why])


def _fitting(nodes: list[dict], work: Work) -> list[dict]:
    """The nodes with the resources of one actor; a one-line refusal when none has."""
    fit = [n for n in nodes if _fits(n, work)]
    if not fit:
        need = f"{work.num_gpus:g} GPU" if work.num_gpus else f"{work.num_cpus:g} CPU"
        raise UserError(f"no node of the Ray cluster has {need} for a worker: add such nodes, or pass fewer --threads")
    return fit


def _fits(node: dict, work: Work) -> bool:
    have = node.get("Resources", {})
    return have.get("CPU", 0) >= work.num_cpus and have.get("GPU", 0) >= work.num_gpus


def _answer(ray, ref, left_s: float, timeout_s: float) -> str | None:
    """One node's answer to the check (`left_s` of the run's `timeout_s` to wait for it); a node whose workers
    cannot even load it lacks elir-edge; one whose check's worker died (a runtime that crashes opening the
    artifact there, say) is left out with Ray's last line."""
    from elir_edge import __version__

    try:
        return ray.get(ref, timeout=left_s)
    except ray.exceptions.TaskUnschedulableError:
        return "left the cluster during the check"
    except ray.exceptions.GetTimeoutError:
        return f"did not answer the check within {timeout_s:g} s: see `ray status` and the node's raylet log"
    except ray.exceptions.RayError as e:
        if "ModuleNotFoundError" in str(e) or "No module named" in str(e):
            return (f"cannot import elir-edge: pip install 'elir-edge[ray]=={__version__}' on every node (the same "
                    "version as the driver's)")
        return f"its check's worker died ({_last_line(e)}): run elir-edge there alone to see why"


def _check_node(marker: str | None, token: str, reads: list[str], work: Work) -> str | None:
    """Run on one node: why it cannot take part in the run, or None."""
    why = _sees(marker, token, reads)
    if why:
        return why
    try:
        return work.actor(work.settings).refused
    except Exception as e:  # noqa: BLE001 - whatever stops the actor starting here is this node's reason
        return f"cannot start a worker ({type(e).__name__}: {str(e)[:160]})"


def _sees(marker: str | None, token: str, reads: list[str]) -> str | None:
    """Why this node cannot do the run's I/O, or None."""
    if marker is not None:
        folder = os.path.dirname(marker)
        try:
            seen = Path(marker).read_text()
        except OSError:
            seen = None
        if seen != token:
            return f"does not see the output folder {folder} the driver sees: {SHARED}"
        if not os.access(folder, os.W_OK):
            return f"cannot write to the output folder {folder}: {SHARED}"
    missing = next((p for p in reads if not os.access(p, os.R_OK)), None)
    return f"cannot read {missing}: {SHARED}" if missing else None


def blocks(n: int, actors: int) -> int:
    """How many Ray Data blocks n items make: at most BLOCK items each whatever n (a death redoes one block,
    rows come back a block at a time), and no fewer than one per actor while items last."""
    return max(min(n, actors), -(-n // BLOCK))


def useful_actors(items: list[dict] | Sharded, actors: int) -> int:
    """No more actors than blocks there will be to give them (each is a process to start, beside the others, on
    nodes that may have few cores): one per item for items given here, one per planned block where the shards'
    sizes are known (a shard's items come in blocks of about BLOCK)."""
    if isinstance(items, Sharded):
        return actors if items.sizes is None else max(1, min(actors, sum(-(-n // BLOCK) for n in items.sizes)))
    return max(1, min(actors, len(items)))


def map_actors(ray, items: list[dict] | Sharded, work: Work, fleet: Fleet, actors: int,
               failed: Callable[[dict, str], tuple[dict, bytes]]) -> Iterator[tuple[dict, bytes]]:
    """(row, blob) for every item (given, or planned on the cluster shard by shard), in the order they finish, on
    the fleet's usable nodes; `work.actor(settings)` is made once per worker and called on batches {"item": [json,
    ...]}, returning {"row": [json, ...], "blob": [bytes, ...]}. The rows of a block Ray gave up on are tried again
    one per block and one at a time per actor, so only an item that kills its worker on every try ends as
    `failed(item, why)`."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own bar
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = -1  # a block whose retries ran out is dropped, and its rows tried again here
    ctx.max_consecutive_actor_init_deaths = START_DEATHS
    if isinstance(items, Sharded):  # Ray cuts the items each shard's task plans into blocks of this size
        ctx.target_max_block_size = PLANNED_BLOCK_BYTES
    _quiet_console()
    seen: set[int] = set()
    got, made = Counter(), {}

    def fresh(rows: Iterator[tuple[dict, bytes]]) -> Iterator[tuple[dict, bytes]]:
        for row, blob in rows:
            shard, of = row.pop("shard", None), row.pop("of", None)
            if row["index"] not in seen:  # a retried block's rows count once
                seen.add(row["index"])
                got[shard] += 1
                made[shard] = of
                yield row, blob

    yield from fresh(_map(ray, items, work, fleet, useful_actors(items, actors), BLOCK))
    todo = [i for i in (items.missing(got, made) if isinstance(items, Sharded) else items) if i["index"] not in seen]
    yield from fresh(_map(ray, todo, work, fleet, useful_actors(todo, actors), 1)) if todo else ()
    for item in (i for i in todo if i["index"] not in seen):
        yield failed(item, f"its Ray worker died on every try ({RETRIES + 1}): an image that crashes the runtime "
                           "(or nodes lost): run it alone without --ray to see why")


class _Console(logging.Filter):
    """What of Ray Data's log reaches the console: its warnings (such as "may hang forever"), one line each. Its
    notes, its tracebacks (a block dropped, an actor replaced: the rows and the run's own line say what failed)
    and its progress notices (the driver shows its own bar) stay in its log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and not record.exc_info and \
            not record.name.startswith("ray.data._internal.progress")


def _quiet_console() -> None:
    """The filter on Ray Data's console handler (the one carrying Ray's own console filter), once; and Ray Data's
    advice to raise `override_num_blocks` when a pool gets fewer blocks than it has actors, which is ours to
    follow, not the user's (blocks() and useful_actors() size both; a shard that plans fewer items than its walk
    saw still makes fewer blocks)."""
    from ray.data._internal.logging import HiddenRecordFilter

    warnings.filterwarnings("ignore", r"The minimum number of concurrent actors .* only received", UserWarning)

    for handler in logging.getLogger("ray.data").handlers:
        filters = [type(f) for f in handler.filters]
        if HiddenRecordFilter in filters and _Console not in filters:
            handler.addFilter(_Console())


def _map(ray, items: list[dict] | Sharded, work: Work, fleet: Fleet, actors: int, size: int
         ) -> Iterator[tuple[dict, bytes]]:
    with warnings.catch_warnings():  # Ray 2.60 names no parameter for an actor's retries; 2.64 is to
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        out = _dataset(ray, items, fleet, actors, size).map_batches(
            work.actor, fn_constructor_kwargs={"settings": work.settings}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(  # alone, a row risks no other's tries
                size=actors, max_tasks_in_flight_per_actor=None if size > 1 else 1),
            num_cpus=work.num_cpus, num_gpus=work.num_gpus or None, label_selector=fleet.label_selector(),
            max_restarts=-1, max_task_retries=RETRIES)
    try:
        for r in out.iter_rows():
            yield json.loads(r["row"]), bytes(r["blob"])
    except ray.exceptions.RayError as e:  # past the policy (actors that keep dying as they start, ...)
        raise UserError(f"the Ray run stopped ({_last_line(e)}): {AGAIN}") from None
    except ray.data.exceptions.ExecutionTimeoutError as e:  # Ray Data's no-progress guard (not a RayError)
        raise UserError(f"the Ray run stopped ({str(e).splitlines()[0][:160]}): see `ray status` for workers that "
                        f"cannot start or nodes that left; {AGAIN}") from None
    finally:
        # Ray Data keeps a failed block's error in a reference cycle with its task, which holds the actor's handle:
        # until Python's cyclic collector runs (seldom, in a driver with a large heap) that actor lives on (a lost
        # node's restarts on a survivor) holding its CPU, and the next pass's actors wait for that CPU forever.
        del out
        gc.collect()


def _dataset(ray, items: list[dict] | Sharded, fleet: Fleet, actors: int, size: int):
    """The items as a Ray Data dataset in blocks of `size` (BLOCK: at most that many items, no fewer blocks than
    actors) when the driver gives them; planned by a task per shard (no CPU: listing waits on storage), cut by
    Ray into blocks of PLANNED_BLOCK_BYTES (a streaming repartition would need a CPU the actors hold)."""
    if isinstance(items, Sharded):
        shards = ray.data.from_items([{"shard": json.dumps(s)} for s in items.shards],
                                     override_num_blocks=len(items.shards))
        return shards.flat_map(functools.partial(_planned, items.plan), num_cpus=0, label_selector=fleet.checked())
    return ray.data.from_items([{"item": json.dumps(i)} for i in items],
                               override_num_blocks=blocks(len(items), actors) if size > 1 else len(items))


def _planned(plan: Callable[[dict], list[dict]], row: dict) -> list[dict]:
    """A Ray Data flat_map: one shard to its items, each marked with its shard and how many the shard made."""
    shard = json.loads(row["shard"])
    items = plan(shard)
    return [{"item": json.dumps({**i, "shard": shard["index"], "of": len(items)})} for i in items]


def _last_line(e: Exception) -> str:
    """What went wrong at the bottom of a Ray error (its own first lines name Ray's frames)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return (lines[-1] if lines else type(e).__name__)[:200]


def batch_rows(batch: dict, work: Callable[[dict], tuple[dict, bytes]],
               failed: Callable[[dict, str], tuple[dict, bytes]]) -> dict:
    """An actor's `__call__` body: each item of a Ray Data batch through `work`, results as columns; an
    exception of one item is that item's failed row, never a failed block."""
    done = [_one(json.loads(str(i)), work, failed) for i in batch["item"]]
    return {"row": np.array([json.dumps(r) for r, _ in done], dtype=object),
            "blob": np.array([b for _, b in done], dtype=object)}


def _one(item: dict, work: Callable[[dict], tuple[dict, bytes]],
         failed: Callable[[dict, str], tuple[dict, bytes]]) -> tuple[dict, bytes]:
    """One item's (row, blob); the shard an item was planned in travels on to its row, for the driver's count."""
    planned = {k: item.pop(k) for k in ("shard", "of") if k in item}
    try:
        row, blob = work(item)
    except Exception as e:  # noqa: BLE001 - any one item's error is its row (the policy), the rest go on
        row, blob = failed(item, f"{type(e).__name__}: {str(e)[:160]} (on a Ray worker)")
    return {**row, **planned}, blob
