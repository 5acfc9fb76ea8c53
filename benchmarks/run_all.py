"""Run every benchmark in turn (`make bench`); each writes benchmarks/results/<name>.{json,md}."""
import importlib
import sys

BENCHES = ("bench_kinematics", "bench_detect", "bench_priors", "bench_fit", "bench_regressor")

if __name__ == "__main__":
    only = sys.argv[1:] or BENCHES
    for name in only:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main(["--save"] if name == "bench_detect" else [])
