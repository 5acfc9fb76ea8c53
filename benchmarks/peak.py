"""Run a module as __main__ and print this process's peak RSS (MiB) as the last stderr line.

    python -m benchmarks.peak smplify.cli fit photo.jpg --out out
"""
import runpy
import sys

from benchmarks.common import peak_rss_mb

if __name__ == "__main__":
    module = sys.argv[1]
    sys.argv = [module] + sys.argv[2:]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__")
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        print(f"PEAK_RSS_MIB {peak_rss_mb():.1f}", file=sys.stderr)
    sys.exit(code)
