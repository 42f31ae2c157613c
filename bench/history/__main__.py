"""`python -m bench.history --data-dir DIR | --postgres URL [--schema-prefix P] --refunds N`"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from bench.history import seed_history
from refunds.stores import Stores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history",
        description="Store N completed refunds' history in a STOPPED stack's stores.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="SQLite stores")
    parser.add_argument("--postgres", metavar="URL", help="postgresql://… instead of SQLite")
    parser.add_argument(
        "--schema-prefix",
        default="refunds",
        help="with --postgres: schemas PREFIX_<service>, as `refunds dev` (default: refunds)",
    )
    parser.add_argument("--refunds", type=int, required=True, help="how many refunds")
    args = parser.parse_args(argv)
    stores = Stores(args.data_dir, args.postgres, args.schema_prefix if args.postgres else None)
    with tqdm(total=args.refunds, unit="refund", desc="seeding") as bar:
        seeded = seed_history(stores, args.refunds, progress=bar.update)
    print(
        f"{seeded.refunds} refunds in {seeded.seconds:.1f} s "
        f"({seeded.rate:.0f} refunds/s, {seeded.seconds / 60:.1f} min)"
    )
    print(json.dumps(seeded.counts, indent=1))


if __name__ == "__main__":
    main()
