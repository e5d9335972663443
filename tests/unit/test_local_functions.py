"""Functions run side by side in the local stack's process as in separate Lambda
execution environments: one invocation's metrics are not another's."""

from __future__ import annotations

import json
import threading
import warnings

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

import pgbackups_local.functions  # noqa: F401 (what the local stack loads before any handler)

pytestmark = pytest.mark.unit


def test_concurrent_invocations_keep_their_own_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = Metrics(namespace="pgbackups", service="pgbackups")
    added = threading.Barrier(2, timeout=10)
    flushed: dict[str, list[str]] = {}

    def invocation(database: str) -> None:
        metrics.add_dimension(name="database", value=database)
        metrics.add_metric(name="BackupSucceeded", unit=MetricUnit.Count, value=1)
        added.wait()  # both have added before either publishes
        flushed[database] = [json.dumps(metrics.serialize_metric_set())]
        metrics.clear_metrics()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Dimension 'database' has already been added"
        threads = [threading.Thread(target=invocation, args=(db,)) for db in ("shop", "crm")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    for database in ("shop", "crm"):
        (document,) = (json.loads(text) for text in flushed[database])
        assert document["database"] == database, document
        assert document["BackupSucceeded"] == [1.0] or document["BackupSucceeded"] == 1.0


def test_concurrent_invocations_log_with_their_own_keys() -> None:
    import io
    import logging

    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    logger = Logger(service="pgbackups-test-keys", logger_handler=logging.StreamHandler(stream))
    both = threading.Barrier(2, timeout=10)

    def invocation(function_name: str) -> None:
        logger.append_keys(function_name=function_name)
        both.wait()  # both have tagged the logger before either logs
        logger.info("working")

    threads = [threading.Thread(target=invocation, args=(n,)) for n in ("backup", "api")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.info("the stack itself")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    tags = sorted(line.get("function_name") for line in lines if line["message"] == "working")
    assert tags == ["api", "backup"], lines
    (own,) = [line for line in lines if line["message"] == "the stack itself"]
    assert "function_name" not in own and own["service"] == "pgbackups-test-keys"


def test_a_handlers_helper_threads_log_with_its_keys() -> None:
    import io
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    logger = Logger(service="pgbackups-test-helpers", logger_handler=logging.StreamHandler(stream))

    def invocation() -> None:
        logger.append_keys(function_name="dispatcher", correlation_id="run-1")
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda n: logger.info("sweep", n=n), range(2)))

    thread = threading.Thread(target=invocation)
    thread.start()
    thread.join()

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert all(line["function_name"] == "dispatcher" for line in lines), lines
