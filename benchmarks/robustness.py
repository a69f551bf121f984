"""Interpreter exit during a fit, and Ctrl-C latency: the figures of the README's
"Threads and reproducibility" section.

    python benchmarks/robustness.py exit [--runs 30]
        Run a fit (N=60000, D=200, H=256) in a daemon thread, let the main thread
        exit after 1.5 s, and count the runs that did not end with the main
        thread's exit status (a crash, abort or hang).
    python benchmarks/robustness.py ctrl-c [--dtype float64]
        Send SIGINT to a process fitting N=60000, D=784, H=512 and report how long
        KeyboardInterrupt took to reach the caller.
"""

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time

EXIT_CHILD = textwrap.dedent("""
    import sys, threading, time, numpy as np, fastmlp
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60000, 200)); y = rng.integers(0, 10, 60000)
    threading.Thread(target=lambda: fastmlp.fit(X, y, hidden=256, epochs=100), daemon=True).start()
    time.sleep(1.5)
    sys.exit(7)
""")

CTRL_C_CHILD = textwrap.dedent("""
    import signal, sys, time, numpy as np, fastmlp
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started ignored
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60000, 784)).astype(sys.argv[1]); y = rng.integers(0, 10, 60000)
    print("ready", flush=True)
    try:
        fastmlp.fit(X, y, hidden=512, epochs=100)
    except KeyboardInterrupt:
        print(time.perf_counter(), flush=True)
""")


def exit_runs(runs):
    bad = []
    for run in range(runs):
        proc = subprocess.run([sys.executable, "-c", EXIT_CHILD], capture_output=True, text=True, timeout=120)
        if proc.returncode != 7:
            bad.append((run, proc.returncode, proc.stderr[-300:]))
        print(f"run {run + 1}: exit status {proc.returncode}", flush=True)
    print(f"{len(bad)} of {runs} runs did not exit cleanly with the main thread's status")
    for b in bad:
        print(b)


def ctrl_c(dtype, repeat):
    for _ in range(repeat):
        child = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD, dtype], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(3.0)   # inside the first epochs
        sent = time.perf_counter()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline().strip()
        child.wait()
        caught = float(line)
        print(f"{dtype}: KeyboardInterrupt {1e3 * (caught - sent):.1f} ms after SIGINT", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["exit", "ctrl-c"])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    args = parser.parse_args()
    if args.what == "exit":
        exit_runs(args.runs)
    else:
        ctrl_c(args.dtype, 3)
