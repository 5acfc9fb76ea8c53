"""Accuracy evaluation: fits scored against known 3D — synthetic scenes (scenes, synthetic, runner, plots,
images: `smplify benchmark` / `compare-priors`) and the real capture (realcapture). The speed benchmarks
are the top-level ``benchmarks/`` scripts."""
