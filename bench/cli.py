"""`python -m bench`: run the scenarios on this machine, print the tables, optionally write JSON.

Needs root and the cgroup2 mount; everything it creates lives below one
uniquely named cgroup (`<mount>/wnr-bench-<random>`) and a temporary
directory, both removed at the end, also after a failure, Ctrl-C or SIGTERM.

    python -m bench                    # full sizes, 5 runs
    python -m bench --quick            # every scenario once at small sizes (< 1 minute)
    python -m bench --runs 3 --json new.json --compare old.json
    python -m bench --only scale --jobs 256,2000 --plot curve.png --check
    python -m bench --plot curve.png --from new.json   # replot, measuring nothing

The order of a run is bench.run's. The numbers are printed; with `--check`
(full mode only) the exit status is 3 when a judged ratio misses its goal,
else it is 1 when something could not be measured, else 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench import churn, curve, plot, report
from bench.common import Sandbox, open_sandbox
from bench.goals import QUICK, Sizes
from bench.run import Bench
from bench.scale import JOBS_PER_SLOT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every scenario once, small sizes")
    parser.add_argument("--runs", type=int, default=None, help="runs (default 5; 1 with --quick)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--compare", type=Path, help="a JSON file of an earlier run to compare")
    parser.add_argument(
        "--check", action="store_true", help="exit 3 when a judged ratio misses its goal"
    )
    parser.add_argument(
        "--jobs", type=_sizes, help="fleet sizes of the per-job curve (default 100,256,1000,2000)"
    )
    parser.add_argument(
        "--only", choices=("table", "scale"), help="only the table's scenarios, or only the curve"
    )
    parser.add_argument("--plot", type=Path, help="also draw the per-job curve as this PNG")
    parser.add_argument(
        "--from", dest="source", type=Path, help="with --plot: replot this JSON, measure nothing"
    )
    args = parser.parse_args(argv)
    if args.source is not None and args.plot is None:
        parser.error("--from replots a saved result: it needs --plot FILE.png")
    return args


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of job counts: {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"job counts must be positive: {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every scenario was measured (see the module for 1 and 3)."""
    args = parse_args(argv)
    if args.source is not None:
        return replot(args.source, args.plot)
    sizes = QUICK if args.quick else Sizes()
    if args.jobs is not None:
        sizes = replace(sizes, scale_jobs=args.jobs)
    box = open_sandbox("bench")
    if box is None:
        return 1
    try:
        result, bench = measure(box, sizes, args)
    except KeyboardInterrupt:
        print("bench: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        box.close()
    show(result, bench, args)
    for error in bench.errors:
        print(f"bench: {error}", file=sys.stderr)
    return _verdict(result, args.check)


def measure(box: Sandbox, sizes: Sizes, args: argparse.Namespace) -> tuple[dict[str, Any], Bench]:
    """Every run of the selected parts, and their result."""
    began, machine = time.monotonic(), report.machine()
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    bench = Bench(box, sizes)
    for run in range(1, runs + 1):
        if args.only != "scale":
            bench.run(run)
        if args.only != "table":
            bench.scaled(run)
    mode = "quick" if args.quick else "full"
    result = report.result(
        machine, mode, runs=runs, sizes=sizes, metrics=bench.metrics, errors=bench.errors
    )
    result["seconds"] = round(time.monotonic() - began, 1)
    result["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    if bench.churn is not None:
        result["churn"] = [asdict(sample) for sample in bench.churn.samples]
    if args.only != "table":
        result["curve"] = curve.points(bench.metrics, sizes.scale_jobs, mode == "full")
    if args.only == "scale":  # the table's rows would all be empty
        result["rows"] = []
    return result, bench


def show(result: dict[str, Any], bench: Bench, args: argparse.Namespace) -> None:
    """Print the tables (and the comparison), write the JSON."""
    print(report.table(result))
    if "curve" in result:
        print(f"\nper-job curve, {JOBS_PER_SLOT} jobs to a slot, each slot with an agent:\n")
        print(curve.table(result["curve"]))
    if bench.churn is not None:
        print(f"\nchurn, every {max(1, bench.s.churn_jobs // churn.SAMPLES)} jobs:\n")
        print(churn.curve(bench.churn))
    if args.compare is not None:
        print(report.compare(result, report.load(args.compare)))
    if args.json is not None:
        report.save(result, args.json)
    if args.plot is not None and "curve" in result:
        plot.plot(result, args.plot)


def replot(source: Path, target: Path) -> int:
    """`--plot FILE.png --from RESULT.json`: the saved curve, printed and drawn; 1 without one."""
    data = report.load(source)
    if not data.get("curve"):
        print(f"bench: {source} holds no per-job curve", file=sys.stderr)
        return 1
    print(curve.table(data["curve"]))
    plot.plot(data, target)
    return 0


def _verdict(result: dict[str, Any], check: bool) -> int:
    """The exit status, with what `--check` found said on stderr."""
    if check and result["mode"] != "full":
        print("bench: --check: quick mode never asserts", file=sys.stderr)
    for missed in report.misses(result) if check and result["mode"] == "full" else []:
        print(f"bench: missed: {missed}", file=sys.stderr)
    return report.exit_status(result, check)


if __name__ == "__main__":
    sys.exit(main())
