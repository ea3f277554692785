"""Self-test of check_parity.py, needing no C build.

Writes a dump in the exact format the C side writes (params/, x/t/y/target, out/loss/grads/,
train/ with per-step losses and grad norms) from a float32 run of the reference model, with its
own plain AdamW and clipping loop rather than torch.optim, then asserts that check_parity.py:
  - passes it (exit 0) in float64 and float32;
  - fails it (exit 1, a FAIL line naming the tensor) when one gradient is perturbed by 1e-3 of
    its largest entry, and when the output holds a NaN;
  - rejects it (exit 2) when x.npy is missing.
Prints one summary line; exits 0 only when every expectation held.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dit_ref import DiT, random_init  # noqa: E402
from check_parity import pyramid_training_pair  # noqa: E402

META = dict(depth=2, dim=32, heads=4, patch=2, classes=5, channels=3, frames=8, height=8,
            width=8, stages=3, stage=1, clips=3, lr=1e-3, beta1=0.9, beta2=0.95, adam_eps=1e-8,
            weight_decay=0.1, grad_clip=0.5, warmup=3, train_steps=4)


def save(path, arr, dtype):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.asarray(arr, dtype=dtype))


def write_dump(folder):
    """A float32 reference run written as the C side would write it."""
    torch.manual_seed(0)
    m = META
    frames = m["frames"] // 2 ** (m["stages"] - 1 - m["stage"])
    shape = (m["clips"], m["channels"], frames, m["height"], m["width"])
    model = DiT(m["depth"], m["dim"], m["heads"], m["patch"], m["classes"], m["channels"],
                m["stages"]).float()
    random_init(model, torch.Generator().manual_seed(1))
    os.makedirs(folder)
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(m, f)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, value in init.items():
        save(os.path.join(folder, "params", name + ".npy"), value.numpy(), "<f4")

    x, t, target = torch.randn(shape), torch.rand(m["clips"]), torch.randn(shape)
    y = torch.randint(0, m["classes"] + 1, (m["clips"],))
    out = model(x, t, y, m["stage"])
    loss = F.mse_loss(out, target)
    loss.backward()
    for name, arr in (("x", x), ("t", t), ("target", target), ("out", out.detach())):
        save(os.path.join(folder, name + ".npy"), arr.numpy(), "<f4")
    save(os.path.join(folder, "y.npy"), y.numpy(), "<i4")
    save(os.path.join(folder, "loss.npy"), loss.item(), "<f8")
    for name, param in model.named_parameters():
        save(os.path.join(folder, "grads", name + ".npy"), param.grad.numpy(), "<f4")

    # Training on one fixed batch, AdamW and clipping written out from their definitions.
    model.load_state_dict(init)
    x0, noise, t = torch.randn(shape), torch.randn(shape), torch.rand(m["clips"])
    y = torch.randint(0, m["classes"], (m["clips"],))
    for name, arr in (("x0", x0), ("noise", noise), ("t", t)):
        save(os.path.join(folder, "train", name + ".npy"), arr.numpy(), "<f4")
    save(os.path.join(folder, "train", "y.npy"), y.numpy(), "<i4")
    # the stage's training pair as the checker builds it (this self-test is about the comparisons)
    x_t, target = pyramid_training_pair(x0, noise, t, dict(m, stage_frames=m["frames"] // 2))
    params = list(model.parameters())
    first = [torch.zeros_like(p) for p in params]
    second = [torch.zeros_like(p) for p in params]
    losses, norms = [], []
    b1, b2 = m["beta1"], m["beta2"]
    for step in range(1, m["train_steps"] + 1):
        lr = m["lr"] * min(1.0, step / m["warmup"]) if m["warmup"] > 0 else m["lr"]
        for p in params:
            p.grad = None
        loss = F.mse_loss(model(x_t, t, y, m["stage"]), target)
        loss.backward()
        norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))
        losses.append(loss.item())
        norms.append(norm)
        coef = m["grad_clip"] / (norm + 1e-6)
        with torch.no_grad():
            for i, p in enumerate(params):
                g = p.grad * coef if m["grad_clip"] > 0 and coef < 1 else p.grad
                p.mul_(1 - lr * (m["weight_decay"] if p.ndim == 2 else 0.0))
                first[i] = b1 * first[i] + (1 - b1) * g
                second[i] = b2 * second[i] + (1 - b2) * g * g
                denom = second[i].sqrt() / math.sqrt(1 - b2 ** step) + m["adam_eps"]
                p.add_(-(lr / (1 - b1 ** step)) * first[i] / denom)
    save(os.path.join(folder, "train", "losses.npy"), losses, "<f8")
    save(os.path.join(folder, "train", "grad_norms.npy"), norms, "<f8")


def check(folder, *extra):
    cmd = [sys.executable, os.path.join(HERE, "check_parity.py"), folder, *extra]
    result = subprocess.run(cmd, capture_output=True, text=True)
    return result.returncode, result.stdout


def main():
    failures = []

    def expect(what, ok):
        print(f"{'PASS' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        good = os.path.join(tmp, "good")
        write_dump(good)
        for dtype in ("float64", "float32"):
            rc, out = check(good, "--dtype", dtype)
            expect(f"clean dump passes ({dtype})", rc == 0 and "FAIL" not in out)

        bad = os.path.join(tmp, "bad_grad")
        shutil.copytree(good, bad)
        name = "blocks.0.attn.qkv.weight"
        path = os.path.join(bad, "grads", name + ".npy")
        grad = np.load(path)
        grad[3, 5] += np.float32(1e-3) * np.abs(grad).max()
        np.save(path, grad)
        rc, out = check(bad)
        expect("perturbed gradient fails", rc == 1 and f"FAIL grad {name} " in out)

        nan = os.path.join(tmp, "nan_out")
        shutil.copytree(good, nan)
        out_arr = np.load(os.path.join(nan, "out.npy"))
        out_arr.flat[0] = np.nan
        np.save(os.path.join(nan, "out.npy"), out_arr)
        rc, out = check(nan)
        expect("NaN output fails", rc == 1 and "FAIL output err=nan" in out)

        missing = os.path.join(tmp, "missing")
        shutil.copytree(good, missing)
        os.remove(os.path.join(missing, "x.npy"))
        rc, _ = check(missing)
        expect("missing x.npy is unusable input", rc == 2)

    print(f"check_parity_selftest: {len(failures)} of 5 expectations failed")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
