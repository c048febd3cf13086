"""Concurrent routing writers, threads and processes, on SQLite and PostgreSQL.

Every attempt reads the latest config and writes version + 1 with compare-and-set. Whatever the
interleaving, the history must hold each won write exactly once, at the version returned to
its writer, with no gap and no version written twice.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from mlp_orchestration.routing.config import RoutingStage, RoutingTarget
from mlp_orchestration.routing.store import RoutingStore
from mlp_orchestration.warehouse import get_engine

from .writers import MODEL, write_attempts

WRITERS = 4
ATTEMPTS = 60


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'routing.db'}"


def seed(url: str) -> None:
    RoutingStore(get_engine(url)).write(
        MODEL,
        RoutingTarget(champion_version="1"),
        expected_version=0,
        stage=RoutingStage.INITIAL,
        actor="tests",
        reason="first champion",
    )


def check_history(url: str, results: list[tuple[list[tuple[int, str]], int]]) -> None:
    won = [item for wins, _ in results for item in wins]
    conflicts = sum(count for _, count in results)
    history = RoutingStore(get_engine(url)).history(MODEL)

    assert len(won) + conflicts == WRITERS * ATTEMPTS
    assert [config.version for config in history] == list(range(1, len(history) + 1))
    assert len(history) == len(won) + 1
    versions = [version for version, _ in won]
    assert len(set(versions)) == len(versions)
    by_version = {config.version: config for config in history}
    assert all(by_version[version].reason == reason for version, reason in won)
    assert len(won) >= WRITERS  # contention must not starve every writer


def run_threads(url: str) -> list[tuple[list[tuple[int, str]], int]]:
    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [
            pool.submit(write_attempts, url, f"thread-{i}", ATTEMPTS) for i in range(WRITERS)
        ]
        return [future.result() for future in futures]


def run_processes(url: str) -> list[tuple[list[tuple[int, str]], int]]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(WRITERS, mp_context=context) as pool:
        futures = [
            pool.submit(write_attempts, url, f"process-{i}", ATTEMPTS) for i in range(WRITERS)
        ]
        return [future.result() for future in futures]


@pytest.mark.parametrize("run", [run_threads, run_processes], ids=["threads", "processes"])
def test_concurrent_writers_on_sqlite_lose_nothing(sqlite_url, run):
    seed(sqlite_url)
    check_history(sqlite_url, run(sqlite_url))


@pytest.mark.postgres
@pytest.mark.parametrize("run", [run_threads, run_processes], ids=["threads", "processes"])
def test_concurrent_writers_on_postgres_lose_nothing(postgres_url, run):
    seed(postgres_url)
    check_history(postgres_url, run(postgres_url))
