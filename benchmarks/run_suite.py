"""Run fastmlp's benchmark suite (same as ``fastmlp bench``); see fastmlp/benchmark.py.

    pip install torch jax         # the optional peers, beside the installed fastmlp
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run_suite.py [--quick]
"""
import sys

from fastmlp.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
