"""Running a run's units on a Ray cluster: one actor per worker, the rows written by the driver.

The pool is started first, so that the workers start and import while the driver prepares the run. The run
then hands it a *work factory* (a picklable callable that builds, inside each actor, the object that does the
work: the model is loaded there, once per actor) and the items to compute. The work object has two
methods: ``load(item)``, the CPU part (reading and cropping the images), and ``compute(loaded)``, the model
part, which yields the finished results (units) that the driver writes (a folder run's workers write each
image's own files). Each actor runs two items at once, so one item's images are decoded while the other holds
the model (a lock keeps the model to one item at a time). :class:`LocalPool` is the same interface in one
process, so a run has one code path for both.

Why Ray core actors and not Ray Data: a unit here is coarse (a group of images with every explainer, seconds
to minutes of model work), its result is a handful of rows that only the driver writes (so the resume logic
of :mod:`cnnxai.benchmark.store` holds unchanged), and a lost worker must cost only its unfinished units.
Actors give exactly that: ``max_restarts`` brings a killed worker back (the model reloaded),
``max_task_retries`` re-runs its unfinished units on it, and an item that keeps killing its worker ends as a
:class:`WorkFailed` that the run writes as NaN rows with the reason. Ray Data's streaming blocks would add a
second place where results live, for no gain at this granularity.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from cnnxai.errors import UserInputError

INSTALL = "pip install -r requirements-ray.txt (or pip install '.[ray]')"
IN_FLIGHT = 2  # items per actor at once: one decoding while the other runs the model


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide: ``address`` None starts a local Ray on this machine, else that cluster's address
    ('auto', 'host:port' or 'ray://host:port'). ``workers`` None: one per GPU when the run is on CUDA, else
    one per ``cpus_per_worker`` CPUs of the cluster. ``retries``: how many times a unit whose worker died is
    run again before it is given up (its rows then say why)."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0
    retries: int = 2


@dataclass(frozen=True)
class WorkFailed:
    """An item given up: its worker died ``retries + 1`` times while computing it (``reason`` says how)."""

    reason: str


@dataclass
class WorkerStats:
    """What one worker process did: items, the work they counted (e.g. images), and seconds of compute."""

    node: str
    items: int = 0
    work: int = 0
    busy_s: float = 0.0


def require_ray():
    """The ray module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserInputError(f"--ray needs Ray, an optional extra: {INSTALL}") from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse an address nothing listens on, in ``timeout`` seconds (Ray itself would wait for minutes), where
    something else than Ray answers, or a cluster that asks for a token this process will not send."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserInputError(
            f"--ray {address}: expected host:port (e.g. 10.0.0.1:6379), ray://host:port or auto; "
            "give no address for a local Ray"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise UserInputError(
            f"--ray {address}: no Ray cluster answers there ({error.strerror or error}); start one with "
            "'ray start --head' on that machine, or give no address for a local Ray"
        ) from None
    if not address.startswith("ray://"):
        _ask_gcs(address)


def _ask_gcs(address: str) -> None:
    """Ask the head node's GCS for its cluster id, once (``ray.init`` would retry for 20 s, printing a warning
    a second): something that listens there but is not Ray, or Ray asking for a token, is refused at once."""
    try:
        from ray._raylet import GcsClient  # Ray's own client; absent from another layout of Ray: then skip
    except ImportError:
        return
    saved, quiet = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)  # its C++ side logs the failed attempt to stderr
    try:
        GcsClient(address=address)
        failure = None
    except Exception as error:  # an RpcError, whatever the cause
        failure = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)
    if failure is not None and "auth" in failure.lower():
        raise UserInputError(
            f"--ray {address}: this Ray cluster asks for a token (its ~/.ray/auth_token); export "
            "RAY_AUTH_MODE=token with that file here (or RAY_AUTH_TOKEN), or run with --ray auto on its head node"
        )
    if failure is not None:
        raise UserInputError(
            f"--ray {address}: something answers there, but not a Ray cluster ({failure}); start one with "
            "'ray start --head' on that machine, or give no address for a local Ray"
        )


class _Actor:
    """One worker process. It imports ``preload`` as soon as it starts (while the driver is still getting
    ready); it builds a work object the first time an item of a factory arrives (again after a restart), and
    ``run`` is called from two threads, so that one item loads while the other computes."""

    def __init__(
        self, preload: tuple[str, ...], device: str, threads: int, backend: str = "torch", gpu_share: float = 0.0
    ) -> None:
        import importlib

        import torch

        from lime_ext import set_gpu_share

        torch.set_num_threads(max(1, threads))
        if gpu_share > 0:  # batch sizes are chosen from this worker's share of its GPU, not from the whole GPU
            set_gpu_share(min(1.0, gpu_share))
        for module in preload:
            importlib.import_module(module)
        self.device, self.backend = device, backend  # the driver's forward backend (lime_ext.backends)
        self.works: dict[str, Any] = {}
        self.lock = threading.Lock()

    def run(self, token: str, factory: Callable[[str], Any], item: Any) -> tuple[Any, int, str, float]:
        """(the item's results, this process's pid, its node, seconds holding the model)."""
        with self.lock:
            if token not in self.works:
                self.works[token] = factory(self.device)
        from lime_ext.backends import default_backend

        work = self.works[token]
        loaded = work.load(item)
        with self.lock, default_backend(self.backend):
            start = time.perf_counter()
            result = list(work.compute(loaded))
            seconds = time.perf_counter() - start
        return result, os.getpid(), socket.gethostname(), seconds

    def pid(self) -> int:
        return os.getpid()


class WorkerPool:
    """Ray actors that compute items with one work object each; use as a context manager, started early (the
    workers start and import while the driver prepares), then given the work with :meth:`using`.

    Args:
        settings: where and how wide (:class:`RaySettings`).
        device: the run's ``--device``: 'cpu'; 'cuda' (``gpus_per_worker`` of a GPU per actor, which Ray
            chooses: 'cuda:N' is refused); 'auto': CUDA when the cluster has GPUs.
        preload: modules each worker imports as it starts (those the work object needs).
    """

    def __init__(self, settings: RaySettings, device: str = "auto", preload: tuple[str, ...] = ()) -> None:
        self.ray = require_ray()
        self.settings, self.requested, self.preload = settings, device.strip().lower(), tuple(preload)
        if self.requested.startswith("cuda:"):
            raise UserInputError(
                f"--device {self.requested} with --ray: Ray gives each worker its own GPU, so a GPU index cannot "
                "be chosen; use --device cuda (and CUDA_VISIBLE_DEVICES when starting Ray to limit the GPUs)"
            )
        self.cuda = False
        self.actors: list[Any] = []
        self.stats: dict[int, WorkerStats] = {}
        self.started_here = False
        self.factory: tuple[str, Any] | None = None

    def __enter__(self) -> WorkerPool:
        ray, settings = self.ray, self.settings
        if settings.address is not None:
            check_address(settings.address)
        if not ray.is_initialized():
            try:
                ray.init(
                    address=settings.address, include_dashboard=False, log_to_driver=True,
                    configure_logging=False,
                )  # fmt: skip
            except (ConnectionError, RuntimeError) as error:
                if settings.address is None:
                    raise
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise UserInputError(
                    f"--ray {settings.address}: not a Ray cluster that answers ({first}); start one with "
                    "'ray start --head' on that machine, or give no address for a local Ray"
                ) from None
            self.started_here = True
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        self.cuda = self.requested.startswith("cuda") or (self.requested == "auto" and gpus > 0)
        if self.cuda and gpus == 0:
            self.__exit__()
            raise UserInputError(
                f"--device {self.requested} with --ray: the Ray cluster has no GPU; use --device cpu, or add GPU nodes"
            )
        per_gpu = settings.gpus_per_worker if self.cuda else 0.0
        count = settings.workers or (
            max(1, int(gpus / per_gpu))
            if self.cuda
            else max(1, int(resources.get("CPU", 1) // settings.cpus_per_worker))
        )
        actor = ray.remote(
            num_cpus=settings.cpus_per_worker, num_gpus=per_gpu, max_restarts=-1,
            max_task_retries=settings.retries, max_concurrency=IN_FLIGHT,
        )(_Actor)  # fmt: skip
        threads = max(1, int(settings.cpus_per_worker))
        from lime_ext.backends import current_backend

        backend = current_backend()  # the driver's --backend, which the workers' classifiers take too
        self.actors = [
            actor.remote(self.preload, self.device, threads, backend, per_gpu) for _ in range(count)
        ]
        return self

    def using(self, factory: Callable[[str], Any]) -> WorkerPool:
        """Compute the next items with the work object ``factory(device)`` builds in each worker, on ``'cuda'``
        (the worker's own GPU) or ``'cpu'`` (picklable: a module-level function or a partial of one); the
        model it loads is loaded once per worker."""
        self.factory = (uuid.uuid4().hex, self.ray.put(factory))
        return self

    @property
    def device(self) -> str:
        """Where the workers compute: 'cuda' (each its own GPU) or 'cpu'."""
        return "cuda" if self.cuda else "cpu"

    def __exit__(self, *exc: object) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started_here:
            self.ray.shutdown()

    def pids(self) -> list[int]:
        """The worker processes' ids (waits for every actor to be up)."""
        return self.ray.get([actor.pid.remote() for actor in self.actors])

    def map_unordered(self, items: Iterable[tuple[Any, Any, int]]) -> Iterator[tuple[Any, list | WorkFailed]]:
        """Compute ``(key, item, work)`` triples; yields ``(key, results or WorkFailed)`` as items finish.

        ``work`` is what the item counts for in the workers' throughput (e.g. its images)."""
        ray = self.ray
        if self.factory is None:
            raise RuntimeError("WorkerPool.map_unordered: give the work first (pool.using(factory))")
        token, factory = self.factory
        queue = deque(items)
        running: dict[Any, tuple[Any, int, int]] = {}  # ref -> (key, work, actor index)
        busy = [0] * len(self.actors)

        def fill(index: int, most: int = IN_FLIGHT) -> None:
            # A second item waits on a worker only while every worker will get more: at the tail, an item
            # queued behind a busy worker would make an idle one wait.
            while queue and busy[index] < min(most, IN_FLIGHT if len(queue) > len(self.actors) else 1):
                key, item, work = queue.popleft()
                running[self.actors[index].run.remote(token, factory, item)] = (key, work, index)
                busy[index] += 1

        for most in (1, IN_FLIGHT):  # every worker starts with an item, then a second one waits on each
            for index in range(len(self.actors)):
                fill(index, most)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            key, work, index = running.pop(ref)
            busy[index] -= 1
            try:
                result, pid, node, seconds = ray.get(ref)
            except ray.exceptions.RayActorError as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                yield key, WorkFailed(f"its worker died {self.settings.retries + 1} times: {reason}")
            else:
                stats = self.stats.setdefault(pid, WorkerStats(node))
                stats.items += 1
                stats.work += work
                stats.busy_s += seconds
                yield key, result
            fill(index)
            for other in range(len(self.actors)):  # a worker left idle at the tail
                if busy[other] == 0:
                    fill(other)

    def describe(self, unit: str = "work") -> dict:
        """The cluster and each worker's throughput (``unit``: what an item's work counts), for the manifest."""
        ray = self.ray
        resources = ray.cluster_resources()
        return {
            "ray_version": ray.__version__,
            "address": self.settings.address or "local",
            "nodes": sum(1 for node in ray.nodes() if node.get("Alive")),
            "cpus": float(resources.get("CPU", 0)),
            "gpus": float(resources.get("GPU", 0)),
            "device": self.device,
            "workers": len(self.actors),
            "cpus_per_worker": self.settings.cpus_per_worker,
            "torch_threads_per_worker": max(1, int(self.settings.cpus_per_worker)),
            "gpus_per_worker": self.settings.gpus_per_worker if self.cuda else 0,
            "retries": self.settings.retries,
            "per_worker": [
                {"pid": pid, "node": s.node, "items": s.items, unit: s.work, "busy_s": round(s.busy_s, 3),
                 f"{unit}_per_s": round(s.work / s.busy_s, 4) if s.busy_s else None}
                for pid, s in sorted(self.stats.items())
            ],
        }  # fmt: skip


@dataclass
class LocalPool:
    """The same interface in this process, without Ray: items computed one after the other, each result
    handed over as soon as it is ready (so an interrupted run keeps every finished unit)."""

    work: Any

    def map_unordered(self, items: Iterable[tuple[Any, Any, int]]) -> Iterator[tuple[Any, list]]:
        for key, item, _ in items:
            for result in self.work.compute(self.work.load(item)):
                yield key, [result]


def in_order(results: Iterable[tuple[Any, Any]], keys: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """``results`` (key, value), arriving in any order (a pool's), handed on in the order of ``keys``: each waits
    for those before it, so rows are appended in the order of the run whatever worker finished first."""
    order, ready, end = iter(keys), {}, object()
    waiting = next(order, end)
    for key, value in results:
        ready[key] = value
        while waiting is not end and waiting in ready:
            yield waiting, ready.pop(waiting)
            waiting = next(order, end)


def worker_pool(settings: RaySettings | None, device: str = "auto", preload: tuple[str, ...] = ()):
    """A context manager: the :class:`WorkerPool` of ``settings``, or None without them (compute here)."""
    return nullcontext() if settings is None else WorkerPool(settings, device, preload)
