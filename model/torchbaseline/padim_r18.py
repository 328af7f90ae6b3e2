#!/usr/bin/env python3
"""The anomalib-style PyTorch PaDiM (ResNet-18, d=100) timed on this machine.

The baseline that `make bench-pytorch` sets `inspectd bench` against: what a
plant would run if it took the reference implementation as it is. It follows
anomalib's Padim model (anomalib/models/image/padim): a ResNet-18 feature
extractor on a 224x224 input, layers 1-3 (64+128+256 = 448 channels at
56x56, 28x28 and 14x14), the deeper maps upsampled to 56x56 (nearest) and
concatenated, 100 channels chosen at random (PaDiM-R18-Rd100), the
Mahalanobis distance of every position against its own mean and inverse
covariance (anomalib's AnomalyMapGenerator.compute_distance: one batched
matmul over the 3136 positions), the distance map upsampled to the input
size (bilinear) and blurred with a Gaussian of sigma 4 (kernel 33), and the
image score as the map's maximum.

Timed is the model alone, one image per call as a free-running line
inspects: no decoding, no preprocessing, no publishing. The weights and the
Gaussian are random: time does not depend on their values. Only
Debian's python3-torch is needed (torchvision is not): the network is
written out here, with torchvision's resnet18 layout.

Prints one line of figures; --json prints them as JSON.
"""

import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idn = x if self.down is None else self.down(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + idn)


class ResNet18Features(nn.Module):
    """torchvision's resnet18 up to layer3, returning layers 1-3."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128, 1))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256, 1))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        return l1, l2, l3


class Padim(nn.Module):
    def __init__(self, d=100, size=224, sigma=4.0):
        super().__init__()
        self.backbone = ResNet18Features().eval()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("idx", torch.randperm(448, generator=g)[:d])
        h = size // 4
        self.register_buffer("mean", torch.randn(d, h * h, generator=g))
        a = torch.randn(h * h, d, d, generator=g) / d
        self.register_buffer("inv_cov", a @ a.transpose(1, 2) + torch.eye(d))
        k = 2 * int(4.0 * sigma + 0.5) + 1
        x = torch.arange(k, dtype=torch.float32) - k // 2
        w = torch.exp(-x * x / (2 * sigma * sigma))
        self.register_buffer("blur", (w / w.sum()).view(1, 1, 1, k))
        self.size = size

    def forward(self, img):
        l1, l2, l3 = self.backbone(img)
        emb = torch.cat([l1, F.interpolate(l2, size=l1.shape[-2:], mode="nearest"),
                         F.interpolate(l3, size=l1.shape[-2:], mode="nearest")], 1)
        emb = torch.index_select(emb, 1, self.idx)
        b, c, h, w = emb.shape
        delta = (emb.reshape(b, c, h * w) - self.mean).permute(2, 0, 1)
        dist = (torch.matmul(delta, self.inv_cov) * delta).sum(2).permute(1, 0)
        dist = dist.reshape(b, 1, h, w).clamp(0).sqrt()
        amap = F.interpolate(dist, size=(self.size, self.size), mode="bilinear", align_corners=False)
        pad = self.blur.shape[-1] // 2
        amap = F.conv2d(F.pad(amap, (pad, pad, 0, 0), mode="reflect"), self.blur)
        amap = F.conv2d(F.pad(amap, (0, 0, pad, pad), mode="reflect"), self.blur.transpose(2, 3))
        return amap, amap.amax(dim=(1, 2, 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200, help="timed inspections (after 10 warm-up)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = Padim()
    img = torch.rand(1, 3, 224, 224)
    lat = []
    with torch.inference_mode():
        for _ in range(10):
            m(img)
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(a.count):
            s = time.perf_counter()
            m(img)
            lat.append(time.perf_counter() - s)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    lat.sort()
    out = {
        "torch": torch.__version__, "threads": a.threads, "count": a.count,
        "inspections_per_s": a.count / wall,
        "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)],
        "cpu_ms_per_inspection": 1000 * cpu / a.count,
    }
    if a.json:
        print(json.dumps(out))
    else:
        print("pytorch PaDiM-R18-Rd100 (anomalib style, torch %s, %d threads): %.1f inspections/s, p50 %.1f ms, p99 %.1f ms, %.1f ms CPU each (model alone, %d images)"
              % (out["torch"], a.threads, out["inspections_per_s"], out["p50_ms"], out["p99_ms"], out["cpu_ms_per_inspection"], a.count))


if __name__ == "__main__":
    main()
