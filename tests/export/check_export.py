"""PyTorch side of the export checks: a tpdiff safetensors file loads into the reference DiT
(tests/ref/dit_ref.py) with load_state_dict(strict=True), and the reference's forward pass on the
inputs forward_dump used equals tpdiff's output.

usage:
  check_export.py parity NAME MODEL.safetensors CONFIG.json FWD_DIR LIMIT
      PASS when max|torch - tpdiff| / max|tpdiff| <= LIMIT (float32 forward in PyTorch)
  check_export.py close NAME FWD_DIR_A FWD_DIR_B LIMIT
      PASS when the two dumps' outputs agree to LIMIT, normwise (a bf16 export against fp32)
  check_export.py bf16 NAME F32.safetensors BF16.safetensors
      PASS when every BF16 tensor is bit for bit torch's own float32 -> bfloat16 rounding of the F32 one
  check_export.py h5 NAME CKPT.h5 GROUP MODEL.safetensors
      PASS when the file holds exactly the checkpoint's GROUP (params or ema) datasets, read with
      h5py, bit for bit (an fp32 export) or as torch's bfloat16 rounding of them (a bf16 export)
  check_export.py splice OUT.safetensors TENSORS_FROM.safetensors METADATA_FROM.safetensors
      writes OUT with the tensors of one file and the metadata (config) of another: a file whose
      tensors belong to a model of another shape than its config says (for the refusal tests)

The file is read with the `safetensors` package when it is importable (scripts/setup.sh installs it
into build/pydeps); otherwise with read_safetensors below, which follows the format's definition.
Each check prints one PASS or FAIL line.
"""

import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
from dit_ref import DiT  # noqa: E402

try:
    import safetensors
    from safetensors.torch import load_file as package_load_file
    from safetensors import safe_open
except ImportError:  # the fallback reader is used and named in every line
    safetensors = None

DTYPES = {"F32": (np.float32, 4), "BF16": (np.int16, 2)}  # BF16 bits, viewed as bfloat16 below


def read_safetensors(path):
    """The format: u64 little-endian header length, JSON header, then the data area."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + hlen])
    data = blob[8 + hlen :]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, spec in header.items():
        np_dtype, size = DTYPES[spec["dtype"]]
        begin, end = spec["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=np.dtype(np_dtype).newbyteorder("<")).reshape(spec["shape"])
        t = torch.from_numpy(arr.astype(np_dtype).copy())
        tensors[name] = t.view(torch.bfloat16) if spec["dtype"] == "BF16" else t
    return tensors, meta


def load(path):
    """-> (state dict of torch tensors, metadata dict, loader description)."""
    if safetensors is None:
        tensors, meta = read_safetensors(path)
        return tensors, meta, "format reader"
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    return package_load_file(path), meta, "safetensors " + safetensors.__version__


def normwise(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def report(name, err, limit, detail):
    ok = np.isfinite(err) and err <= limit
    print(f"{'PASS' if ok else 'FAIL'} {name} err={err:.3g} limit={limit:.3g} {detail}")
    return ok


def parity(name, weights, config_json, fwd_dir, limit):
    with open(config_json) as f:
        cfg = json.load(f)
    state, meta, loader = load(weights)
    if meta.get("format") != "pt" or "tpdiff.config" not in meta:
        print(f"FAIL {name}: metadata {sorted(meta)} lacks format=pt or tpdiff.config ({loader})")
        return False
    model = DiT(**cfg["dit_args"]).float()
    try:
        model.load_state_dict(state, strict=True)  # missing or extra names raise
    except RuntimeError as e:
        print(f"FAIL {name}: load_state_dict(strict=True): {str(e).splitlines()[0]}")
        return False
    with open(os.path.join(fwd_dir, "meta.json")) as f:
        stage = json.load(f)["stage"]
    x = torch.from_numpy(np.load(os.path.join(fwd_dir, "x.npy")))
    t = torch.from_numpy(np.load(os.path.join(fwd_dir, "t.npy")))
    y_path = os.path.join(fwd_dir, "y.npy")
    y = torch.from_numpy(np.load(y_path)).long() if os.path.exists(y_path) else None
    with torch.no_grad():
        out = model(x, t, y, stage).numpy()
    want = np.load(os.path.join(fwd_dir, "out.npy"))
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in state.values()})
    return report(name, normwise(out, want), limit,
                  f"({len(state)} tensors {'/'.join(dtypes)}, strict=True, stage {stage}, {loader})")


def close(name, dir_a, dir_b, limit):
    a = np.load(os.path.join(dir_a, "out.npy"))
    b = np.load(os.path.join(dir_b, "out.npy"))
    return report(name, normwise(a, b), limit, "(tpdiff forward on bf16 against fp32 weights)")


def bf16_bits(name, f32_path, bf16_path):
    f32, _, loader = load(f32_path)
    b16, _, _ = load(bf16_path)
    if sorted(f32) != sorted(b16):
        print(f"FAIL {name}: the two files hold different names")
        return False
    differing = 0
    total = 0
    for k, v in f32.items():
        if b16[k].dtype != torch.bfloat16:
            print(f"FAIL {name}: {k} is {b16[k].dtype}, expected bfloat16")
            return False
        want = v.to(torch.bfloat16).view(torch.int16)
        differing += int((b16[k].view(torch.int16) != want).sum())
        total += v.numel()
    ok = differing == 0
    print(f"{'PASS' if ok else 'FAIL'} {name} ({differing} of {total} values differ from torch's rounding, {loader})")
    return ok


def against_h5(name, ckpt, group, path):
    import h5py

    state, _, loader = load(path)
    with h5py.File(ckpt, "r") as f:
        want = {k: torch.from_numpy(np.asarray(f[group][k], dtype=np.float32)) for k in f[group].keys()}
    if sorted(want) != sorted(state):
        extra = sorted(set(state) - set(want))[:3]
        missing = sorted(set(want) - set(state))[:3]
        print(f"FAIL {name}: names differ (extra {extra}, missing {missing})")
        return False
    differing = 0
    for k, v in want.items():
        got = state[k]
        if got.dtype == torch.bfloat16:
            v = v.to(torch.bfloat16)
        differing += int((got.view(torch.int16 if got.dtype == torch.bfloat16 else torch.int32)
                          != v.view(torch.int16 if v.dtype == torch.bfloat16 else torch.int32)).sum())
    total = sum(v.numel() for v in want.values())
    ok = differing == 0
    print(f"{'PASS' if ok else 'FAIL'} {name} ({len(want)} datasets of /{group}, {differing} of {total} values "
          f"differ, h5py + {loader})")
    return ok


def splice(out, tensors_from, meta_from):
    with open(tensors_from, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + hlen])
    with open(meta_from, "rb") as f:
        other = f.read()
    (olen,) = struct.unpack("<Q", other[:8])
    header["__metadata__"] = json.loads(other[8 : 8 + olen])["__metadata__"]
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + hlen :])
    return True


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "parity" and len(argv) == 7:
        ok = parity(argv[2], argv[3], argv[4], argv[5], float(argv[6]))
    elif mode == "close" and len(argv) == 6:
        ok = close(argv[2], argv[3], argv[4], float(argv[5]))
    elif mode == "bf16" and len(argv) == 5:
        ok = bf16_bits(argv[2], argv[3], argv[4])
    elif mode == "h5" and len(argv) == 6:
        ok = against_h5(argv[2], argv[3], argv[4], argv[5])
    elif mode == "splice" and len(argv) == 5:
        ok = splice(argv[2], argv[3], argv[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
