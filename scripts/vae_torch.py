#!/usr/bin/python3
"""vae_torch.py - the models of `vae` in PyTorch, and load() for the
safetensors files `vae export` writes. Needs PyTorch and the standard
library only (Debian: apt-get install python3-torch).

    import vae_torch
    model = vae_torch.load("model.safetensors")   # an nn.Module, in eval mode
    mu, logvar = model.encode(x)                  # x: (N, 784) floats in [0, 1]
    logits = model.decode(mu + eps * torch.exp(logvar / 2))
    rec, kl = vae_torch.neg_elbo(model, x, eps)   # per image, in nats

A model of two stochastic layers (`vae train --latent Z1,Z2 --hidden
W/V`) has h1 = z below and h2 above: model.encode gives q(h1|x),
model.encode2(h1) q(h2|h1)'s mu2 and logvar2, model.decode2(h2) p(h1|h2)'s
mean and log-variance of h1, model.decode(h1) the logits; its loss takes
the noise of both layers, every density sampled at the draws:

    rec, kl = vae_torch.neg_elbo(model, x, eps, eps2=eps2)

From the shell: `vae_torch.py model.safetensors [--data DIR]` prints the
model, and with --data the test loss (negative ELBO, one draw per image).

The modules mirror docs/checkpoint.md: weights are `vae`'s own (nn.Linear's
out x in, Conv2d's and ConvTranspose2d's layouts), the conv VAE puts the
activation *before* BatchNorm, LeakyReLU has slope 0.1, and the decoder's
output is the logit a of p(x|z) per pixel.
"""
import gzip
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F
from torch import nn

EXPORT_VERSION = "1"  # the "vae_export" metadata this file reads
LEAKY_SLOPE = 0.1
LOG_PI_HALF = 0.5 * math.log(math.pi)  # the Gaussian's constant, variance 1/2


def activation(name):
    return {"relu": nn.ReLU(), "tanh": nn.Tanh(), "leaky": nn.LeakyReLU(LEAKY_SLOPE)}[name]


def mlp(width, widths, act):
    """[Linear, act] per width, from width inputs; and the last width."""
    layers = []
    for h in widths:
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    return layers, width


class MLPVAE(nn.Module):
    """x (+ one-hot y) -> hidden layers -> head [mu | logvar]; z (+ one-hot
    y) -> the hidden widths reversed -> x_dim logits. Conditional (n_classes
    > 0): a learned prior p(z|y), one-hot y -> hidden[-1] -> [mu | logvar].
    Two stochastic layers (latent2 > 0; never conditional): z is h1, and
    q(h2|h1) is h1 -> hidden2 -> head2 [mu2 | logvar2], p(h1|h2) is h2 ->
    hidden2 reversed -> [mu | logvar] of h1 (decoder2's last Linear), p(h2)
    = N(0, I)."""

    def __init__(self, x_dim, hidden, latent, act="relu", likelihood="bernoulli",
                 n_classes=0, latent2=0, hidden2=()):
        super().__init__()
        self.likelihood, self.n_classes, self.latent2 = likelihood, n_classes, latent2
        layers, width = mlp(x_dim + n_classes, hidden, act)
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * latent)
        layers, width = mlp(latent + n_classes, reversed(hidden), act)
        self.decoder = nn.Sequential(*layers, nn.Linear(width, x_dim))
        if n_classes:
            self.prior = nn.Sequential(nn.Linear(n_classes, hidden[-1]), activation(act),
                                       nn.Linear(hidden[-1], 2 * latent))
        if latent2:
            layers, width = mlp(latent, hidden2, act)
            self.encoder2 = nn.Sequential(*layers)
            self.head2 = nn.Linear(width, 2 * latent2)
            layers, width = mlp(latent2, reversed(hidden2), act)
            self.decoder2 = nn.Sequential(*layers, nn.Linear(width, 2 * latent))

    def with_label(self, v, y):
        if not self.n_classes:
            return v
        return torch.cat([v, F.one_hot(y.long(), self.n_classes).to(v.dtype)], dim=1)

    def encode(self, x, y=None):
        return self.head(self.encoder(self.with_label(x, y))).chunk(2, dim=1)

    def decode(self, z, y=None):
        return self.decoder(self.with_label(z, y))

    def prior_params(self, y):
        """[mu | logvar] of p(z|y); None for N(0, I) (and for two layers,
        whose p(h1|h2) is decode2)."""
        if not self.n_classes:
            return None
        return self.prior(F.one_hot(y.long(), self.n_classes).float()).chunk(2, dim=1)

    def encode2(self, h1):
        """Two stochastic layers: mu2, logvar2 of q(h2|h1)."""
        return self.head2(self.encoder2(h1)).chunk(2, dim=1)

    def decode2(self, h2):
        """Two stochastic layers: mu, logvar of p(h1|h2)."""
        return self.decoder2(h2).chunk(2, dim=1)


class ConvVAE(nn.Module):
    """The H x W image of C channels (the input row holds each pixel's C
    values together), zero-padded to PH x PW, PH = 2^blocks * max(4,
    ceil(H / 2^blocks)), (PH - H) // 2 rows on top (likewise PW, W); per
    block Conv2d(4, stride 2, padding 1), activation, BatchNorm2d, down to
    K x BH x BW; flattened (K, row, column) into the head. The decoder:
    Linear z -> K x BH x BW, ConvTranspose2d blocks back up to C channels
    of PH x PW (the last without activation or BatchNorm), cropped to
    H x W, each pixel's C values together again."""

    def __init__(self, height, width, channels, hidden, latent, act="leaky",
                 likelihood="gaussian"):
        super().__init__()
        self.likelihood, self.n_classes, self.latent2 = likelihood, 0, 0
        self.h, self.w, self.c, self.k = height, width, channels, hidden[-1]
        f = 2 ** len(hidden)
        self.bh = max(4, -(-height // f))
        self.bw = max(4, -(-width // f))
        self.ph, self.pw = self.bh * f, self.bw * f
        self.top = (self.ph - height) // 2
        self.left = (self.pw - width) // 2
        bottom = self.bh * self.bw * hidden[-1]
        layers, cin = [], channels
        for c in hidden:
            layers += [nn.Conv2d(cin, c, 4, 2, 1), activation(act), nn.BatchNorm2d(c)]
            cin = c
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(bottom, 2 * latent)
        self.decoder_input = nn.Linear(latent, bottom)
        chans, layers = list(reversed(hidden)) + [channels], []
        for j in range(len(hidden)):
            layers.append(nn.ConvTranspose2d(chans[j], chans[j + 1], 4, 2, 1))
            if j + 1 < len(hidden):
                layers += [activation(act), nn.BatchNorm2d(chans[j + 1])]
        self.decoder = nn.Sequential(*layers)

    def encode(self, x, y=None):
        img = x.view(-1, self.h, self.w, self.c).permute(0, 3, 1, 2)
        img = F.pad(img, (self.left, self.pw - self.w - self.left,
                          self.top, self.ph - self.h - self.top))
        return self.head(self.encoder(img).flatten(1)).chunk(2, dim=1)

    def decode(self, z, y=None):
        out = self.decoder(self.decoder_input(z).view(-1, self.k, self.bh, self.bw))
        t, l = self.top, self.left
        out = out[:, :, t:t + self.h, l:l + self.w]
        return out.permute(0, 2, 3, 1).reshape(-1, self.h * self.w * self.c)

    def prior_params(self, y):
        return None


# --------------------------------------------------------------------------
# The loss

def log_cb_norm(a):
    """log C of the continuous Bernoulli at logit a: log(a / tanh(a/2)),
    by its Taylor series near 0, where the closed form loses its digits."""
    u = a.abs()
    far = u.clamp(min=0.5)
    closed = torch.log(far) - torch.log(-torch.expm1(-far)) + torch.log1p(torch.exp(-far))
    w2 = (u / 2) ** 2
    series = math.log(2) + w2 / 3 - 7 * w2 ** 2 / 90 + 62 * w2 ** 3 / 2835 - 127 * w2 ** 4 / 18900
    return torch.where(u >= 0.5, closed, series)


def neg_log_lik(logits, x, likelihood):
    """-log p(x|z) per image, summed over the pixels."""
    if likelihood == "gaussian":  # N(x; sigmoid(a), 1/2)
        return ((x - torch.sigmoid(logits)) ** 2 + LOG_PI_HALF).sum(1)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    if likelihood == "cb":
        bce = bce - log_cb_norm(logits)
    return bce.sum(1)


def kl_divergence(mu, logvar, prior=None):
    """KL(q(z|x) || p(z)) per image: p = N(0, I), or N(mp, exp(lp))."""
    if prior is None:
        return -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
    mp, lp = prior
    return 0.5 * (lp - logvar + (logvar.exp() + (mu - mp) ** 2) / lp.exp() - 1).sum(1)


def sampled_kl(eps, logvar, h1, mp, lp, eps2, logvar2, h2):
    """Two stochastic layers: log q(h1|x) + log q(h2|h1) - log p(h1|h2) -
    log p(h2) per image at one draw, as vae computes it (the 2 pi terms
    cancel; log q(h|.) = sum -eps^2/2 - logvar/2 with h = mu + eps
    exp(logvar/2)). All arguments in one dtype."""
    log_q1 = (-eps ** 2 / 2 - logvar / 2).sum(1)
    log_q2 = (-eps2 ** 2 / 2 - logvar2 / 2).sum(1)
    log_p1 = (-(h1 - mp) ** 2 / (2 * lp.exp()) - lp / 2).sum(1)
    log_p2 = (-h2 ** 2 / 2).sum(1)
    return log_q1 + log_q2 - log_p1 - log_p2


def neg_elbo(model, x, eps, y=None, dtype=torch.float64, eps2=None):
    """(rec, kl) per image with one draw z = mu + eps exp(logvar / 2); the
    network runs in float32, the loss in dtype. Two stochastic layers take
    eps2 too: h1 = z, h2 = mu2 + eps2 exp(logvar2 / 2) with q(h2|h1) at
    that h1, and kl is the sampled one (sampled_kl), `vae eval`'s."""
    mu, logvar = model.encode(x, y)
    z = mu + eps * torch.exp(logvar / 2)
    if model.latent2:
        if eps2 is None:
            raise ValueError("a model of two stochastic layers needs eps2, h2's noise")
        mu2, logvar2 = model.encode2(z)
        h2 = mu2 + eps2 * torch.exp(logvar2 / 2)
        mp, lp = model.decode2(h2)
        logits = model.decode(z)
        d = [t.to(dtype) for t in (eps, logvar, z, mp, lp, eps2, logvar2, h2)]
        return (neg_log_lik(logits.to(dtype), x.to(dtype), model.likelihood),
                sampled_kl(*d))
    logits = model.decode(z, y)
    prior = model.prior_params(y)
    if prior is not None:
        prior = tuple(p.to(dtype) for p in prior)
    return (neg_log_lik(logits.to(dtype), x.to(dtype), model.likelihood),
            kl_divergence(mu.to(dtype), logvar.to(dtype), prior))


# --------------------------------------------------------------------------
# Files

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64,
          "I32": torch.int32}


def read_safetensors(path):
    """The tensors (a dict, in file order) and the metadata of a
    safetensors file, checked: offsets contiguous, in range, sizes exact."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header of {n} bytes runs past the end")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n:]
    tensors, at = {}, 0
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        size = torch.tensor([], dtype=dtype).element_size()
        if begin != at or end > len(data) or end - begin != size * math.prod(info["shape"]):
            raise ValueError(f"{path}: {name}: bad data_offsets {begin, end}")
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype)
        if sys.byteorder != "little":  # the file is little-endian
            t = t.view(torch.uint8).view(-1, size).flip(1).reshape(-1).view(dtype)
        tensors[name] = t.reshape(info["shape"])
        at = end
    if at != len(data):
        raise ValueError(f"{path}: {len(data) - at} bytes after the last tensor")
    return tensors, meta


def build(meta):
    """An untrained module of the architecture the metadata names."""
    if meta.get("vae_export") != EXPORT_VERSION:
        raise ValueError(f"not a vae export of version {EXPORT_VERSION}: {meta}")
    hidden = [int(h) for h in meta["hidden"].split(",")]
    latent, act, lik = int(meta["latent"]), meta["activation"], meta["likelihood"]
    # Two stochastic layers: both keys; a one-layer file has neither.
    latent2 = int(meta.get("latent2", "0"))
    hidden2 = [int(h) for h in meta["hidden2"].split(",")] if latent2 else []
    if latent2 and (meta["arch"] != "mlp" or int(meta["n_classes"])):
        raise ValueError(f"two stochastic layers in a model that cannot have them: {meta}")
    if meta["arch"] == "conv":
        model = ConvVAE(int(meta["height"]), int(meta["width"]), int(meta["channels"]),
                        hidden, latent, act, lik)
        assert (model.top, model.left) == (int(meta["pad_top"]), int(meta["pad_left"])), meta
        return model
    return MLPVAE(int(meta["x_dim"]), hidden, latent, act, lik, int(meta["n_classes"]),
                  latent2, hidden2)


def load(path):
    """The model in a `vae export` file, its state_dict loaded strictly, in
    eval mode (BatchNorm uses its running averages); .meta holds the
    file's metadata."""
    tensors, meta = read_safetensors(path)
    model = build(meta)
    model.load_state_dict(tensors, strict=True)
    model.meta = meta
    return model.eval()


def load_idx(folder, split):
    """(images, labels) of split ("train" or "t10k") of an MNIST-format
    folder, raw or .gz: uint8 tensors (n, rows * cols * channels) and (n,).
    Grey images are idx3, colour ones idx4 (n, rows, cols, 3); a folder
    without label files (a flat vae import) gives zeros for labels."""
    def find(name):
        for path in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
            if os.path.exists(path):
                return path
        return None

    def read(path, magics):
        with open(path, "rb") as f:
            blob = f.read()
        if blob[:2] == b"\x1f\x8b":
            blob = gzip.decompress(blob)
        ndim = blob[3]
        dims = struct.unpack(f">{ndim}I", blob[4:4 + 4 * ndim])
        if struct.unpack(">I", blob[:4])[0] not in magics or \
                len(blob) != 4 + 4 * ndim + math.prod(dims):
            raise ValueError(f"{path}: not an IDX file of the expected kind and size")
        return torch.frombuffer(bytearray(blob[4 + 4 * ndim:]), dtype=torch.uint8), dims
    path = find(f"{split}-images-idx3-ubyte") or find(f"{split}-images-idx4-ubyte")
    if path is None:
        raise FileNotFoundError(f"{folder}: no {split} images (idx3 or idx4)")
    images, dims = read(path, (0x803, 0x804))
    path = find(f"{split}-labels-idx1-ubyte")
    labels = read(path, (0x801,))[0] if path else torch.zeros(dims[0], dtype=torch.uint8)
    return images.view(dims[0], -1), labels


def intensities(images):
    """vae's input: each byte times the float32 1/255 (docs/checkpoint.md)."""
    return images.float() * torch.tensor(1 / 255, dtype=torch.float32)


@torch.no_grad()
def test_loss(model, images, labels, generator=None):
    """Mean over the images of rec + kl (nats), one draw of eps each, and
    the per-image values."""
    x = intensities(images)
    eps = torch.randn(x.shape[0], model.head.out_features // 2, generator=generator)
    eps2 = None
    if model.latent2:  # h2's noise after h1's
        eps2 = torch.randn(x.shape[0], model.latent2, generator=generator)
    rec, kl = neg_elbo(model, x, eps, labels, eps2=eps2)
    return (rec + kl).mean().item(), rec + kl


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a file written by `vae export`")
    ap.add_argument("--data", help="folder with t10k-images-idx3-ubyte: print the test loss")
    ap.add_argument("--seed", type=int, default=1, help="seed of torch's draws of eps")
    args = ap.parse_args()
    m = load(args.model)
    print(m)
    print(json.dumps(m.meta, indent=1))
    if args.data:
        if m.meta.get("binarize", "none") != "none":
            print("note: vae evaluates this model on binarized test images; these are intensities")
        images, labels = load_idx(args.data, "t10k")
        loss, _ = test_loss(m, images, labels, torch.Generator().manual_seed(args.seed))
        print(f"test loss {loss:.4f} nats/image on {len(labels)} images")
