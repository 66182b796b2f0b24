"""postsync benchmarks, each run side by side with its baseline in alternating order.

    python bench/run.py                 # everything, writes bench/RESULTS.md
    python bench/run.py --only B1,B3    # some workloads
    python bench/run.py --scale 0.1     # smaller data (a quick look; not for RESULTS.md)
    python bench/run.py --only B4 --databases postgresql   # B4 on PostgreSQL only

Every timing is a whole command in a fresh process (setup excluded), repeated
`--rounds` times with the workload and its baseline alternating which goes first; the
results are medians and the ratio workload/baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.feeds import b8
from bench.files import b2, b3
from bench.harness import ROOT, Result
from bench.post import b5, b6
from bench.report import write_results
from bench.startup import COMPILE, b1
from bench.sync import (
    SyncSetup,
    b4_b7,
    drop_sqlite,
    postgresql_driver,
    sqlite_driver,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="B1,B2,B3,B4,B5,B6,B7,B8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--databases",
        default="sqlite,postgresql",
        help="the databases B4 runs on (B7: SQLite's), e.g. --databases postgresql",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="postsync-bench-"))
    # every workload runs postsync's modules compiled, as an install has them
    subprocess.run([sys.executable, "-c", COMPILE], cwd=work, check=True)
    results: list[Result] = []
    pg_version = "not run"
    try:
        if "B1" in only:
            results += b1(work, args.rounds)
        if "B2" in only:
            results += b2(work, args.rounds * 2, args.scale)
        if "B3" in only:
            results += b3(work, args.rounds, args.scale)
        if "B5" in only:
            results += b5(work, args.rounds, args.scale)
        if "B6" in only:
            results += b6(work, args.rounds, args.scale)
        if "B8" in only:
            results += b8(work, args.rounds, args.scale)
        databases = set(args.databases.split(","))
        if only & {"B4", "B7"} and "sqlite" in databases:
            sqlite_dir = work / "sqlite"
            sqlite_dir.mkdir()
            results += b4_b7(
                work,
                args.rounds,
                args.scale,
                SyncSetup(
                    lambda n: f"sqlite:///{sqlite_dir / n}.db", "SQLite", drop_sqlite, sqlite_driver
                ),
            )
        if "B4" in only and "postgresql" in databases:
            from tests.pgserver import ServerUnavailable, start_server

            try:
                server = start_server()
            except ServerUnavailable as exc:
                pg_version = f"not available ({exc})"
            else:
                try:
                    out = subprocess.run(
                        [str(server.bindir / "postgres"), "--version"],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    pg_version = out.stdout.strip() + " (fsync off, in a temporary directory)"
                    results += b4_b7(
                        work,
                        args.rounds,
                        args.scale,
                        SyncSetup(
                            server.create_database,
                            "PostgreSQL",
                            server.drop_database,
                            postgresql_driver,
                        ),
                    )
                finally:
                    server.stop()
        for r in results:
            print(
                f"{r.key}: ours {r.ours_median:.3f}s base {r.base_median:.3f}s ratio {r.ratio:.2f}x"
                f" target {r.target} {r.extra} {r.notes}",
                flush=True,
            )
        write_results(results, args.output, args, pg_version)
        print(f"wrote {args.output}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
