"""The report's LeNet-5 in PyTorch (CPU, 2 threads) beside this crate's benchmarks, in one run.

    pip install torch
    python3 benches/pytorch_compare.py            # from the crate's root

Measures, for the same network (sigmoid convolutions, trainable 2x2 subsampling, fixed RBF
output, softmax cross-entropy of the negated RBF distances):
  - one training step at batch 1 (forward, loss, backward, SGD update), samples per second;
  - evaluation at batch 1000 (forward only, no gradients), images per second;
then runs `cargo bench --bench train` for this crate's `sgd_step/sample` (one thread) and
`evaluate/10000_images` (batches of 8 on both cores) and prints the table of both.
A dev-time comparison only: neither the tests nor CI need PyTorch.
"""

import re
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)


class Subsampling(nn.Module):
    """sigmoid(bias + coef * sum of each 2x2 block), one coefficient and bias per channel."""

    def __init__(self, channels):
        super().__init__()
        self.coef = nn.Parameter(torch.empty(channels).uniform_(-1, 1))
        self.bias = nn.Parameter(torch.empty(channels).uniform_(-1, 1))

    def forward(self, x):
        sums = F.avg_pool2d(x, 2) * 4
        return torch.sigmoid(sums * self.coef[None, :, None, None] + self.bias[None, :, None, None])


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.s2 = Subsampling(6)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.s4 = Subsampling(16)
        self.conv3 = nn.Conv2d(16, 120, 5)
        self.fc = nn.Linear(120, 84)
        # fixed 0/1 prototypes, as the crate's digit bitmap (only the shape matters here)
        self.register_buffer("rbf", (torch.rand(10, 84) < 0.4).float())
        for p in self.parameters():
            nn.init.uniform_(p, -1, 1)

    def forward(self, x):
        x = self.s2(torch.sigmoid(self.conv1(x)))
        x = self.s4(torch.sigmoid(self.conv2(x)))
        x = torch.sigmoid(self.conv3(x)).flatten(1)
        x = torch.sigmoid(self.fc(x))
        return -((x[:, None, :] - self.rbf[None]) ** 2).sum(-1)


def per_second(work, count, repeat):
    """Median of `repeat` timings of `work()`, as `count` items per second."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    times.sort()
    return count / times[len(times) // 2]


def pytorch():
    net = LeNet5()
    opt = torch.optim.SGD(net.parameters(), lr=1e-12)
    image = (torch.rand(1, 1, 32, 32) < 0.19).float()
    label = torch.tensor([3])

    def steps(n=500):
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(net(image), label).backward()
            opt.step()

    steps(100)  # warm-up
    train = per_second(steps, 500, 5)

    images = (torch.rand(1000, 1, 32, 32) < 0.19).float()

    def evaluate(n=10):
        with torch.no_grad():
            for _ in range(n):
                net(images).argmax(1)

    evaluate(2)
    return train, per_second(evaluate, 10_000, 5)


def ours():
    """Medians from criterion's output for the crate's two benchmarks."""
    out = subprocess.run(
        ["cargo", "bench", "--bench", "train", "--", "sgd_step|evaluate"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    unit = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    medians = {}
    for name, value, u in re.findall(
        r"^(\S+)\s*\n?\s*time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", out, re.M
    ):
        medians[name] = float(value) * unit[u]
    return 1 / medians["sgd_step/sample"], 10_000 / medians["evaluate/10000_images"]


def main():
    torch_train, torch_eval = pytorch()
    our_train, our_eval = ours()
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| | lenet5 (this crate) | PyTorch (CPU) | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| training step, batch 1 (samples/s) | {our_train:,.0f} | {torch_train:,.0f} "
        f"| {our_train / torch_train:.1f}x |"
    )
    print(
        f"| evaluation (images/s) | {our_eval:,.0f} | {torch_eval:,.0f} "
        f"| {our_eval / torch_eval:.1f}x |"
    )


if __name__ == "__main__":
    main()
