"""PyTorch timing of one tpdiff training microbatch (forward + MSE loss + backward).

Usage: bench_torch.py CONFIG.yaml [--threads 2] [--iters 5] [--warmup 2]

Builds the reference DiT (dit_ref.DiT, float32) with the shape of a tpdiff YAML config, runs
full-rate microbatches (stage = stages - 1) of train.clips_per_microbatch clips and prints
exactly one line on stdout: `torch_ms_per_step <median milliseconds>`. This is the yardstick
the C backend's step time is compared with.
"""

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_ref import DiT, dit_init  # noqa: E402


def config_value(config, section, key, default=None):
    """config[section][key]; a missing key without a default is a one-line error."""
    value = (config.get(section) or {}).get(key, default)
    if value is None:
        sys.exit(f"bench_torch: config has no {section}.{key}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="tpdiff YAML config")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--iters", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.threads < 1:
        sys.exit("bench_torch: --iters and --threads must be >= 1, --warmup >= 0")

    try:
        with open(args.config) as f:
            config = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        sys.exit(f"bench_torch: {args.config}: {exc}")
    if not isinstance(config, dict):
        sys.exit(f"bench_torch: {args.config}: expected a YAML mapping")

    depth = int(config_value(config, "model", "depth"))
    dim = int(config_value(config, "model", "dim"))
    heads = int(config_value(config, "model", "heads"))
    patch = int(config_value(config, "model", "patch"))
    classes = int(config_value(config, "model", "classes", 0))
    frames = int(config_value(config, "data", "frames"))
    height = int(config_value(config, "data", "height"))
    width = int(config_value(config, "data", "width"))
    channels = int(config_value(config, "data", "channels"))
    stages = int(config_value(config, "pyramid", "stages", 1))
    clips = int(config_value(config, "train", "clips_per_microbatch"))

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DiT(depth, dim, heads, patch, classes, channels, stages).float()
    dit_init(model)
    # DiT init zeroes the adaLN and final linears; perturb everything so the timed work is that
    # of a trained model (no all-zero operand, no gate that short-circuits a branch).
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))

    x = torch.randn(clips, channels, frames, height, width)
    t = torch.rand(clips)
    y = torch.randint(0, classes, (clips,)) if classes > 0 else None
    target = torch.randn_like(x)
    stage = stages - 1  # full frame rate: the most expensive stage

    times_ms = []
    for i in range(args.warmup + args.iters):
        model.zero_grad(set_to_none=False)
        start = time.perf_counter()
        loss = F.mse_loss(model(x, t, y, stage), target)
        loss.backward()
        elapsed_ms = 1000.0 * (time.perf_counter() - start)
        if i >= args.warmup:
            times_ms.append(elapsed_ms)
    print(f"torch_ms_per_step {statistics.median(times_ms):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
