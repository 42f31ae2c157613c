"""`refunds asyncapi`: write the AsyncAPI document of the Kafka events."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from refunds.cli.common import EXIT_OK


def add(commands: Any) -> None:
    asyncapi = commands.add_parser(
        "asyncapi",
        help="write the AsyncAPI document of the Kafka events",
        description="Generate the AsyncAPI document for the integration events.",
    )
    asyncapi.add_argument(
        "--output", type=Path, default=Path("docs/asyncapi.json"), help="default: %(default)s"
    )
    asyncapi.set_defaults(handler=run_asyncapi)


def run_asyncapi(args: argparse.Namespace) -> int:
    from refunds.asyncapi import generate  # only this subcommand needs the schemas

    document = generate()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
    return EXIT_OK
