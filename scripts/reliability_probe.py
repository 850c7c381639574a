#!/usr/bin/env python3
"""Reliability probe: feeds the hyperflux binary bad input and damaged state, one generated case
at a time, and counts how each ends.

    scripts/reliability_probe.py [path/to/hyperflux]     (default: target/release/hyperflux)

Each case expects either a refusal (exit code 1 and exactly one `error:` line on stderr, no
panic) or a correct recovery (exit code 0 plus a check: a note, a cleaned-up folder, a density
on target). A case ends as
  refused  - the bad input got its one-line error,
  handled  - the run recovered as it should,
  WRONG    - bad input accepted, or the recovery check failed (exit 0 with a wrong result,
             or a refusal where a recovery was due),
  PANIC    - a panic or a crash.
Only the standard library is used; data, checkpoints and exports are generated in a temporary
folder (tiny MNIST-format data, one dense epoch), so the probe takes about a minute.
"""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/hyperflux")
REF_CSV = os.path.join(ROOT, "..", "shared", "data", "reference-law", "R50C10_IMP.csv")


def run(args, cwd=None):
    p = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


# --- generated files ---------------------------------------------------------------------------

def write_idx(d, n_train, n_test, seed=1):
    import random
    rng = random.Random(seed)
    os.makedirs(d, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = bytes(rng.randrange(10) for _ in range(n))
        # Learnable: class c lights up row band c.
        img = bytearray()
        for l in labels:
            px = bytearray(rng.randrange(40) for _ in range(784))
            for y in range(l * 2 + 4, l * 2 + 7):
                for x in range(4, 24):
                    px[y * 28 + x] = 200 + rng.randrange(55)
            img += px
        with open(os.path.join(d, f"{split}-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(img))
        with open(os.path.join(d, f"{split}-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels)


def write_cifar10(d, n):
    os.makedirs(d, exist_ok=True)
    rec = bytes([3]) + bytes(3072)
    for i in range(1, 6):
        with open(os.path.join(d, f"data_batch_{i}.bin"), "wb") as f:
            f.write(rec * n)
    with open(os.path.join(d, "test_batch.bin"), "wb") as f:
        f.write(rec * n)


class St:
    """An editable safetensors file."""

    def __init__(self, path):
        b = open(path, "rb").read()
        n = struct.unpack("<Q", b[:8])[0]
        self.header = json.loads(b[8:8 + n])
        self.data = bytearray(b[8 + n:])

    def rng(self, name):
        a, b = self.header[name]["data_offsets"]
        return a, b

    def set_f32(self, name, i, v):
        a, _ = self.rng(name)
        self.data[a + 4 * i:a + 4 * i + 4] = struct.pack("<f", v)

    def flip(self, name, byte, bit=0x04):
        a, _ = self.rng(name)
        self.data[a + byte] ^= bit

    def meta(self):
        return self.header.setdefault("__metadata__", {})

    def rehash(self):
        h = hashlib.sha256()
        for k in sorted(k for k in self.header if k != "__metadata__"):
            a, b = self.rng(k)
            h.update(bytes(self.data[a:b]))
        self.meta()["tensor_sha256"] = h.hexdigest()

    def write(self, path):
        h = json.dumps(self.header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + bytes(self.data))


def write_npy_f32(path, values, n):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, len(values) // n)
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%df" % len(values), *values))


def records(d):
    with open(os.path.join(d, "records.csv")) as f:
        lines = f.read().splitlines()
    head = lines[0].split(",")
    return [dict(zip(head, l.split(","))) for l in lines[1:]]


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# --- the probe ---------------------------------------------------------------------------------

def main():
    if not os.path.isfile(BIN):
        sys.exit(f"no binary at {BIN}: build it with cargo build --release -p hyperflux")
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="hf-probe-")
    T = lambda *p: os.path.join(tmp, *p)
    data = T("mnist")
    write_idx(data, 640, 200)
    common = ["--data-dir", data, "--batch-size", "64", "--threads", "1", "--quiet"]
    rc, out, err = run(["train", "--epochs", "1", "--out", T("dense")] + common)
    if rc != 0:
        sys.exit(f"set-up training failed: {err}")
    ck = T("dense", "checkpoint.safetensors")
    sparse = T("dense.sparse.safetensors")
    rc, out, err = run(["export", ck, "-o", sparse, "--data-dir", data])
    if rc != 0:
        sys.exit(f"set-up export failed: {err}")

    def bad_ck(name, edit, rehash=True):
        st = St(ck)
        edit(st)
        if rehash and "tensor_sha256" in st.meta():
            st.rehash()
        p = T(name)
        st.write(p)
        return p

    def bad_sparse(name, edit, rehash=True):
        st = St(sparse)
        edit(st)
        if rehash and "tensor_sha256" in st.meta():
            st.rehash()
        p = T(name)
        st.write(p)
        return p

    cases = []  # (name, kind, thunk); kind "refuse" or a check function for exit-0 runs

    def refuse(name, args, cwd=None):
        cases.append((name, "refuse", lambda: run(args, cwd)))

    def recover(name, thunk, check):
        cases.append((name, check, thunk))

    # 1. non-finite values in a checkpoint (checksum valid, so finiteness itself must refuse)
    nan_w = bad_ck("nan-weight.safetensors", lambda s: s.set_f32("fc1.weight", 5, float("nan")))
    inf_m = bad_ck("inf-mask.safetensors", lambda s: s.set_f32("fc2.mask", 5, float("inf")))
    nan_nosum = bad_ck("nan-nosum.safetensors",
                       lambda s: (s.set_f32("fc1.weight", 5, float("nan")), s.meta().pop("tensor_sha256", None)))
    refuse("eval: NaN weight in checkpoint", ["eval", nan_w, "--data-dir", data])
    refuse("eval: +inf mask in checkpoint", ["eval", inf_m, "--data-dir", data])
    refuse("export: +inf mask in checkpoint", ["export", inf_m, "-o", T("x1.safetensors"), "--data-dir", data])
    refuse("export: NaN weight in checkpoint", ["export", nan_w, "-o", T("x2.safetensors"), "--data-dir", data])
    refuse("prune --from: NaN weight", ["prune", "--from", nan_w, "--target-sparsity", "90", "--out", T("p1")] + common)
    refuse("eval: NaN weight, file without checksum", ["eval", nan_nosum, "--data-dir", data])
    # 2. empty data
    empty = T("empty")
    write_idx(empty, 64, 0)
    refuse("eval: test set of 0 images", ["eval", ck, "--data-dir", empty])
    refuse("infer: test set of 0 images", ["infer", sparse, "--data-dir", empty])
    refuse("train: test set of 0 images", ["train", "--epochs", "1", "--out", T("t0"), "--data-dir", empty, "--quiet"])
    # 3. non-finite inputs
    x = [0.1] * (2 * 784)
    x[800] = float("nan")
    write_npy_f32(T("nan.npy"), x, 2)
    x[800] = float("inf")
    write_npy_f32(T("inf.npy"), x, 2)
    refuse("infer --input: NaN value", ["infer", sparse, "--input", T("nan.npy")])
    refuse("infer --input: +inf value", ["infer", sparse, "--input", T("inf.npy")])
    # 4. truncated IDX input
    with open(os.path.join(data, "t10k-images-idx3-ubyte"), "rb") as f:
        idx = f.read()
    with open(T("trunc.idx"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, 3, 28, 28) + idx[16:16 + 3 * 784 - 100])
    cases.append(("infer --input: truncated IDX (message names the byte counts)",
                  lambda rc, o, e: rc == 1 and "truncated" in e and "2368" in e and "2268" in e,
                  lambda: run(["infer", sparse, "--input", T("trunc.idx")])))
    # 5. exploding loss
    refuse("train: Adam --lr 1e6 (finite, exploding loss)",
           ["train", "--epochs", "3", "--lr", "1e6", "--out", T("lr")] + common)
    # 6. nothing to time
    refuse("bench-infer --runs 0", ["bench-infer", "--synthetic", "lenet300", "--runs", "0"])
    refuse("bench --runs 0", ["bench", "--runs", "0"])
    refuse("bench --steps 0", ["bench", "--steps", "0"])
    refuse("bench --batch-size 0", ["bench", "--batch-size", "0"])
    # 7. metadata out of range / contradicting itself
    acc = bad_sparse("acc.sparse.safetensors", lambda s: s.meta().__setitem__("accuracy", "2.5"))
    refuse("infer: sparse file with accuracy 2.5", ["infer", acc, "--data-dir", data])
    cif = bad_ck("cifar-label.safetensors", lambda s: s.meta().__setitem__("dataset", "cifar10"))
    refuse("export: checkpoint labelled cifar10 with 1x28x28 input", ["export", cif, "-o", T("c.safetensors"), "--data-dir", data])
    refuse("eval: checkpoint labelled cifar10 with 1x28x28 input", ["eval", cif, "--data-dir", data])
    # 8. corruption that still parses
    flip_ck = bad_ck("flip.safetensors", lambda s: s.flip("fc2.weight", 1001), rehash=False)
    flip_sp = bad_sparse("flip.sparse.safetensors", lambda s: s.flip("fc1.values", 401, 0x01), rehash=False)
    refuse("eval: one flipped bit in a weight", ["eval", flip_ck, "--data-dir", data])
    refuse("prune --from: one flipped bit in a weight", ["prune", "--from", flip_ck, "--target-sparsity", "90", "--out", T("p2")] + common)
    refuse("infer: one flipped bit in a sparse value", ["infer", flip_sp, "--data-dir", data])
    nosum = bad_ck("nosum.safetensors", lambda s: s.meta().pop("tensor_sha256", None), rehash=False)
    recover("eval: checkpoint without checksum (other tool) loads with a note",
            lambda: run(["eval", nosum, "--data-dir", data]),
            lambda rc, o, e: rc == 0 and "has no tensor_sha256" in e)
    # 9. leftovers of kill -9
    run_dir = T("killed")
    rc, _, _ = run(["train", "--epochs", "2", "--out", run_dir] + common)
    stale = os.path.join(run_dir, ".hf-tmp-%d-AbCdEf" % dead_pid())
    with open(stale, "wb") as f:
        f.write(bytes(6_400_000))
    with open(os.path.join(run_dir, "records.csv")) as f:
        text = f.read()
    last = text.splitlines()[-1]
    with open(os.path.join(run_dir, "records.csv"), "a") as f:
        f.write(last.replace("2,", "3,", 1) + "\n")
    with open(os.path.join(run_dir, ".hyperflux.lock"), "w") as f:
        f.write("%d\n" % dead_pid())

    def leftovers_check(rc, o, e):
        return (rc == 0 and not os.path.exists(stale) and len(records(run_dir)) == 2
                and not os.path.exists(os.path.join(run_dir, ".hyperflux.lock")))
    recover("resume after kill -9: partial temp file, records ahead, stale lock",
            lambda: run(["train", "--resume", os.path.join(run_dir, "checkpoint.safetensors"), "--quiet"]),
            leftovers_check)

    # 10. two runs into one --out
    def two_runs():
        out_dir = T("busy")
        first = subprocess.Popen([BIN, "train", "--epochs", "200", "--out", out_dir] + common,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lock = os.path.join(out_dir, ".hyperflux.lock")
        t = time.time()
        while not os.path.exists(lock) and time.time() - t < 120:
            time.sleep(0.02)
        r = run(["train", "--epochs", "1", "--out", out_dir] + common)
        first.kill()
        first.wait()
        return r
    refuse("train: second run into a folder another run is using", None)
    cases[-1] = (cases[-1][0], "refuse", two_runs)
    # 11. fit writes only where told
    if os.path.isfile(REF_CSV):
        cwd = T("cwd")
        os.makedirs(cwd)
        recover("fit FILE --json writes nothing into the current directory",
                lambda: run(["fit", REF_CSV, "--json"], cwd=cwd),
                lambda rc, o, e: rc == 0 and os.listdir(cwd) == [])
    # 12. short schedules
    refuse("schedule: 98% in 4 epochs", ["schedule", "--target-sparsity", "98", "--epochs", "4"])
    refuse("schedule: 90% in 2 epochs", ["schedule", "--target-sparsity", "90", "--epochs", "2"])
    refuse("prune: 90% in 2 pruning epochs", ["prune", "--target-sparsity", "90", "--pruning-epochs", "2", "--out", T("p3")] + common)

    def on_target(d):
        return lambda rc, o, e: rc == 0 and abs(float(records(d)[-1]["density"]) - 10.0) < 1e-3
    recover("prune: R = 1 regrowth epoch (< final_freeze_epochs) lands on target",
            lambda: run(["prune", "--from", ck, "--target-sparsity", "90", "--pruning-epochs", "4",
                         "--regrowth-epochs", "1", "--mask-lr", "0.02", "--out", T("r1")] + common),
            on_target(T("r1")))
    recover("prune: masks frozen (mask LR 0), the snap does the pruning and says so",
            lambda: run(["prune", "--from", ck, "--target-sparsity", "90", "--pruning-epochs", "4",
                         "--regrowth-epochs", "1", "--mask-lr", "0", "--out", T("far")] + common),
            lambda rc, o, e: on_target(T("far"))(rc, o, e) and "did not do this pruning" in o)
    # The cases the README claimed before this work.
    with open(ck, "rb") as f:
        b = f.read()
    with open(T("half.safetensors"), "wb") as f:
        f.write(b[:len(b) // 2])
    refuse("eval: truncated checkpoint", ["eval", T("half.safetensors"), "--data-dir", data])
    with open(T("garbage.safetensors"), "wb") as f:
        f.write(os.urandom(4096))
    refuse("eval: random bytes as checkpoint", ["eval", T("garbage.safetensors"), "--data-dir", data])
    with open(sparse, "rb") as f:
        b = f.read()
    with open(T("half.sparse.safetensors"), "wb") as f:
        f.write(b[:len(b) // 2])
    refuse("infer: truncated sparse file", ["infer", T("half.sparse.safetensors"), "--data-dir", data])
    refuse("train: missing data files", ["train", "--epochs", "1", "--out", T("m"), "--data-dir", T("nothing"), "--quiet"])
    magic = T("badmagic")
    shutil.copytree(data, magic)
    with open(os.path.join(magic, "train-images-idx3-ubyte"), "r+b") as f:
        f.write(b"\x00\x00\x09\x09")
    refuse("train: corrupt IDX magic", ["train", "--epochs", "1", "--out", T("m2"), "--data-dir", magic, "--quiet"])
    refuse("prune: target sparsity 150", ["prune", "--target-sparsity", "150", "--out", T("p4")] + common)
    write_cifar10(T("cifar"), 16)
    refuse("train: lenet300 on cifar10", ["train", "--epochs", "1", "--dataset", "cifar10", "--data-dir", T("cifar"), "--out", T("c"), "--quiet"])

    counts = {"refused": 0, "handled": 0, "WRONG": 0, "PANIC": 0}
    for name, kind, thunk in cases:
        rc, o, e = thunk()
        if rc not in (0, 1) or "panicked" in e:
            verdict = "PANIC"
        elif kind == "refuse":
            lines = [l for l in e.splitlines() if l.startswith("error:")]
            verdict = "refused" if rc == 1 and len(lines) == 1 else "WRONG"
        else:
            verdict = "handled" if kind(rc, o, e) else "WRONG"
            if verdict == "handled" and rc == 1:
                verdict = "refused"
        counts[verdict] += 1
        detail = ""
        if verdict != "handled":
            err = [l for l in e.splitlines() if l.startswith("error:")]
            detail = (err[0] if err else (o.strip().splitlines() or [""])[-1])[:150]
        print(f"{verdict:<8} {name:<68} {detail}")
    print(f"\n{len(cases)} cases: {counts['refused']} refused with one line, {counts['handled']} handled, "
          f"{counts['WRONG']} wrong, {counts['PANIC']} panics ({time.time() - t0:.0f} s; binary {BIN})")
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if counts["WRONG"] or counts["PANIC"] else 0)


if __name__ == "__main__":
    main()
