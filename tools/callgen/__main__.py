"""Command line: ``python -m tools.callgen --set NAME --out DIR [--seed N]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tools.callgen.render import TurnRenderer, default_cache_dir
from tools.callgen.sets import SETS

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    """Generates one named call set."""
    parser = argparse.ArgumentParser(prog="python -m tools.callgen", description=__doc__)
    parser.add_argument("--set", required=True, choices=sorted(SETS), dest="set_name")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache_dir(),
        help="rendered-turn cache (default %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    renderer = TurnRenderer(args.cache)
    SETS[args.set_name](args.out, args.seed, renderer)
    logger.info("set %s done: %d turns rendered by Festival", args.set_name, renderer.rendered)


if __name__ == "__main__":
    main()
