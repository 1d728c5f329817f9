"""`make references`: regenerate every chapter's reference data (gen_chNN.py modules, in order).

    python -m autograder.references.generate          # all chapters
    python -m autograder.references.generate ch01     # one chapter
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    available = sorted(p.stem.removeprefix("gen_") for p in Path(__file__).parent.glob("gen_ch*.py"))
    wanted = argv or available
    unknown = [w for w in wanted if w not in available]
    if unknown:
        print(f"error: no generator for {', '.join(unknown)}; available: {', '.join(available)}")
        return 2
    for chapter in wanted:
        print(f"== {chapter}", flush=True)
        importlib.import_module(f"autograder.references.gen_{chapter}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
