"""Who leads what across a stack's replicas, from each replica's own /metrics."""

from __future__ import annotations

from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

Role = tuple[str, str]  # (service, role)


def role_gauges(url: str) -> dict[str, dict[tuple[str, str, str], float]]:
    """refunds_role_active and refunds_role_epoch of one replica, by (service, role, replica)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    found: dict[str, dict[tuple[str, str, str], float]] = {
        "refunds_role_active": {},
        "refunds_role_epoch": {},
    }
    for family in text_string_to_metric_families(text):
        if family.name in found:
            for sample in family.samples:
                labels = sample.labels
                key = (labels["service"], labels["role"], labels["replica"])
                found[family.name][key] = sample.value
    return found


class Leadership:
    """The role gauges of every replica, read at one moment."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.active: dict[Role, dict[str, bool]] = defaultdict(dict)
        self.epochs: dict[Role, dict[str, int]] = defaultdict(dict)
        for url in urls.values():
            gauges = role_gauges(url)
            for (service, role, replica), value in gauges["refunds_role_active"].items():
                self.active[service, role][replica] = value == 1
            for (service, role, replica), value in gauges["refunds_role_epoch"].items():
                self.epochs[service, role][replica] = int(value)

    def leased(self) -> set[Role]:
        """Roles with a lease held somewhere (the others run in every replica)."""
        return set(self.epochs)

    def leaders(self, role: Role) -> list[str]:
        return sorted(replica for replica, on in self.active[role].items() if on)

    def problems(self, replicas_per_service: int, expected_leased: set[Role]) -> list[str]:
        """What is wrong with the leadership now: empty when one replica leads each leased
        role (and holds its lease), and every other role runs in every replica."""
        wrong = [f"{role} is not leased by anyone" for role in expected_leased - self.leased()]
        for role, replicas in sorted(self.active.items()):
            leaders = self.leaders(role)
            if role in self.leased() or role in expected_leased:
                holders = sorted(self.epochs.get(role, {}))
                if len(leaders) != 1 or holders != leaders:
                    wrong.append(f"{role}: running in {leaders}, lease held by {holders}")
            elif len(leaders) != replicas_per_service:
                wrong.append(f"{role} (not leased) runs only in {leaders} of {sorted(replicas)}")
        return wrong
