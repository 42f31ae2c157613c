"""`refunds policies`: publish a refund policy document to review, and list the versions.

Publishing is how a deployment turns returns on (退货退款): the shipped default has no
`returns:` section; `services/review/example_return_policy.yaml` is a complete one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from refunds.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    add_admin_call_options,
    add_group,
    aligned,
    problem_text,
    staff_token,
)

REVIEW_URL = "http://127.0.0.1:8002"
EXAMPLE = "services/review/example_return_policy.yaml"


def add(commands: Any) -> None:
    actions = add_group(
        commands,
        "policies",
        help="publish and list review's refund policy versions",
        description="Publish a refund policy document to a running review service "
        "(POST /v1/policies) or list the versions it has had. Every decision cites the "
        "version and rule it used.",
    )
    publish = actions.add_parser(
        "publish",
        help="validate a policy YAML file and publish it as the version in force",
        description="Validate FILE here (the same model review uses), then publish it. "
        "The document's `version` must be new. Publishing the same file again with the "
        "same --key answers the first publication. Exit status: 0 published, 2 invalid "
        "file, refused or unreachable.",
        epilog=f"example: refunds policies publish {EXAMPLE}",
    )
    publish.add_argument("file", type=Path, metavar="FILE", help="the policy document (YAML)")
    publish.add_argument(
        "--key",
        metavar="KEY",
        help="Idempotency-Key (default: derived from the document's version)",
    )
    listing = actions.add_parser(
        "list", help="the versions published, oldest first, and which is in force"
    )
    for parser in (publish, listing):
        add_admin_call_options(parser, "review", REVIEW_URL)
    publish.set_defaults(handler=run_publish)
    listing.set_defaults(handler=run_list)


def run_publish(args: argparse.Namespace) -> int:
    import httpx  # only the commands that talk HTTP load it

    from services.review.policy_document import load_policy

    where = "refunds policies publish"
    try:
        policy = load_policy(args.file)
    except (OSError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        print(f"{where}: {args.file} is not a valid policy:\n{error}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or staff_token("admin", where)
    if token is None:
        return EXIT_USAGE
    key = args.key or f"policy-{policy.version}"
    try:
        response = httpx.post(
            f"{args.url}/v1/policies",
            json=policy.model_dump(mode="json", by_alias=True),
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            timeout=args.timeout,
        )
    except httpx.HTTPError as error:
        print(f"{where}: cannot reach {args.url}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if response.status_code not in (200, 201):
        print(f"{where}: {problem_text(response)}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(response.json(), ensure_ascii=False))
    else:
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        again = " (published before under this key)" if replayed else ""
        returns = "with" if policy.returns is not None else "without"
        print(f"Published policy {policy.version} ({returns} returns){again}.")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    import httpx

    where = "refunds policies list"
    token = args.token or staff_token("admin", where)
    if token is None:
        return EXIT_USAGE
    try:
        response = httpx.get(
            f"{args.url}/v1/policies",
            headers={"Authorization": f"Bearer {token}"},
            timeout=args.timeout,
        )
    except httpx.HTTPError as error:
        print(f"{where}: cannot reach {args.url}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if response.status_code != 200:
        print(f"{where}: {problem_text(response)}", file=sys.stderr)
        return EXIT_USAGE
    answer = response.json()
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
        return EXIT_OK
    print(versions_table(answer))
    return EXIT_OK


def versions_table(answer: dict[str, Any]) -> str:
    rows = [("VERSION", "PUBLISHED BY", "AT", "")]
    for entry in answer["data"]:
        in_force = "in force" if entry["current"] else ""
        rows.append((entry["version"], entry["by"], str(entry["at"]), in_force))
    return "\n".join(aligned(rows))
