"""The end-to-end benchmark's stack: `refunds dev` started (and stopped) on a data folder or
PostgreSQL schemas, as often as the history points need, and the schemas dropped at the end."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.e2e_args import ENV_PREFIX
from bench.intake_create import say
from refunds.devstack import Ports, Stack
from refunds.processes import port_accepts


@contextmanager
def shielded() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up, so a second one cannot leave a mess."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


PARTITIONS = 4  # the services' default (REFUNDS_KAFKA_PARTITIONS)


def free_base() -> int:
    return Ports.free_base(30000 + os.getpid() % 100 * 100)


def _wait_for_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not port_accepts(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGINT (tansu hangs on SIGTERM with clients connected; `refunds dev` stops its stack
    on it), then SIGKILL if it is still there after `timeout`."""
    with shielded():
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def broker(data_dir: Path, base: int) -> Iterator[subprocess.Popen[bytes]]:
    """The run's tansu broker, started as `refunds dev` starts it but kept across restarts of
    the stack: a broker that forgot the topics would make every relay publish its whole log
    again at the next start (100,000 refunds' worth at the big history point)."""
    ports = Ports.from_base(base)
    command = Stack(data_dir, ports).command("broker")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(ports.broker, 30, "the benchmark's tansu broker")
        yield process
    finally:
        _stop(process, 30)


def as_if_durable(base: int) -> None:
    """Make the benchmark's fresh broker look like one that kept the stack's data, as a real
    Kafka does across restarts: the four topics, and the sentinels the relays look for. A
    relay that finds its sentinel gone takes the broker for one that lost its data and
    publishes its whole log again — on a store filled beforehand, millions of records that
    would be measured as the stack's cost. (The consumers mark their own sentinels.)"""
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.kafka import TOPICS, ensure_topics
    from shared.relay import sentinel_topic

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{Ports.from_base(base).broker}")
        await admin.start()
        try:
            await ensure_topics(admin, list(TOPICS.values()), PARTITIONS)
            sentinels = [sentinel_topic("", service) for service in TOPICS]
            await ensure_topics(admin, sentinels, 1)
        finally:
            await admin.close()

    asyncio.run(create())


@contextmanager
def stack(
    data_dir: Path,
    base: int,
    database_url: str | None = None,
    schema_prefix: str | None = None,
    settings: Sequence[tuple[str, str]] = (),
) -> Iterator[subprocess.Popen[str]]:
    """`refunds dev` on `ports`, with the broker already running there (see `broker`); the
    caller's REFUNDS_* settings are not passed on, only `settings` (`--set`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(settings)
    cli = Path(sys.executable).with_name("refunds")
    command = [str(cli), "dev", "--data-dir", str(data_dir), "--base-port", str(base)]
    command += ["--kafka", f"127.0.0.1:{Ports.from_base(base).broker}"]
    if database_url is not None:
        command += ["--postgres", database_url, "--schema-prefix", schema_prefix or "refunds"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        assert process.stdout is not None
        said: list[str] = []
        deadline = time.monotonic() + 120
        while True:
            line = process.stdout.readline()
            if line:
                said.append(line)
            if "Ctrl-C to stop" in line:
                break
            if (not line and process.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError("refunds dev did not start:\n" + "".join(said[-30:]))
        yield process
    finally:
        _stop(process, 60)


@contextmanager
def throwaway_schemas(database_url: str | None, prefix: str | None) -> Iterator[None]:
    """On exit, drop every schema named `<prefix>_…` (the stack's and the baseline's)."""
    try:
        yield
    finally:
        if database_url is not None and prefix:
            with shielded():
                dropped = drop_schemas(database_url, prefix)
            say(f"dropped schemas {', '.join(dropped) or '(none)'}")


def drop_schemas(database_url: str, prefix: str) -> list[str]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '20s'")
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE left(nspname, %s) = %s ORDER BY nspname",
            (len(prefix) + 1, prefix + "_"),
        ).fetchall()
        names = [str(row[0]) for row in rows]
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    return names
