"""Run every benchmark in turn (`make bench`); each writes benchmarks/results/<name>.{json,md}.

Each runs in a process of its own, so that the peak memory it reports is its own (bench_kinematics's
batch-1024 meshes would otherwise set every later benchmark's peak).
"""
import subprocess
import sys

BENCHES = ("bench_kinematics", "bench_detect", "bench_priors", "bench_fit", "bench_regressor", "bench_video",
           "bench_defaults")

if __name__ == "__main__":
    only = sys.argv[1:] or BENCHES
    failed = []
    for name in only:
        print(f"== {name}", flush=True)
        args = ["--save"] if name in ("bench_detect", "bench_video", "bench_defaults") else []
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args]).returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
