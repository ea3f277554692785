"""Parity check of a tpdiff C model dump against the PyTorch reference (dit_ref.DiT).

Usage: check_parity.py DIR [--dtype float64|float32]

DIR holds what the C side wrote (all arrays .npy, little-endian):
  meta.json                 model shape, stage, clip count, optimiser settings, train_steps
  params/<name>.npy         every parameter by its PyTorch name (initial weights)
  x.npy t.npy [y.npy] target.npy   one microbatch at stage `stage` (y only when classes > 0)
  out.npy loss.npy grads/<name>.npy   the C output, mean-squared-error loss and its gradients
  train/ (when train_steps > 0)  x0.npy noise.npy t.npy [y.npy] losses.npy grad_norms.npy

The reference runs in float64 by default, so its own rounding is negligible next to fp32's and
every difference measured is the C side's. Prints one `PASS|FAIL <what> err=<value>` line per
check and a summary line; exits 0 when every check passed, 1 when any failed, 2 when the dump
is unusable (missing or malformed file: one line on stderr names it).
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_ref import DiT, adamw_param_groups  # noqa: E402

LIMIT = 1e-4
LIMIT_TEXT = "1e-4"
TINY = 1e-30

MODEL_KEYS = ("depth", "dim", "heads", "patch", "classes", "channels", "frames", "height",
              "width", "stages", "stage", "clips")
TRAIN_KEYS = ("lr", "beta1", "beta2", "adam_eps", "weight_decay", "grad_clip", "warmup")


class UnusableInput(Exception):
    """The dump cannot be checked at all (missing or malformed file or key)."""


def normwise_error(c, ref):
    """max|c - ref| / max(max|ref|, 1e-30).

    Normwise, not elementwise, relative error: many entries of an output or a gradient sit near
    zero, where |c - ref| / |ref| is dominated by rounding noise and says nothing about
    correctness. Scaling by the tensor's largest magnitude measures the error against the size
    of the values fp32 actually has to represent. NaN or Inf anywhere gives NaN/Inf, never a pass.
    """
    c = np.asarray(c, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if c.size == 0:
        return 0.0
    if not np.all(np.isfinite(c)):
        return float("nan") if np.any(np.isnan(c)) else float("inf")
    if not np.all(np.isfinite(ref)):
        return float("nan")
    scale = max(float(np.max(np.abs(ref))), TINY)
    return float(np.max(np.abs(c - ref))) / scale


class Report:
    """Collects check results and prints one line per check."""

    def __init__(self):
        self.checks = 0
        self.failed = 0

    def metric(self, what, err):
        self.checks += 1
        ok = math.isfinite(err) and err <= LIMIT  # NaN compares False: never passes
        if ok:
            print(f"PASS {what} err={err:.3g}")
        else:
            self.failed += 1
            print(f"FAIL {what} err={err:.3g} (limit {LIMIT_TEXT})")
        return ok

    def compare(self, what, c, ref):
        c = np.asarray(c)
        ref = np.asarray(ref)
        if c.shape != ref.shape:
            return self.fail(what, f"shape {list(c.shape)}, expected {list(ref.shape)}")
        return self.metric(what, normwise_error(c, ref))

    def passed(self, what, detail):
        self.checks += 1
        print(f"PASS {what} {detail}")
        return True

    def fail(self, what, detail):
        self.checks += 1
        self.failed += 1
        print(f"FAIL {what} {detail}")
        return False

    def finish(self):
        print(f"parity: {self.failed} of {self.checks} checks failed")
        return 0 if self.failed == 0 else 1


def load_npy(path, kind):
    """Load one .npy; kind 'float' or 'int' is checked so a wrongly typed dump is caught early."""
    if not os.path.isfile(path):
        raise UnusableInput(f"{path}: missing")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a malformed header
        raise UnusableInput(f"{path}: not a readable .npy file ({exc})")
    if kind == "float" and arr.dtype.kind != "f":
        raise UnusableInput(f"{path}: dtype {arr.dtype}, expected a float array")
    if kind == "int" and arr.dtype.kind not in "iu":
        raise UnusableInput(f"{path}: dtype {arr.dtype}, expected an integer array")
    return arr


def expect_shape(path, arr, shape):
    if tuple(arr.shape) != tuple(shape):
        raise UnusableInput(f"{path}: shape {list(arr.shape)}, expected {list(shape)}")


def load_meta(directory):
    path = os.path.join(directory, "meta.json")
    if not os.path.isfile(path):
        raise UnusableInput(f"{path}: missing")
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise UnusableInput(f"{path}: not valid JSON ({exc})")
    if not isinstance(meta, dict):
        raise UnusableInput(f"{path}: expected a JSON object")
    for key in MODEL_KEYS:
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool):
            raise UnusableInput(f"{path}: key '{key}' missing or not an integer")
    steps = meta.get("train_steps", 0)
    if not isinstance(steps, int) or steps < 0:
        raise UnusableInput(f"{path}: key 'train_steps' not a non-negative integer")
    meta["train_steps"] = steps
    if steps > 0:
        for key in TRAIN_KEYS:
            if not isinstance(meta.get(key), (int, float)) or isinstance(meta.get(key), bool):
                raise UnusableInput(f"{path}: key '{key}' missing or not a number")
    if not 0 <= meta["stage"] < meta["stages"]:
        raise UnusableInput(f"{path}: stage {meta['stage']} outside [0, {meta['stages']})")
    stride = 2 ** (meta["stages"] - 1 - meta["stage"])
    if meta["frames"] % stride:
        raise UnusableInput(f"{path}: frames {meta['frames']} not divisible by stride {stride}")
    meta["stage_frames"] = meta["frames"] // stride
    return meta


def build_model(meta, dtype, path):
    try:
        model = DiT(meta["depth"], meta["dim"], meta["heads"], meta["patch"], meta["classes"],
                    meta["channels"], meta["stages"])
    except ValueError as exc:
        raise UnusableInput(f"{path}: {exc}")
    return model.to(dtype)


def list_npy(folder):
    if not os.path.isdir(folder):
        raise UnusableInput(f"{folder}: missing folder")
    return {name[:-4] for name in os.listdir(folder) if name.endswith(".npy")}


def check_name_set(report, what, present, expected):
    """One FAIL line per missing or extra tensor name, else one PASS line for the set.

    Returns True when nothing is missing (extra names fail but do not stop the other checks).
    """
    missing = sorted(expected - present)
    extra = sorted(present - expected)
    for name in missing:
        report.fail(f"{what} {name}", "missing from dump")
    for name in extra:
        report.fail(f"{what} {name}", "not a parameter of the reference model")
    if not missing and not extra:
        report.passed(f"{what} set", f"({len(expected)} tensors)")
    return not missing


def load_params(report, model, directory, dtype):
    """Read params/ into a state dict; return None when the model cannot be loaded."""
    folder = os.path.join(directory, "params")
    expected = dict(model.state_dict())
    present = list_npy(folder)
    complete = check_name_set(report, "param", present, set(expected))
    state = {}
    for name, ref in expected.items():
        if name not in present:
            continue
        arr = load_npy(os.path.join(folder, name + ".npy"), "float")
        if tuple(arr.shape) != tuple(ref.shape):
            report.fail(f"param {name}", f"shape {list(arr.shape)}, expected {list(ref.shape)}")
            complete = False
            continue
        if not np.all(np.isfinite(arr)):
            report.fail(f"param {name}", "contains NaN or Inf")
            complete = False
            continue
        state[name] = torch.from_numpy(arr.astype(np.float64)).to(dtype)
    if not complete:
        return None
    # strict=True: the dump must name exactly the reference's tensors (the export contract).
    model.load_state_dict(state, strict=True)
    return state


def load_batch(directory, meta, prefix, x_name):
    """x (or x0), t and y of one microbatch, validated against meta."""
    b, c = meta["clips"], meta["channels"]
    shape = (b, c, meta["stage_frames"], meta["height"], meta["width"])
    x_path = os.path.join(directory, prefix, x_name + ".npy")
    x = load_npy(x_path, "float")
    expect_shape(x_path, x, shape)
    t_path = os.path.join(directory, prefix, "t.npy")
    t = load_npy(t_path, "float")
    expect_shape(t_path, t, (b,))
    y = None
    if meta["classes"] > 0:
        y_path = os.path.join(directory, prefix, "y.npy")
        y = load_npy(y_path, "int")
        expect_shape(y_path, y, (b,))
        if np.any(y < 0) or np.any(y > meta["classes"]):
            raise UnusableInput(f"{y_path}: labels outside [0, {meta['classes']}]")
        y = torch.from_numpy(y.astype(np.int64))
    for path, arr in ((x_path, x), (t_path, t)):
        if not np.all(np.isfinite(arr)):
            raise UnusableInput(f"{path}: contains NaN or Inf")
    return x, t, y, shape


def as_tensor(arr, dtype):
    return torch.from_numpy(np.asarray(arr, dtype=np.float64)).to(dtype)


def check_step(report, model, directory, meta, dtype):
    """Forward, MSE loss and backward on x/t/y; compare out, loss and every gradient."""
    x, t, y, shape = load_batch(directory, meta, "", "x")
    target_path = os.path.join(directory, "target.npy")
    target = load_npy(target_path, "float")
    expect_shape(target_path, target, shape)
    out_c = load_npy(os.path.join(directory, "out.npy"), "float")
    loss_path = os.path.join(directory, "loss.npy")
    loss_c = load_npy(loss_path, "float").reshape(-1)
    if loss_c.size != 1:
        raise UnusableInput(f"{loss_path}: {loss_c.size} values, expected one")
    grad_folder = os.path.join(directory, "grads")
    grad_names = list_npy(grad_folder)

    model.zero_grad(set_to_none=True)
    out = model(as_tensor(x, dtype), as_tensor(t, dtype), y, meta["stage"])
    loss = F.mse_loss(out, as_tensor(target, dtype))
    loss.backward()

    report.compare("output", out_c, out.detach().numpy())
    report.compare("loss", loss_c.reshape(()), np.float64(loss.item()))
    params = dict(model.named_parameters())
    check_name_set(report, "grad", grad_names, set(params))
    for name, param in params.items():
        if name not in grad_names:
            continue
        grad_c = load_npy(os.path.join(grad_folder, name + ".npy"), "float")
        report.compare(f"grad {name}", grad_c, param.grad.detach().numpy())


def global_grad_norm(params):
    """2-norm of all gradients together, as clip_grad_norm_ computes it."""
    norms = [torch.linalg.vector_norm(p.grad.detach(), 2) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms), 2)


def check_training(report, model, state, directory, meta, dtype):
    """Replay train_steps optimiser steps on the fixed batch and compare per-step loss/grad norm."""
    steps = meta["train_steps"]
    folder = os.path.join(directory, "train")
    if not os.path.isdir(folder):
        raise UnusableInput(f"{folder}: missing folder (meta train_steps = {steps})")
    x0, t, y, shape = load_batch(directory, meta, "train", "x0")
    noise_path = os.path.join(folder, "noise.npy")
    noise = load_npy(noise_path, "float")
    expect_shape(noise_path, noise, shape)
    series = {}
    for name in ("losses", "grad_norms"):
        path = os.path.join(folder, name + ".npy")
        arr = load_npy(path, "float").reshape(-1)
        expect_shape(path, arr, (steps,))
        series[name] = arr

    model.load_state_dict(state, strict=True)  # restart from the initial weights
    model.zero_grad(set_to_none=True)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(
        adamw_param_groups(model, float(meta["weight_decay"])),
        lr=float(meta["lr"]),
        betas=(float(meta["beta1"]), float(meta["beta2"])),
        eps=float(meta["adam_eps"]),
        foreach=False,
    )
    x0 = as_tensor(x0, dtype)
    noise = as_tensor(noise, dtype)
    t = as_tensor(t, dtype)
    x_t, target = pyramid_training_pair(x0, noise, t, meta)
    lr, warmup, clip = float(meta["lr"]), float(meta["warmup"]), float(meta["grad_clip"])
    for step in range(1, steps + 1):
        lr_step = lr * min(1.0, step / warmup) if warmup > 0 else lr
        for group in optimizer.param_groups:
            group["lr"] = lr_step
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x_t, t, y, meta["stage"]), target)
        loss.backward()
        if clip > 0:
            # coef = clip / (norm + 1e-6), applied only when < 1: exactly clip_grad_norm_.
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
        else:
            norm = global_grad_norm(params)
        optimizer.step()
        report.compare(f"train step {step} loss", series["losses"][step - 1],
                       np.float64(loss.item()))
        report.compare(f"train step {step} grad_norm", series["grad_norms"][step - 1],
                       np.float64(norm.item()))


def diffusion_ab(form, t):
    """x_t = a(t) X + b(t) eps: rectified flow (1 - t, t) or VP cosine (cos, sin of pi t / 2)."""
    if form == "rf":
        return 1 - t, t
    return torch.cos(math.pi * t / 2), torch.sin(math.pi * t / 2)


def stage_window(meta):
    """[e_k, s_k] of the dumped stage (MATH.md section 3), from the closed-form minimal start."""
    form, stages, stage = meta.get("form", "rf"), meta["stages"], meta["stage"]
    cuts = meta.get("cuts") or [1 - (k + 1) / stages for k in range(stages - 1)]
    ends = list(cuts) + [0.0]
    e = ends[stage]
    if stage == 0:
        return e, 1.0
    prev = ends[stage - 1]
    if form == "rf":
        s = math.sqrt(2) * prev / (1 + (math.sqrt(2) - 1) * prev)
    else:
        s = 2 / math.pi * math.atan(math.sqrt(2) * math.tan(math.pi * prev / 2))
    return e, s


def pyramid_training_pair(x, noise, t, meta):
    """Stage-k input and target (MATH.md section 5.1), written independently of the C code:
    S = Up(Down(X)) (X itself at stage 0), shared-noise end points, the partitioned-ODE pair
    (x0h, epsh), then x_t = a(t) x0h + b(t) epsh and the rf velocity / vp v target."""
    form = meta.get("form", "rf")
    e, s = stage_window(meta)
    if meta["stage"] == 0:
        start_data = x
    else:
        pairs = x.reshape(x.shape[0], x.shape[1], x.shape[2] // 2, 2, *x.shape[3:])
        start_data = pairs.mean(dim=3, keepdim=True).expand_as(pairs).reshape(x.shape)
    t_clip = t.reshape(-1, 1, 1, 1, 1)
    a_t, b_t = diffusion_ab(form, t_clip)
    a_s, b_s = diffusion_ab(form, torch.tensor(s, dtype=x.dtype))
    a_e, b_e = diffusion_ab(form, torch.tensor(e, dtype=x.dtype))
    x_s = a_s * start_data + b_s * noise
    x_e = a_e * x + b_e * noise
    d = a_s * b_e - a_e * b_s
    x0h = (b_e * x_s - b_s * x_e) / d
    epsh = (a_s * x_e - a_e * x_s) / d
    x_t = a_t * x0h + b_t * epsh
    target = epsh - x0h if form == "rf" else a_t * epsh - b_t * x0h
    return x_t, target


def run(args):
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    torch.manual_seed(0)  # nothing random is drawn; fixed anyway so reruns are identical
    meta = load_meta(args.dir)
    model = build_model(meta, dtype, os.path.join(args.dir, "meta.json"))
    report = Report()
    state = load_params(report, model, args.dir, dtype)
    if state is None:
        print("parity: parameters unusable, forward/backward not checked")
        return report.finish()
    check_step(report, model, args.dir, meta, dtype)
    if meta["train_steps"] > 0:
        check_training(report, model, state, args.dir, meta, dtype)
    elif os.path.isdir(os.path.join(args.dir, "train")):
        print("check_parity: train/ present but meta train_steps = 0; not checked",
              file=sys.stderr)
    return report.finish()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="dump folder written by the C side")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="precision of the reference run (default float64)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UnusableInput as exc:
        print(f"check_parity: unusable input: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
