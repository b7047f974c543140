"""The scaling benchmark's serving clients: every query timed in rounds through the reader role."""

from __future__ import annotations

import pytest

from mfs.bench import scaling, serving
from mfs.bench.runner import bench_symbols
from mfs.errors import MfsError


@pytest.fixture
def store(db: str) -> list[str]:
    """Three symbols with ten days of bars and their features (the benchmark's own store build)."""
    symbols = bench_symbols(3)
    scaling._build(len(symbols), 10, db, lambda message: None)
    return symbols


def test_rounds_go_through_every_client_and_time_each_query_as_often_as_configured(store) -> None:
    clients = [serving.ServingClient(store), serving.ServingClient(store)]
    try:
        with clients[0]._conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == "mfs_reader"
        rounds = []
        figures = serving.in_rounds(clients, rounds.append)
    finally:
        for client in clients:
            client.close()
    assert len(rounds) == serving.ROUNDS
    repeats = {name: repeat for name, (_query, repeat) in serving.QUERIES.items()}
    repeats |= dict.fromkeys(("latest_all_binary_copy", "latest_all_dataframe"), repeats["latest_all"])
    for client, out in zip(clients, figures, strict=True):
        assert {name: len(times) for name, times in client.times.items()} == {
            name: serving.ROUNDS * repeat for name, repeat in repeats.items()
        }
        assert set(out) == {f"{name}_{p}_ms" for name in repeats for p in ("p50", "p99")}
        assert all(out[f"{name}_p99_ms"] >= out[f"{name}_p50_ms"] > 0 for name in repeats)


def test_a_store_without_every_symbol_is_refused_before_anything_is_timed(store) -> None:
    with pytest.raises(MfsError, match="latest_features returned 3 rows for 4 symbols"):
        serving.ServingClient([*store, "B9999"])
