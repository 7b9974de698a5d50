"""
Scaling: throughput against threads and problem count
=====================================================

Throughput of the fixed-ξ sweep :func:`fastsd.sweep_risk` in *cells* per second — one
cell is one (problem, λ, ξ, k, eigen-direction) update, so a sweep does B·L·G·(K + 1)·p of
them — measured on the machine that built this page:

* against the Numba thread count, set for a block of code by the :func:`fastsd.threads`
  context manager (restored afterwards), for a fixed batch of problems;
* against the number of problems B in one call, with one thread and with all threads:
  small batches pay the per-call overhead (waking the thread pool costs far more on a busy
  machine), large ones run at the kernel's rate.

Each point is the median of 7 timed calls after a warm-up call (JIT compilation
excluded), on inputs decomposed once. The machine may be shared: treat the numbers as
indicative, and see the benchmarks guide for the controlled measurements.
"""

import os
import time

import matplotlib.pyplot as plt
import numba
import numpy as np

import fastsd


def median_seconds(func, repeat=7):
    func()  # warm-up: compilation, thread pool
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


rng = np.random.default_rng(0)
n, d, L, G, K = 128, 32, 32, 8, 6
lams, xis = np.logspace(-3, 3, L), np.linspace(-1, 2, G)
X, theta = rng.standard_normal((256, n, d)), rng.standard_normal((256, d))
dec = fastsd.decompose(X)


def cells_per_second(B, threads=None):
    sub = dec.subset(slice(0, B))

    def call():
        fastsd.sweep_risk(sub, theta[:B], 1.0, lams, xis, K, threads=threads)

    return B * L * G * (K + 1) * d / median_seconds(call)


# %%
# Threads, B = 256 problems:
max_threads = numba.config.NUMBA_NUM_THREADS
thread_counts = list(range(1, max_threads + 1))
by_threads = []
for t in thread_counts:
    with fastsd.threads(t):
        by_threads.append(cells_per_second(256))
    print(f"{t} thread(s): {by_threads[-1]:.3g} cells/s")

# %%
# Problem count, one thread and all threads:
batch_sizes = [1, 4, 16, 64, 256]
by_batch = {
    t: [cells_per_second(B, threads=t) for B in batch_sizes] for t in sorted({1, max_threads})
}
for t, rates in by_batch.items():
    print(f"{t} thread(s): " + ", ".join(f"B = {B}: {r:.3g}" for B, r in zip(batch_sizes, rates)))

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
ax0.plot(thread_counts, by_threads, "o-", label="measured")
ax0.plot(thread_counts, by_threads[0] * np.array(thread_counts), "k:", lw=1, label="linear")
ax0.set_xlabel("Numba threads (fastsd.threads)")
ax0.set_ylabel("cells per second")
ax0.set_xticks(thread_counts)
ax0.set_title(f"B = 256, n = {n}, d = {d}, L = {L}, G = {G}, K = {K}")
ax0.legend()
for t, rates in by_batch.items():
    ax1.loglog(batch_sizes, rates, "o-", label=f"{t} thread(s)")
ax1.set_xlabel("problems per call B")
ax1.set_ylabel("cells per second")
ax1.set_title(f"{os.cpu_count()} logical CPUs")
ax1.legend()
fig.tight_layout()
plt.show()
