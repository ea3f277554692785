#!/usr/bin/env bash
# shard_interop.sh — our shards and h5py's agree both ways: shards written by h5py (gzip + shuffle,
# two clips per chunk, contiguous storage, float16/uint8/float32) load in tpdiff with identical values,
# and shards tpdiff writes read back in h5py with identical levels, labels, source strings and
# attributes. A shard h5py writes with a wrong dtype is refused with one line naming it.
set -uo pipefail
cd "$(dirname "$0")/../.."
TOOL=${TOOL:-build/tests/test_shard}
PY=${PY:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpdiff-interop.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$PY" - "$TOOL" "$tmp" <<'PYEOF'
import os, subprocess, sys
import h5py
import numpy as np

tool, tmp = sys.argv[1], sys.argv[2]
N, T, H, W, C = 5, 8, 6, 5, 3
rng = np.random.default_rng(7)
fails = 0

def report(ok, name, detail):
    global fails
    print(("PASS " if ok else "FAIL ") + name + ": " + detail)
    fails += 0 if ok else 1

def quantise(x, dtype):
    if dtype == "uint8":
        return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)
    return x.astype(np.float16 if dtype == "float16" else np.float32)

def levels_of(stored0, dtype, count):
    out, s = [stored0], stored0.astype(np.float64)
    for l in range(1, count):
        g = 2 ** l
        mean = s.reshape(N, T // g, g, H, W, C).mean(axis=2)
        out.append(quantise(mean, dtype))
    return out

def model(stored, scale, shift):  # the reader's float arithmetic, channels first
    v = stored.astype(np.float32) * np.float32(scale) + np.float32(shift)
    return v.transpose(0, 4, 1, 2, 3)

def read_with_tpdiff(path, prefix):
    r = subprocess.run([tool, "--read", path, prefix], capture_output=True, text=True)
    return r.returncode, r.stdout.strip() + r.stderr.strip()

# ---- h5py writes, tpdiff reads --------------------------------------------------------------------
variants = [("float16", "gzip", (2, T, H, W, C)), ("uint8", "gzip", (2, T, H, W, C)),
            ("float32", None, None), ("uint8", "gzip", (1, 2, H, W, C))]
for k, (dtype, compression, chunks) in enumerate(variants):
    path = f"{tmp}/h5py-{k}.h5"
    if dtype == "uint8":
        stored0, scale, shift = rng.integers(0, 256, (N, T, H, W, C)).astype(np.uint8), 2 / 255, -1.0
    else:
        stored0 = quantise(rng.uniform(-3, 3, (N, T, H, W, C)), dtype)
        scale, shift = (0.5, 0.25) if dtype == "float16" else (1.0, 0.0)
    levels = levels_of(stored0, dtype, 4)
    labels = rng.integers(0, 10, N).astype(np.int32)
    with h5py.File(path, "w") as f:
        for l, a in enumerate(levels):
            ch = None if chunks is None else (chunks[0], min(chunks[1], a.shape[1])) + chunks[2:]
            f.create_dataset(f"level{l}", data=a, chunks=ch, compression=compression,
                             shuffle=compression is not None)
        f.create_dataset("labels", data=labels)
        f.create_dataset("source", data=[f"video-{i}.mp4:{8 * i}" for i in range(N)],
                         dtype=h5py.string_dtype())
        f.attrs.update(format="tpdiff-shard", version=1, fps=30.0, dtype=dtype, scale=scale, shift=shift)
    rc, out = read_with_tpdiff(path, f"{tmp}/h5py-{k}")
    same = rc == 0
    for l in range(4):
        if not same:
            break
        got = np.fromfile(f"{tmp}/h5py-{k}.level{l}.f32", dtype=np.float32).reshape(N, C, T >> l, H, W)
        same = np.array_equal(got, model(levels[l], scale, shift))
    got_labels = np.fromfile(f"{tmp}/h5py-{k}.labels.i32", dtype=np.int32) if rc == 0 else None
    same = same and np.array_equal(got_labels, labels)
    layout = f"{compression or 'no compression'}, chunks {chunks[:2] if chunks else 'none (contiguous)'}"
    report(same, f"h5py {dtype} shard ({layout}) loads with identical values",
           f"tpdiff: {out}" if rc else "all 4 levels and labels bit for bit")

# h5py-written shard with an int16 level0: one line, names file and dataset
path = f"{tmp}/h5py-int16.h5"
with h5py.File(path, "w") as f:
    f.create_dataset("level0", data=np.zeros((2, 4, H, W, C), np.int16))
    f.attrs.update(format="tpdiff-shard", version=1, fps=30.0, dtype="uint8", scale=1.0, shift=0.0)
rc, out = read_with_tpdiff(path, f"{tmp}/int16")
report(rc == 1 and path in out and "level0 stores int16" in out and "\n" not in out,
       "h5py shard with an int16 level0 refused", out)
# h5py's own float16 type is what our reader recognises
with h5py.File(f"{tmp}/h5py-0.h5", "r") as f:
    t = f["level0"].id.get_type()
    fields = t.get_fields() + (t.get_ebias(), t.get_size())
report(fields == (15, 10, 5, 0, 10, 15, 2), "h5py float16 is IEEE half (sign 15, exp 10+5, mantissa 0+10, bias 15)",
       f"fields {fields}")

# ---- tpdiff writes, h5py reads --------------------------------------------------------------------
for dtype, deflate in [("uint8", 0), ("uint8", 5), ("float16", 0), ("float16", 5), ("float32", 3)]:
    path, inp = f"{tmp}/ours-{dtype}-{deflate}.h5", f"{tmp}/input-{dtype}-{deflate}.f32"
    if dtype == "uint8":
        stored0 = rng.integers(0, 256, (N, T, H, W, C)).astype(np.uint8)
        values = stored0.astype(np.float32) * np.float32(2 / 255) + np.float32(-1)
    else:
        stored0 = quantise(rng.uniform(-3, 3, (N, T, H, W, C)), dtype)
        values = stored0.astype(np.float32)
    values.astype(np.float32).tofile(inp)
    r = subprocess.run([tool, "--write", path, dtype, str(deflate), str(N), str(T), str(H), str(W), str(C), inp],
                       capture_output=True, text=True)
    if r.returncode != 0:
        report(False, f"tpdiff {dtype} shard read by h5py", r.stdout + r.stderr)
        continue
    want = levels_of(stored0, dtype, 4)
    problems, ulps = [], 0
    with h5py.File(path, "r") as f:
        for l in range(4):
            d = f[f"level{l}"]
            if d.dtype != np.dtype(dtype) or d.shape != (N, T >> l, H, W, C):
                problems.append(f"level{l} is {d.dtype} {d.shape}")
                continue
            if d.chunks != (1, T >> l, H, W, C) or not d.fletcher32:
                problems.append(f"level{l} chunks {d.chunks} fletcher32 {d.fletcher32}")
            if (d.compression == "gzip") != (deflate > 0) or d.shuffle != (deflate > 0):
                problems.append(f"level{l} compression {d.compression} shuffle {d.shuffle}")
            a = d[...]
            if dtype != "uint8" and l > 0:
                # the writer sums in float32, this test in float64: float16 may round one ulp apart at a
                # tie; float32 differs by the float32 rounding of the sum (relative to the inputs' size)
                diff = np.abs(a.astype(np.float64) - want[l].astype(np.float64))
                ulp = (np.spacing(np.abs(want[l])).astype(np.float64) if dtype == "float16"
                       else 2.0 ** -21 * float(np.abs(stored0).max()))
                ulps += int((diff > 0).sum())
                if (diff > ulp).any():
                    problems.append(f"level{l} differs by up to {diff.max():.3g}")
            elif not np.array_equal(a, want[l]):
                problems.append(f"level{l} differs at {int((a != want[l]).sum())} values")
        labels, source = f["labels"][...], [s.decode() for s in f["source"][...]]
        if labels.dtype != np.int32 or list(labels) != [i % 7 for i in range(N)]:
            problems.append(f"labels {labels.dtype} {list(labels)}")
        if source != [f"clip-{i}" for i in range(N)]:
            problems.append(f"source {source}")
        at = dict(f.attrs)
        expect = {"format": "tpdiff-shard", "version": 1, "dtype": dtype, "fps": 24.0,
                  "scale": 2 / 255 if dtype == "uint8" else 1.0, "shift": -1.0 if dtype == "uint8" else 0.0}
        for key, v in expect.items():
            if key not in at or at[key] != v:
                problems.append(f"attribute {key} = {at.get(key)!r} (expected {v!r})")
    report(not problems, f"tpdiff {dtype} shard (deflate {deflate}) read by h5py",
           "; ".join(problems) if problems else
           f"levels, labels, source strings, attributes identical ({ulps} coarse-level values differ by float rounding)")
sys.exit(1 if fails else 0)
PYEOF
