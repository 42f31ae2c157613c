"""The `refunds` command line: local stack, staff tokens, platform API keys, AsyncAPI file,
review's policy versions, payout reconciliation, customer message templates, audits. One
module per command group."""

from __future__ import annotations

import argparse

from refunds.cli import (
    api_keys,
    asyncapi,
    audit,
    dev,
    notify,
    payouts,
    policies,
    providers,
    token,
)
from refunds.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from refunds.cli.dev import EXAMPLE_REFUND, banner, curl_example

__all__ = [
    "EXAMPLE_REFUND",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "banner",
    "build_parser",
    "curl_example",
    "main",
]


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; return its exit code (argparse exits 2 itself on bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refunds", description="Event-sourced refund workflow: developer commands."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for group in (dev, token, api_keys, asyncapi, policies, providers, payouts, notify, audit):
        group.add(commands)
    return parser
