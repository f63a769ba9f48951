"""tf.distribute strategies by CLI name: default, mirrored, multiworker."""

from __future__ import annotations

import json
import os

from .. import deps
from ..errors import InvalidInputError


def make_strategy(name: str):
    """The tf.distribute.Strategy called `name`.

    "multiworker" reads the cluster from the TF_CONFIG environment variable (JSON with
    "cluster": {"worker": ["host:port", ...]} and "task": {"type": "worker", "index": i})
    and must be created before any other TensorFlow op runs.
    """
    tf = deps.tensorflow()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        _tf_config()  # fail with a clear message, before TensorFlow tries to connect
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise InvalidInputError(f"unknown strategy {name!r}; valid: default, mirrored, multiworker")


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise InvalidInputError(
            "--strategy multiworker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(raw)
        config["cluster"], config["task"]["type"]  # noqa: B018  (presence check)
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError(f"TF_CONFIG is not valid cluster JSON: {raw[:200]}") from None
    return config


def is_chief() -> bool:
    """Whether this process writes the run folder (single process, chief, or worker 0)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return True
    try:
        config = json.loads(raw)
        task = config.get("task", {})
        kind, index = task.get("type", "worker"), int(task.get("index", 0))
        has_chief = "chief" in config.get("cluster", {})
    except (ValueError, AttributeError):
        return True
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)
