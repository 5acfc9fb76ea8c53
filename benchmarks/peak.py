"""Run a module as __main__ and print this process's peak RSS (MiB) as the last stderr line.

    python -m benchmarks.peak smplify.cli fit photo.jpg --out out
"""
import resource
import runpy
import sys

if __name__ == "__main__":
    module = sys.argv[1]
    sys.argv = [module] + sys.argv[2:]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__")
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        print(f"PEAK_RSS_MIB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0:.1f}", file=sys.stderr)
    sys.exit(code)
