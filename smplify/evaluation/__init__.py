"""Accuracy evaluation: fits scored against known 3D — synthetic scenes (scenes, synthetic, runner, plots,
images: `smplify benchmark` / `compare-priors`), synthetic video clips (clips: tuning the sequence fit) and
the real capture (realcapture: single frames; realcapture_video: each camera as a clip). The speed
benchmarks are the top-level ``benchmarks/`` scripts."""
