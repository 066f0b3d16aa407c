"""Peak resident memory of a training run against what it has to hold.

For each network of bench/peers.py, in a fresh process: the resident set after importing
backprop (the baseline), then one `fit` epoch and a run of `train_step` calls on random data.
The peak (ru_maxrss) over the baseline is compared with the bytes the run cannot do without:

    parameters + gradients + optimizer state (SGD momentum: one buffer)
    + one batch of activations (pre- and post-activation values and their gradients, every
      layer, and the batch's inputs and targets)
    + the data (inputs and one-hot targets, float32)

    python bench/memory.py                 # tiny, mnist, deep
    python bench/memory.py --networks wide
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

NETWORKS = {
    "tiny": ((784, 128, 10), 32),
    "mnist": ((784, 512, 512, 10), 128),
    "deep": ((256,) + (256,) * 8 + (10,), 64),
    "wide": ((1024, 4096, 4096, 1024), 256),
}
ROWS = 8192  # samples in the data set of every run


def resident_kib() -> int:
    """The current resident set (VmRSS) in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def worker(name: str) -> None:
    import numpy as np

    import backprop as bp

    sizes, batch = NETWORKS[name]
    # The generator of the random data is made first: loading NumPy's random module adds about
    # 2.2 MiB of resident code and tables, which belong to how this script makes its data, not
    # to the training run (deep's ratio read 1.24x-1.25x with them, 1.12x without).
    rng = np.random.default_rng(0)
    baseline = resident_kib()
    X = rng.standard_normal((ROWS, sizes[0]), dtype=np.float32)
    labels = rng.integers(0, sizes[-1], ROWS)
    net = bp.Network(list(sizes), activation="relu", loss="cross_entropy", seed=0)
    optimizer = bp.optim.SGD(lr=0.01, momentum=0.9)
    net.fit(X, labels, optimizer=optimizer, epochs=1, batch_size=batch, verbose=0)
    for start in range(0, min(ROWS, 64 * batch), batch):
        net.train_step(X[start:start + batch], labels[start:start + batch], optimizer)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    params = net.params.size
    # a batch of activations: pre- and post-activation values and their gradient for every
    # layer, and the batch's inputs and targets
    activations = batch * (3 * sum(sizes[1:]) + sizes[0] + sizes[-1])
    needed = 4 * (3 * params + activations + ROWS * (sizes[0] + sizes[-1]))  # float32 bytes
    print(json.dumps({"network": name, "baseline_kib": baseline, "peak_kib": peak,
                      "needed_bytes": needed, "params": params}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="tiny,mnist,deep")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        worker(options.worker)
        return
    print(f"{'network':<7} {'params':>11} {'needed MiB':>10} {'peak - baseline MiB':>19} {'ratio':>6}")
    for name in options.networks.split(","):
        if name not in NETWORKS:
            parser.error(f"unknown network {name!r}; choose from {', '.join(NETWORKS)}")
        done = subprocess.run([sys.executable, __file__, "--worker", name], capture_output=True,
                              text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        grown = (result["peak_kib"] - result["baseline_kib"]) / 1024
        needed = result["needed_bytes"] / 2**20
        print(f"{name:<7} {result['params']:>11,} {needed:>10.1f} {grown:>19.1f} {grown / needed:>5.2f}x")


if __name__ == "__main__":
    main()
