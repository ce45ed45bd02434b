"""The Dask engine: a cluster for the run, batch scoring on its workers and LightGBM's own
distributed training. The only module that imports dask and distributed.

Workers import agencyml to run its code, so a remote cluster's workers need the same version
installed; a LocalCluster's workers are started from this environment."""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from distributed import Client, LocalCluster

from pipelines.config import Execution, UseCase
from pipelines.modeling.features import FeatureTransform
from pipelines.modeling.training import Matrix, TrainingError
from pipelines.registry import tracking
from pipelines.scoring.streaming import NativeScorer, model_scores

# LightGBM's own names -> the names its scikit-learn API takes as arguments (the rest, such as
# cat_smooth or deterministic, pass through under their own names).
SKLEARN_NAMES = {
    "num_iterations": "n_estimators",
    "min_data_in_leaf": "min_child_samples",
    "feature_fraction": "colsample_bytree",
    "bagging_fraction": "subsample",
    "bagging_freq": "subsample_freq",
    "lambda_l1": "reg_alpha",
    "lambda_l2": "reg_lambda",
    "min_gain_to_split": "min_split_gain",
    "seed": "random_state",
}
# Set by LightGBM's Dask interface itself: threads per worker, and the class count.
SET_BY_DASK = ("num_threads", "num_class")
# The parameters section of a model trained on workers records their ports; nothing reads them.
RUN_PORTS = re.compile(r"^\[(machines|local_listen_port): [^\]\n]*\]$", re.MULTILINE)
PORT_DEFAULTS = {"machines": "", "local_listen_port": "12400"}
PROBABILITY_FLOOR = 1e-15  # LightGBM's log loss clips probabilities to this


class DaskEngineError(RuntimeError):
    """The Dask cluster cannot be reached or used; the message says where and how to fix it."""


@contextlib.contextmanager
def dask_client(execution: Execution) -> Iterator[Client]:
    """A client of the scheduler the params name or, without one, of a LocalCluster started
    for the run and closed afterwards."""
    if execution.engine != "dask":
        raise DaskEngineError(f"execution.engine is '{execution.engine}', not 'dask'")
    if execution.scheduler is None:
        with (
            LocalCluster(
                n_workers=execution.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            yield client
        return
    with connect(execution.scheduler) as client:
        yield client


@contextlib.contextmanager
def connect(address: str) -> Iterator[Client]:
    """A client of a running scheduler with at least one worker, within Dask's connect
    timeout (distributed.comm.timeouts.connect)."""
    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        client = Client(address, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise DaskEngineError(
            f"cannot reach the Dask scheduler at {address} (waited {timeout}): {error}. Start "
            f"one there (`dask scheduler` and `dask worker {address}`), correct "
            "execution.scheduler in the agency's params file, or set it to null to start a "
            "LocalCluster for each run"
        ) from error
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError as error:
            raise DaskEngineError(
                f"the Dask scheduler at {address} has no workers (waited {timeout}); start "
                f"some with `dask worker {address}`"
            ) from error
        yield client


def cluster_facts(client: Client) -> dict[str, Any]:
    """The scheduler and workers a run used, for its records."""
    threads = client.nthreads()
    return {
        "engine": "dask",
        "scheduler": client.scheduler.address,
        "workers": len(threads),
        "threads": sum(threads.values()),
    }


def row_partitions(rows: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) of up to `parts` contiguous, non-empty slices of nearly equal size."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    bounds = np.linspace(0, rows, min(parts, rows) + 1).round().astype(int)
    return [(int(start), int(stop)) for start, stop in itertools.pairwise(bounds)]


class DaskScorer(NativeScorer):
    """Scores each chunk on the cluster's workers: the model goes to every worker once, the
    chunk is split in one slice per worker, and the slices come back in input order. The
    pyfunc check on the first row of the chunk stays here, on the driver."""

    def __init__(self, model: tracking.LoadedModel, client: Client) -> None:
        super().__init__(model, threads=1)
        self.client = client
        self.workers = dict(sorted(client.nthreads().items()))
        self.bundle_on_workers = client.scatter(self.bundle, broadcast=True, hash=False)

    def predict(self, conformed: pd.DataFrame) -> np.ndarray:
        if not len(conformed):
            return model_scores(self.bundle, conformed, self.threads)
        slices = row_partitions(len(conformed), len(self.workers))
        futures = []
        for (start, stop), (worker, threads) in zip(slices, self.workers.items(), strict=False):
            rows = self.client.scatter(
                conformed.iloc[start:stop], workers=[worker], hash=False, direct=True
            )
            futures.append(
                self.client.submit(
                    model_scores, self.bundle_on_workers, rows, threads, workers=[worker]
                )
            )
        return np.concatenate(self.client.gather(futures))

    def describe(self) -> dict[str, Any]:
        return {
            "engine": f"LightGBM booster (native) on {len(self.workers)} Dask worker(s)",
            "execution": cluster_facts(self.client),
        }


def sklearn_params(booster_params: dict[str, Any], num_iterations: int) -> dict[str, Any]:
    """training.lightgbm_params under the names LightGBM's scikit-learn API takes."""
    named = {"num_iterations": num_iterations, **booster_params}
    return {SKLEARN_NAMES.get(k, k): v for k, v in named.items() if k not in SET_BY_DASK}


def spread_rows(
    client: Client, matrix: Matrix, labels: np.ndarray
) -> tuple[da.Array, da.Array, list[np.ndarray]]:
    """The rows as Dask arrays with one block per worker, each block already on its worker;
    also each block's labels. Every nth row goes to the nth worker, so each holds a like share
    of every class and of every period of a time-ordered table."""
    workers = sorted(client.nthreads())
    parts = min(len(workers), matrix.shape[0])
    meta = sp.csr_matrix((0, matrix.shape[1]), dtype=np.float32) if sp.issparse(matrix) else None
    blocks, label_blocks, local_labels = [], [], []
    for part, worker in enumerate(workers[:parts]):
        rows, block_labels = matrix[part::parts], labels[part::parts]
        local_labels.append(block_labels)
        rows_future = client.scatter(rows, workers=[worker])
        labels_future = client.scatter(block_labels, workers=[worker])
        blocks.append(da.from_delayed(rows_future, rows.shape, dtype=np.float32, meta=meta))
        label_blocks.append(da.from_delayed(labels_future, block_labels.shape, labels.dtype))
    return da.concatenate(blocks), da.concatenate(label_blocks), local_labels


def check_classes(local_labels: list[np.ndarray], n_classes: int) -> None:
    """Each worker encodes the labels it holds, so each must hold every class."""
    expected = set(range(n_classes))
    for part, labels in enumerate(local_labels):
        found = {int(label) for label in np.unique(labels)}
        if found != expected:
            raise TrainingError(
                f"Dask training: the {len(labels)} training rows of worker {part + 1} of "
                f"{len(local_labels)} hold the class codes {sorted(found)}, not all of "
                f"{sorted(expected)}; train with fewer workers or on more rows"
            )


def fit_booster_dask(
    transform: FeatureTransform,
    train: tuple[Matrix, np.ndarray],
    validation: tuple[Matrix, np.ndarray] | None,
    params: UseCase,
    booster_params: dict[str, Any],
    rounds: int | None = None,
) -> lgb.Booster:
    """LightGBM trained on the cluster's workers (data parallel), cut at its best iteration;
    or, without validation rows, exactly `rounds` trees (the refit).

    LightGBM's Dask interface has no early stopping (LightGBM issues #3712 and #4493), so the
    workers grow the declared num_iterations and the same rule is applied afterwards, here:
    the validation log loss after each iteration, stopping after `early_stopping_round`
    iterations without improvement. The trees up to that iteration are the ones early stopping
    would have kept; the price is growing the rest.

    Not bit-reproducible across clusters: each LightGBM rank bins its share of the features
    from the rows it holds, and lightgbm.dask numbers the workers in an order that varies
    from run to run, so two runs can grow slightly different trees of the same quality."""
    from lightgbm.dask import DaskLGBMClassifier

    if validation is None and rounds is None:
        raise TrainingError("a fit without validation rows needs its number of trees")
    matrix, labels = train
    n_classes = int(booster_params.get("num_class", 2))  # type: ignore[call-overload]
    with dask_client(params.execution) as client:
        client.gather(
            [
                client.submit(quiet_lightgbm, workers=[worker], pure=False)
                for worker, threads in client.nthreads().items()
                for _ in range(threads)
            ]
        )
        rows, row_labels, local_labels = spread_rows(client, matrix, labels)
        check_classes(local_labels, n_classes)
        model = DaskLGBMClassifier(
            client=client,
            **sklearn_params(booster_params, rounds or params.lightgbm.num_iterations),
        )
        # lightgbm.dask waits on the current client; each worker's threads replace n_jobs
        with client.as_current(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored")
            model.fit(
                rows,
                row_labels,
                feature_name=transform.feature_names,
                categorical_feature=transform.categorical_indices,
            )
        booster = model.to_local().booster_
    if validation is None:
        return lgb.Booster(model_str=without_run_ports(booster.model_to_string()))
    best = best_iteration(
        validation_losses(booster, *validation), params.lightgbm.early_stopping_round
    )
    return lgb.Booster(model_str=without_run_ports(booster.model_to_string(num_iteration=best)))


def without_run_ports(model_text: str) -> str:
    """The model text with the ports this run's workers happened to listen on reset to
    LightGBM's defaults: the same trees give the same model file and hash."""
    return RUN_PORTS.sub(lambda found: f"[{found[1]}: {PORT_DEFAULTS[found[1]]}]", model_text)


def quiet_lightgbm() -> None:
    """Run in a worker's task thread: LightGBM keeps its log level per thread and logs its
    network set-up (ports, connections) before it reads `verbosity`, so set it first."""
    lgb.Dataset(np.zeros((1, 1)), params={"verbosity": -1}).construct()


def validation_losses(booster: lgb.Booster, matrix: Matrix, labels: np.ndarray) -> np.ndarray:
    """LightGBM's binary or multiclass log loss on the rows after each iteration."""
    raw = np.zeros(0)
    losses = []
    for iteration in range(booster.current_iteration()):
        tree = booster.predict(matrix, raw_score=True, start_iteration=iteration, num_iteration=1)
        raw = tree if iteration == 0 else raw + tree
        losses.append(log_loss(raw, labels))
    return np.asarray(losses)


def log_loss(raw: np.ndarray, labels: np.ndarray) -> float:
    """Mean log loss of raw scores: (n,) binary margins or (n, k) multiclass ones."""
    if raw.ndim == 1:
        positive = 1.0 / (1.0 + np.exp(-raw))
        chosen = np.where(labels > 0, positive, 1.0 - positive)
    else:
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        chosen = (shifted / shifted.sum(axis=1, keepdims=True))[np.arange(len(raw)), labels]
    return float(-np.log(np.clip(chosen, PROBABILITY_FLOOR, None)).mean())


def best_iteration(losses: np.ndarray, stopping_rounds: int) -> int:
    """Where early stopping on these losses ends: the 1-based iteration of the lowest loss
    seen before `stopping_rounds` iterations pass without a strictly lower one."""
    if not len(losses):
        raise ValueError("no iterations to choose from")
    best = 0
    for iteration, loss in enumerate(losses):
        if loss < losses[best]:
            best = iteration
        elif iteration - best >= stopping_rounds:
            break
    return best + 1
