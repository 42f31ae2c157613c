"""Several replicas of each service in the local stack (`refunds dev --replicas N`).

The replicas of one service share its port: the supervisor binds one listening socket per
service and every replica inherits it (REFUNDS_LISTEN_FDS, served by uvicorn), so they take
connections from one accept queue, like a pre-fork server. That is chosen over each replica
binding its own socket with SO_REUSEPORT: there the kernel hashes each new connection to one
replica's own queue, so connections queued at a replica that is being stopped are reset when
it closes its socket, and those queued at a paused (SIGSTOP) replica wait for it. With one
queue, what a stopping or paused replica does not take, the others do, and a killed replica's
restart inherits the same socket. Clients and the README's examples are unchanged.

Each replica also gets a port of its own (a second inherited socket, serving the same app) on
which the supervisor probes that replica's /readyz and anyone can read its /metrics.
"""

from __future__ import annotations

import re
import socket

from refunds.ports import HOST, Ports, StackError
from shared.contracts import SERVICES
from shared.runtime import LISTEN_FDS

BACKLOG = 1024
_REPLICA = re.compile(r"(?P<service>[a-z]+)-(?P<index>[1-9][0-9]*)")


def replica_name(service: str, index: int) -> str:
    """`payout-2`: also its REFUNDS_REPLICA, the `replica` label of its metrics."""
    return f"{service}-{index}"


class Fleet:
    """The service processes of a stack: one per service (named after it, binding its port
    itself, as without replicas), or `replicas` per service sharing the service's port."""

    def __init__(self, replicas: int, ports: Ports) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.replicas = replicas
        self.ports = ports
        self._shared: dict[str, socket.socket] = {}  # service → its port's socket
        # A replica's private port, and its socket until the replica has it: the supervisor
        # keeps no copy, so the port of a replica that is down refuses connections.
        self._own_ports: dict[str, int] = {}
        self._own: dict[str, socket.socket] = {}

    @property
    def apart(self) -> bool:
        """Whether the services run as named replicas (more than one each)."""
        return self.replicas > 1

    def names(self, service: str | None = None) -> tuple[str, ...]:
        """The processes of `service` (of every service, in start order, when None)."""
        services = SERVICES if service is None else (service,)
        if not self.apart:
            return services
        return tuple(
            replica_name(name, i) for name in services for i in range(1, self.replicas + 1)
        )

    def tiers(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The first replica of each service, then the others: a service's first process
        creates its tables alone (concurrent CREATE TABLE IF NOT EXISTS can collide)."""
        if not self.apart:
            return SERVICES, ()
        first = tuple(replica_name(name, 1) for name in SERVICES)
        return first, tuple(name for name in self.names() if name not in first)

    def service_of(self, name: str) -> str | None:
        """The service a replica belongs to; None for any other name."""
        match = _REPLICA.fullmatch(name)
        if not self.apart or match is None or name not in self.names():
            return None
        return match["service"]

    def is_replica(self, name: str) -> bool:
        return self.service_of(name) is not None

    def own_port(self, name: str) -> int:
        """The replica's private port (chosen on first use, the same across its restarts)."""
        if name not in self._own_ports:
            self._own_socket(name)
        return self._own_ports[name]

    def pass_fds(self, name: str) -> tuple[int, ...]:
        """The sockets a replica inherits: its service's port, then its own."""
        service = self.service_of(name)
        if service is None:
            return ()
        return (self._shared_socket(service).fileno(), self._own_socket(name).fileno())

    def environment(self, name: str) -> dict[str, str]:
        """Its sockets, and its name as its PostgreSQL connections' application_name (libpq
        reads PGAPPNAME), so pg_stat_activity tells the replicas apart."""
        fds = self.pass_fds(name)
        return {LISTEN_FDS: ",".join(map(str, fds)), "PGAPPNAME": name} if fds else {}

    def spawned(self, name: str) -> None:
        """The replica has inherited its sockets: drop our copy of its private one."""
        own = self._own.pop(name, None)
        if own is not None:
            own.close()

    def close(self) -> None:
        """Close the supervisor's copies of the sockets (once every replica has stopped)."""
        for sock in (*self._shared.values(), *self._own.values()):
            sock.close()
        self._shared.clear()
        self._own.clear()

    def _shared_socket(self, service: str) -> socket.socket:
        if service not in self._shared:
            self._shared[service] = _listen(service, self.ports.of(service))
        return self._shared[service]

    def _own_socket(self, name: str) -> socket.socket:
        if name not in self._own:
            self._own[name] = _listen(name, self._own_ports.get(name, 0))
            self._own_ports[name] = int(self._own[name].getsockname()[1])
        return self._own[name]


def _listen(name: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A port left in TIME_WAIT by the previous run may be bound again at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        raise StackError(name, f"{name}: port {port} is already in use ({error})") from error
    sock.listen(BACKLOG)
    return sock
