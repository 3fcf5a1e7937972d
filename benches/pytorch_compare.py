"""LeNet-5 in PyTorch (CPU, 2 threads) beside this crate's benchmarks, in one run.

    pip install torch
    python3 benches/pytorch_compare.py            # from the crate's root

Measures, for the same network (sigmoid convolutions, trainable 2x2 subsampling, fixed RBF
output, softmax cross-entropy of the negated RBF distances):
  - one training step at batch 1 (forward, loss, backward, SGD update), samples per second;
  - evaluation at batch 1000 (forward only, no gradients), images per second;
and for the modern preset's network (ReLU convolutions, 2x2 max pooling, two linear layers):
  - mini-batch training at batch 32 with Adam, samples per second;
then runs this crate's `cargo bench --bench peak` (one core's peak FMA rate with 8 lanes and,
where the processor has AVX-512, with 16: the higher is the yardstick)
and `cargo bench --bench train`: `sgd_step/sample` (one thread), `evaluate/10000_images`
(batches of 16 on both cores) and `modern_batches` (an epoch of the modern preset's batches of
32, on both cores and on one), and `sgd_step/sample` again with LENET5_PORTABLE=1 (the
kernels' baseline build); prints the table of both with each figure's share of the peak.
A dev-time comparison only: neither the tests nor CI need PyTorch.
"""

import json
import os
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


class Modern(nn.Module):
    """The modern preset: ReLU, max pooling, a linear 10-way output."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.conv3 = nn.Conv2d(16, 120, 5)
        self.fc1 = nn.Linear(120, 84)
        self.fc2 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x)).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


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
    return train, per_second(evaluate, 10_000, 5), modern_batches()


def modern_batches(batch=32, batches=100):
    """Samples per second of Adam on the modern network, batches of `batch`."""
    net = Modern()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    images = torch.randn(batches, batch, 1, 32, 32)
    labels = torch.randint(0, 10, (batches, batch))

    def epoch():
        for x, y in zip(images, labels):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()

    epoch()  # warm-up
    return per_second(epoch, batch * batches, 5)


# Multiply-adds of one forward pass, the same for both networks: C1 6·25·784, C3 16·6·25·100,
# C5 120·400, then 120·84 and 84·10. A training step computes each layer's weight gradient
# and, past the first layer, its input gradient: three times the forward's work, less C1's.
FORWARD_MACS = 6 * 25 * 784 + 16 * 6 * 25 * 100 + 120 * 400 + 120 * 84 + 84 * 10
FORWARD_FLOP = 2 * FORWARD_MACS
STEP_FLOP = 2 * (3 * FORWARD_MACS - 6 * 25 * 784)
# peak/fma_f32_one_core: 100 000 rounds of 10 chains of 8-lane FMAs, 2 flops each;
# peak/fma_f32x16_one_core (where the processor has AVX-512F) the same with 16 lanes
PEAK_FLOP = {
    "peak/fma_f32_one_core": 100_000 * 10 * 8 * 2,
    "peak/fma_f32x16_one_core": 100_000 * 10 * 16 * 2,
}


def criterion(bench, pattern, env=None):
    """Criterion's median time in seconds of each benchmark matching `pattern`: the median of
    its samples' times per iteration (`estimates.json`), as PyTorch's figures are medians,
    rather than the estimate its `time:` line prints (the mean, or a slope)."""
    out = subprocess.run(
        ["cargo", "bench", "--bench", bench, "--", pattern],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    target = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
    )["target_directory"]
    medians = {}
    for name in re.findall(r"^(\S+)\s*\n?\s*time:", out, re.M):
        path = os.path.join(target, "criterion", name, "new", "estimates.json")
        with open(path) as f:
            medians[name] = json.load(f)["median"]["point_estimate"] * 1e-9
    return medians


def processor():
    with open("/proc/cpuinfo") as f:
        info = f.read()
    field = lambda name: re.search(rf"^{name}\s*: (.*)$", info, re.M).group(1)
    flags = field("flags").split()
    has = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    return (
        f"{field('model name')}, family {field('cpu family')} model {field('model')}, "
        f"{os.cpu_count()} cores, {' '.join(has) or 'no AVX2'}"
    )


def main():
    torch_train, torch_eval, torch_modern = pytorch()
    peaks = {name: PEAK_FLOP[name] / t for name, t in criterion("peak", "fma_f32").items()}
    # the yardstick: the higher of the 8-lane and 16-lane rates
    peak = max(peaks.values())
    ours = criterion("train", "sgd_step|evaluate|modern_batches")
    portable = criterion("train", "sgd_step", dict(os.environ, LENET5_PORTABLE="1"))
    step = 1 / ours["sgd_step/sample"]
    portable_step = 1 / portable["sgd_step/sample"]
    evaluation = 10_000 / ours["evaluate/10000_images"]
    modern = 3_200 / ours["modern_batches/all_cores"]
    modern_one = 3_200 / ours["modern_batches/one_thread"]
    cores = 2

    def share(rate, flop, on):
        return f"{rate * flop / (on * peak):.0%}"

    print(f"{processor()}; PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, rate in peaks.items():
        print(f"{name}: {rate / 1e9:.1f} GFLOP/s")
    print()
    print("| | lenet5 | share of peak | PyTorch | share of peak | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [
        ("training step, report's network, batch 1, one thread (samples/s)",
         step, STEP_FLOP, 1, torch_train, cores),
        ("evaluation, report's network (images/s; PyTorch at batch 1 000, lenet5 in batches of 16)",
         evaluation, FORWARD_FLOP, cores, torch_eval, cores),
        ("training, modern network, batches of 32, Adam, both cores (samples/s)",
         modern, STEP_FLOP, cores, torch_modern, cores),
    ]
    for name, rate, flop, on, theirs, their_cores in rows:
        print(
            f"| {name} | {rate:,.0f} | {share(rate, flop, on)} | {theirs:,.0f} "
            f"| {share(theirs, flop, their_cores)} | {rate / theirs:.1f}x |"
        )
    print()
    print(
        f"modern network on one thread: {modern_one:,.0f} samples/s "
        f"({share(modern_one, STEP_FLOP, 1)} of one core); both cores / one: "
        f"{modern / modern_one:.2f}x"
    )
    print(
        f"training step, portable build (LENET5_PORTABLE=1): {portable_step:,.0f} samples/s; "
        f"AVX2 build / portable: {step / portable_step:.2f}x"
    )


if __name__ == "__main__":
    main()
