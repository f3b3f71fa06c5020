#!/usr/bin/python3
"""export_torch.py - `vae export` read by PyTorch (scripts/vae_torch.py)
gives vae's numbers. CTest runs it (test export_torch):

    export_torch.py --vae BUILD/vae --ref BUILD/export_ref

On a generated data set (300 training and 100 test images of bars) it
trains four small models one epoch each: an MLP (two hidden layers, tanh,
Bernoulli), an MLP of two stochastic layers (h1 of 6 and h2 of 3 units,
q(h2|h1) and p(h1|h2) of two hidden layers each, tanh, Bernoulli), a
conditional MLP (LeakyReLU, continuous Bernoulli) and the conv VAE (the
article's: 64,128,256 channels, 100-D latent, Gaussian, beta 0.1); and on
18 x 21 RGB images (an idx4 folder without labels) a small conv VAE (8,16
channels). For each it exports the model, loads it with vae_torch.load
(strict state_dict) and checks against export_ref (vae's own forward pass
over the test set with the draws of `vae eval`):

  - the metadata (two stochastic layers: latent2 and hidden2; one layer:
    neither key);
  - the inputs, bit for bit (vae_torch.intensities is vae's byte * 1/255f);
  - mu, logvar and the logits at z = mu + eps exp(logvar / 2): max |torch -
    vae| / max |vae| at most TOL_NET, the same eps for both; two stochastic
    layers also q(h2|h1)'s mu2 and logvar2 at that z = h1 and p(h1|h2)'s
    mean mp and log-variance lp at h2 = mu2 + eps2 exp(logvar2 / 2), the
    same eps2;
  - with those eps, each image's rec and kl against vae's (the same
    measure, TOL_NET; two layers: the sampled kl);
  - with those eps, PyTorch's mean negative ELBO against `vae eval`'s
    test_loss: relative difference at most TOL_LOSS;
  - with torch's own eps (two independent draws a and b), PyTorch's loss
    against `vae eval`'s within NOISE_SIGMAS standard errors, the standard
    error being std_i(L_a,i - L_b,i) / sqrt(n): L_a,i - L_b,i has twice the
    variance of one image's draw, so that is the standard error of the
    difference of two one-draw means over the same n images.

Exits 0 when all pass, 1 on a failure (torch missing included: a skipped
test must not look like a pass).
"""
import argparse
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

TOL_NET = 1e-5       # relative to the tensor's largest magnitude
TOL_LOSS = 1e-5      # relative, same eps
NOISE_SIGMAS = 4.0   # torch's own eps

try:
    import torch
    import vae_torch
except ImportError as e:
    print(f"export_torch: FAIL: cannot import PyTorch with {sys.executable} ({e});\n"
          "  install Debian's python3-torch: scripts/deps.sh --dev", file=sys.stderr)
    sys.exit(1)

MODELS = {
    "mlp": ["--hidden", "64,32", "--latent", "6", "--act", "tanh"],
    # Two stochastic layers: q(h2|h1) 6 -> 16 -> 8 -> [3 | 3], p(h1|h2)
    # 3 -> 8 -> 16 -> [6 | 6] (the widths reversed).
    "mlp-2l": ["--latent", "6,3", "--hidden", "64,32/16,8", "--act", "tanh"],
    "cvae": ["--conditional", "--hidden", "48", "--latent", "4", "--act", "leaky",
             "--likelihood", "cb"],
    "conv": ["--arch", "conv", "--likelihood", "gaussian", "--beta", "0.1"],
    # Colour, not square: 18 x 21 RGB padded to 20 x 24 (1 row on top and
    # 1 below; 1 column left, 2 right), two blocks.
    "conv-rgb": ["--arch", "conv", "--hidden", "8,16", "--latent", "5"],
}
RGB_SHAPE = (18, 21, 3)
failures, passes = [], []


def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    (passes if ok else failures).append(what)


def write_split(folder, split, n, seed):
    """n 28x28 images, each a bright bar (vertical or horizontal) with a
    dimmer edge, labels 0-9 in turn, as IDX files."""
    rnd = random.Random(seed)
    px = bytearray(n * 784)
    for i in range(n):
        pos, vertical = rnd.randrange(4, 24), i % 2
        for k in range(4, 24):
            y, x = (k, pos) if vertical else (pos, k)
            px[i * 784 + y * 28 + x] = 255
            px[i * 784 + y * 28 + x + 1] = rnd.randrange(100, 255)
    with open(os.path.join(folder, f"{split}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + px)
    with open(os.path.join(folder, f"{split}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n)))


def write_rgb_split(folder, split, n, seed):
    """n 18 x 21 RGB images (idx4, channels last): a coloured bar on a dark
    ground, a random colour each; no label files (an unlabelled set)."""
    rnd = random.Random(seed)
    h, w, c = RGB_SHAPE
    px = bytearray(n * h * w * c)
    for i in range(n):
        colour = [rnd.randrange(256) for _ in range(3)]
        pos = rnd.randrange(2, min(h, w) - 2)
        for k in range(2, min(h, w) - 2):
            y, x = (k, pos) if i % 2 else (pos, k)
            for ch in range(3):
                px[((i * h + y) * w + x) * c + ch] = colour[ch]
    with open(os.path.join(folder, f"{split}-images-idx4-ubyte"), "wb") as f:
        f.write(struct.pack(">IIIII", 0x804, n, h, w, c) + px)


def run(*cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"export_torch: FAIL: {' '.join(map(str, cmd))} exited "
                         f"{r.returncode}:\n{r.stdout}{r.stderr}")
    return r.stdout


def raw(folder, name, *shape):
    with open(os.path.join(folder, name), "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).view(*shape)


def rel_diff(got, want):
    return ((got - want).abs().max() / want.abs().max().clamp(min=1e-30)).item()


@torch.no_grad()
def check_model(name, args, tmp, data):
    print(f"{name}: vae train {' '.join(MODELS[name])}")
    ckpt, st = os.path.join(tmp, f"{name}.bin"), os.path.join(tmp, f"{name}.safetensors")
    ref = os.path.join(tmp, f"{name}-ref")
    os.mkdir(ref)
    run(args.vae, "train", "--data", data, "--ckpt", ckpt, "--out", os.path.join(tmp, "out"),
        "--epochs", "1", "--batch", "20", "--threads", "2", *MODELS[name])
    print("  " + run(args.vae, "export", "--ckpt", ckpt, "-o", st).strip())
    run(args.ref, ckpt, data, ref, "1")
    vae_eval = json.loads(run(args.vae, "eval", "--ckpt", ckpt, "--data", data, "--json",
                              "--seed", "1", "--threads", "2"))

    t0 = time.monotonic()
    model = vae_torch.load(st)  # strict: every name and shape must match
    meta = model.meta
    D = math.prod(RGB_SHAPE) if name == "conv-rgb" else 784
    two = name == "mlp-2l"
    check(meta["arch"] == ("conv" if name.startswith("conv") else "mlp")
          and meta["x_dim"] == str(D)
          and meta["format"] == "pt" and meta["likelihood"] == vae_eval["likelihood"]
          and (meta.get("latent2"), meta.get("hidden2")) == (("3", "16,8") if two else
                                                               (None, None)),
          f"metadata {meta}")
    images, labels = vae_torch.load_idx(data, "t10k")
    n, Z, Z2 = len(labels), model.head.out_features // 2, model.latent2
    check(Z2 == (3 if two else 0), f"stochastic layers: latent {Z}, latent2 {Z2}")
    x = vae_torch.intensities(images)
    check(torch.equal(x, raw(ref, "x.f32", n, D)), "inputs equal vae's, bit for bit")

    eps = raw(ref, "eps.f32", n, Z)
    eps2 = raw(ref, "eps2.f32", n, Z2) if two else None
    mu, logvar = model.encode(x, labels)
    z = mu + eps * torch.exp(logvar / 2)
    logits = model.decode(z, labels)
    nets = [("mu", mu), ("logvar", logvar), ("logits", logits)]
    if two:  # q(h2|h1) at h1 = z, p(h1|h2) at h2 of the same eps2
        mu2, logvar2 = model.encode2(z)
        mp, lp = model.decode2(mu2 + eps2 * torch.exp(logvar2 / 2))
        nets += [("mu2", mu2), ("logvar2", logvar2), ("mp", mp), ("lp", lp)]
    rec, kl = vae_torch.neg_elbo(model, x, eps, labels, eps2=eps2)
    nets += [("rec", rec), ("kl", kl)]
    for what, got in nets:
        want = raw(ref, f"{what}.f32", n, -1).view(got.shape).to(got.dtype)
        d = rel_diff(got, want)
        check(d <= TOL_NET, f"{what:7s} max |torch - vae| / max |vae| = {d:.2e} "
              f"(tolerance {TOL_NET:g}; max |vae| {want.abs().max().item():.3g})")

    loss, want = (rec + kl).mean().item(), vae_eval["test_loss"]
    d = abs(loss - want) / abs(want)
    check(d <= TOL_LOSS, f"test loss, vae's eps: torch {loss:.6f}, vae eval {want:.6f}, "
          f"relative difference {d:.2e} (tolerance {TOL_LOSS:g})")

    la, per_a = vae_torch.test_loss(model, images, labels, torch.Generator().manual_seed(11))
    lb, per_b = vae_torch.test_loss(model, images, labels, torch.Generator().manual_seed(12))
    se = (per_a - per_b).std().item() / math.sqrt(n)
    check(abs(la - want) <= NOISE_SIGMAS * se,
          f"test loss, torch's eps: torch {la:.4f} (again: {lb:.4f}), vae eval {want:.4f}, "
          f"|difference| {abs(la - want):.4f} = {abs(la - want) / se:.2f} standard errors "
          f"of {se:.4f} (tolerance {NOISE_SIGMAS:g})")
    print(f"  PyTorch: {time.monotonic() - t0:.2f} s")


def main():
    ap = argparse.ArgumentParser(description="vae export, loaded by PyTorch")
    ap.add_argument("--vae", required=True, help="the vae binary")
    ap.add_argument("--ref", required=True, help="the export_ref helper")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    t0 = time.monotonic()
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix="vae-export-torch.")
    try:
        data, rgb = os.path.join(tmp, "data"), os.path.join(tmp, "rgb")
        os.mkdir(data)
        os.mkdir(rgb)
        write_split(data, "train", 300, 1)
        write_split(data, "t10k", 100, 2)
        write_rgb_split(rgb, "train", 300, 3)
        write_rgb_split(rgb, "t10k", 100, 4)
        for name in MODELS:
            check_model(name, args, tmp, rgb if name == "conv-rgb" else data)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"export_torch: {time.monotonic() - t0:.1f} s in all (torch {torch.__version__})")
    print(f"export_torch: {len(passes)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
