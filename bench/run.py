"""All benchmarks, each against its bare-library baseline measured in the same run; every target
is printed with whether it is met, and a summary at the end.

Usage: python -m bench.run [--quick]   (``make bench``; ``make bench ARGS=--quick``)
"""

from __future__ import annotations

import argparse
import asyncio

from bench import fanout, fanout_matrix, matrix_round_trip, memory, telegram_round_trip, workers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (fan-out 2,000; bulletin 10,000)")
    options = parser.parse_args()
    results: dict[str, bool] = {}

    results["Telegram round trip <= 1.5 x bare PTB"] = asyncio.run(telegram_round_trip.main(200, rounds=3))
    print()
    people = 2_000 if options.quick else 10_000
    bulk = 10_000 if options.quick else 50_000
    results["Telegram fan-out (rate, x PTB, real limits, replies)"] = fanout.telegram_report(
        people, bulk, 15.0 if options.quick else 30.0)
    print()
    results["Matrix fan-out >= 0.8 x bare nio"] = fanout_matrix.report(50)
    print()
    results["memory < 200 MB"] = memory.report(100_000, 10_000)
    print()
    asyncio.run(matrix_round_trip.main(peers=10, messages=5, rounds=3))  # reported; no target of its own
    print()
    asyncio.run(workers.main(people=1000 if options.quick else 2000))  # PostgreSQL, one and two workers
    print()
    print("Summary")
    for name, met in results.items():
        print(f"  {'met    ' if met else 'NOT MET'}  {name}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
