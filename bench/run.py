"""All benchmarks, each against its bare-library baseline measured in the same run."""

from __future__ import annotations

import asyncio
import sys

from bench import matrix_round_trip, telegram_round_trip, workers


def main() -> int:
    people = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    asyncio.run(telegram_round_trip.main(people, rounds=3))
    print()
    asyncio.run(matrix_round_trip.main(peers=10, messages=5, rounds=3))
    print()
    asyncio.run(workers.main(people=1000))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
