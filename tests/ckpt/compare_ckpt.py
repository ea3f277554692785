"""compare_ckpt.py A.h5 B.h5 — exit 0 when two tpdiff checkpoints hold bit-identical tensors (every
dataset of /params, /ema, /adam_m, /adam_v, and /ranks) and the same step, adam_step and
stream_position; otherwise prints the first difference and exits 1."""
import sys

import h5py
import numpy as np


def main(a_path, b_path):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        for key in ("step", "adam_step", "stream_position"):
            if a.attrs[key] != b.attrs[key]:
                print(f"attribute {key}: {a.attrs[key]} vs {b.attrs[key]}")
                return 1
        count = 0
        for group in ("params", "ema", "adam_m", "adam_v"):
            if (group in a) != (group in b):
                print(f"group /{group} present in only one file")
                return 1
            if group not in a:
                continue
            if sorted(a[group]) != sorted(b[group]):
                print(f"/{group}: different tensor names")
                return 1
            for name in a[group]:
                x, y = a[group][name][()], b[group][name][()]
                if x.shape != y.shape or x.tobytes() != y.tobytes():
                    diff = np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))) if x.shape == y.shape else None
                    print(f"/{group}/{name} differs (max abs diff {diff})")
                    return 1
                count += 1
        # /ranks holds one row per rank of the run that wrote it: compare the shared columns only
        ra, rb = a["ranks"][()], b["ranks"][()]
        if not (np.all(ra[:, 1:] == ra[0, 1:]) and np.all(rb[:, 1:] == rb[0, 1:]) and np.array_equal(ra[0, 1:], rb[0, 1:])):
            print(f"/ranks differ: {ra.tolist()} vs {rb.tolist()}")
            return 1
    print(f"{count} tensors bit-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
