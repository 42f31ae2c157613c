"""Every service's ledger over HTTP, for auditors: the log, one refund's entries, checkpoints."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import AwareDatetime, BaseModel, Field

from shared.aio import every
from shared.http import Problem, on_state, problem_responses
from shared.ledger import Checkpoint, Correlate, Entry, Ledger, data_of
from shared.ledger_verify import verify_ledger
from shared.problems import invalid
from shared.runtime import Worker
from shared.schemas import example
from shared.settings import ServiceSettings
from shared.staff import Staff, staff_member, staff_problem_responses

SEAL_INTERVAL_SECONDS = 0.5
AUDIT_ROLES = ("auditor", "admin")

_ENTRY_EXAMPLE: dict[str, Any] = {
    "position": 42,
    "time": "2026-11-21T09:30:12.345678+00:00",
    "aggregate_id": "5b0e2f0c-9a1e-4c55-8d7e-3c1f6c2d9a10",
    "aggregate_version": 3,
    "type": "RefundRequest.Approved",
    "actor": "staff:li.wei",
    "via": "event:refund.approved.v1",
    "causation_id": "9f1d6a2e-3c4b-5d6e-8f70-1a2b3c4d5e6f",
    "correlation_id": "rf_5b0e2f0c9a1e4c558d7e3c1f6c2d9a10",
    "event_id": "0c1d2e3f-4a5b-5c6d-9e7f-8091a2b3c4d5",
    "hash": "9d20c8c0ec55253948abd1528c22c557fc23d571b57c646d6ef7d7d246bee1f7",
    "leaf_hash": "fa79c0ddbe18c93f651eeab92c34f9dcb033a2cba323a67c3d7144f64b4d9bde",
    "data": {"amount": {"_type_": "money", "_data_": {"amount": 12900, "currency": "CNY"}}},
}


class AuditEntry(BaseModel):
    """One stored event as the ledger holds it."""

    position: int = Field(description="position in this service's event log")
    time: str = Field(description="when the event was stored (RFC 3339)")
    aggregate_id: str
    aggregate_version: int
    type: str = Field(description="the domain event, e.g. `RefundRequest.Approved`")
    actor: str = Field(
        description="tenant key (`tenant:…`), staff person (`staff:…`) or `system:…`"
    )
    via: str | None = Field(
        None, description="the credential or upstream event type the actor acted through"
    )
    causation_id: str | None = Field(
        None, description="the request (`req_…`) or upstream CloudEvent id that caused it"
    )
    correlation_id: str | None = Field(None, description="the refund it concerns")
    event_id: str = Field(description="the CloudEvent id it is published under, if published")
    hash: str = Field(description="sha256(previous hash ‖ canonical event bytes), hex")
    leaf_hash: str = Field(description="sha256(canonical event bytes), hex")
    data: dict[str, Any] | None = Field(
        None, description="the stored state; personal data only as stored (encrypted or masked)"
    )

    model_config = example(_ENTRY_EXAMPLE)


class AuditLog(BaseModel):
    object: str = "list"
    service: str
    data: list[AuditEntry]
    has_more: bool
    next_after: int | None = Field(None, description="pass as `after` for the next page")


class SignedCheckpoint(BaseModel):
    service: str
    size: int = Field(description="ledger entries covered")
    position: int = Field(description="log position of the last entry covered")
    head: str = Field(description="chain hash after that entry")
    at: str = Field(description="when it was signed")
    key_id: str
    signature: str = Field(
        description='Ed25519 over {"at","head","position","service","size"} as compact, '
        "key-sorted JSON, base64"
    )


class Checkpoints(BaseModel):
    service: str
    public_key: str = Field(description="this service's Ed25519 public key, base64")
    key_id: str
    data: list[SignedCheckpoint]


def entry_view(entry: Entry, data: dict[str, Any] | None) -> AuditEntry:
    return AuditEntry(
        position=entry.position,
        time=entry.at,
        aggregate_id=entry.originator_id,
        aggregate_version=entry.originator_version,
        type=entry.type,
        actor=entry.actor,
        via=entry.via,
        causation_id=entry.causation,
        correlation_id=entry.correlation,
        event_id=entry.event_id,
        hash=entry.chain,
        leaf_hash=entry.leaf,
        data=data,
    )


def with_data(ledger: Ledger, entries: list[Entry]) -> list[AuditEntry]:
    stored = ledger.stored([entry.position for entry in entries])
    return [
        entry_view(entry, data_of(stored[entry.position]) if entry.position in stored else None)
        for entry in entries
    ]


def checkpoint_view(checkpoint: Checkpoint) -> SignedCheckpoint:
    return SignedCheckpoint.model_validate(checkpoint, from_attributes=True)


# The composition root puts the service's ledger on `http.state.ledger` and includes `router`.
Auditor = Annotated[Staff, Depends(staff_member(*AUDIT_ROLES))]
TheLedger = Annotated[Ledger, on_state("ledger")]
router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=staff_problem_responses(401, 403))


@router.get("/log", response_model=AuditLog, responses=problem_responses(422))
def audit_log(
    _: Auditor,
    ledger: TheLedger,
    after: Annotated[int, Query(ge=0, le=2**62, description="log position to start after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    since: Annotated[
        AwareDatetime | None, Query(description="only events stored at or after this time")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="only events stored before this time")
    ] = None,
) -> AuditLog:
    """Every stored event of this service in log order, with its actor, causes and hashes;
    `since`/`until` keep the events of a time range (still in log order, paged by position)."""
    if since is not None and until is not None and until <= since:
        raise invalid("until", "empty_range", "must be after `since`")
    ledger.seal()
    entries = ledger.entries(after=after, limit=limit + 1, since=since, until=until)
    page = entries[:limit]
    next_after = page[-1].position if page else None
    return log_of(ledger, page, has_more=len(entries) > limit, next_after=next_after)


@router.get("/latest", response_model=AuditLog)
def latest_entries(
    _: Auditor, ledger: TheLedger, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> AuditLog:
    """The newest entries, newest first (to find the refunds touched lately)."""
    ledger.seal()
    return log_of(ledger, ledger.latest(limit))


@router.get("/refunds/{refund_id}", response_model=AuditLog)
def refund_entries(_: Auditor, ledger: TheLedger, refund_id: str) -> AuditLog:
    """This service's ledger entries about one refund (for the cross-service timeline)."""
    ledger.seal()
    return log_of(ledger, ledger.for_refund(refund_id))


@router.get("/checkpoints", response_model=Checkpoints)
def checkpoints(_: Auditor, ledger: TheLedger) -> Checkpoints:
    """The signed checkpoints, and the key to check them with."""
    return _checkpoints(ledger)


@router.post("/checkpoints", response_model=SignedCheckpoint, responses=problem_responses(409))
def checkpoint_now(_: Auditor, ledger: TheLedger) -> SignedCheckpoint:
    """Seal and sign the ledger's head now. Safe to repeat: an unchanged head is signed once."""
    made = ledger.checkpoint()
    if made is None:
        raise Problem(409, "Nothing to sign", "The ledger is empty.", kind="empty_ledger")
    return checkpoint_view(made)


class VerifyFinding(BaseModel):
    kind: str = Field(description="altered, deleted, inserted, reordered, ledger_rewritten, …")
    position: int | None
    detail: str


class Verification(BaseModel):
    """The ledger recomputed from the stored events now (as `refunds audit verify` does)."""

    model_config = example(
        {
            "service": "review",
            "ok": False,
            "events": 120,
            "sealed": 118,
            "unsealed": 2,
            "checkpoints": 3,
            "verified_checkpoints": 3,
            "signed_through": 100,
            "findings": [
                {"kind": "deleted", "position": 42, "detail": "ReviewCase.Approved of … is gone"}
            ],
        }
    )

    service: str
    ok: bool = Field(description="no findings")
    events: int
    sealed: int
    unsealed: int = Field(description="stored after the last seal (checked at the next)")
    checkpoints: int
    verified_checkpoints: int
    signed_through: int = Field(description="log position the last verified checkpoint covers")
    findings: list[VerifyFinding]


@router.get("/verify", response_model=Verification)
def verify(_: Auditor, ledger: TheLedger) -> Verification:
    """Check this service's ledger against its stored events and its own signed checkpoints."""
    ledger.seal()
    report = verify_ledger(ledger, ledger.signer.public_key if ledger.signer else None)
    return Verification(
        service=report.service,
        ok=report.ok,
        events=report.events,
        sealed=report.sealed,
        unsealed=report.unsealed,
        checkpoints=report.checkpoints,
        verified_checkpoints=report.verified_checkpoints,
        signed_through=report.signed_through,
        findings=[VerifyFinding(**vars(f)) for f in report.findings],
    )


def log_of(
    ledger: Ledger, entries: list[Entry], has_more: bool = False, next_after: int | None = None
) -> AuditLog:
    """`entries` as answered, each with its stored data."""
    return AuditLog(
        service=ledger.service,
        data=with_data(ledger, entries),
        has_more=has_more,
        next_after=next_after,
    )


def _checkpoints(ledger: Ledger) -> Checkpoints:
    assert ledger.signer is not None
    return Checkpoints(
        service=ledger.service,
        public_key=ledger.signer.public_key,
        key_id=ledger.signer.key_id,
        data=[checkpoint_view(c) for c in ledger.checkpoints()],
    )


@dataclass
class Auditing:
    ledger: Ledger
    roles: dict[str, Worker]  # the loops to run, by role (refunds_role_active)

    def serve(self, http: FastAPI) -> None:
        """Answer the audit routes on `http`: its state holds the ledger they read."""
        http.state.ledger = self.ledger
        http.include_router(router)


def auditing(app: Any, settings: ServiceSettings, correlate: Correlate | None = None) -> Auditing:
    """A service's ledger (its routes: `serve`), the sealer and the periodic checkpoint."""
    ledger = Ledger(app, signer=settings.audit_signer(app.service), correlate=correlate)
    roles = {
        "ledger_sealer": every(
            SEAL_INTERVAL_SECONDS, ledger.seal, what="ledger seal", bell=app.appended
        ),
        "checkpoint_signer": every(
            settings.audit_checkpoint_seconds, ledger.checkpoint, what="ledger checkpoint"
        ),
    }
    return Auditing(ledger, roles)
