"""GFLOP/s of the step's big products by column-block width, on one thread.

The compiled step cuts X_batch @ W1 and the W1 update into column blocks
(fastmlp._blas.gemm_columns) so that OpenBLAS takes its unpacked small-matrix path
(m*n*k <= 100**3 on AVX-512 cores). This script shows why, and whether it still
holds on another machine or BLAS:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/gemm_shapes.py
"""
import argparse
import timeit

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from fastmlp import _blas
from fastmlp.kernels import gemm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[30, 64, 256])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 48, 32, 16, 8])
    args = parser.parse_args(argv)
    for lib in threadpool_info():
        print(f"# {lib['internal_api']} {lib.get('version')} {lib.get('architecture')}")
    rng = np.random.default_rng(0)
    D = args.features
    print("batch  width  m*n*k     forward GFLOP/s  update GFLOP/s   (gemm_columns picks)")
    with threadpool_limits(1, user_api="blas"):
        for B in args.batch_sizes:
            X = rng.standard_normal((B, D))
            for w in args.widths:
                W = rng.standard_normal((D, w))
                out = np.empty((B, w))
                dR = rng.standard_normal((B, w))
                flops = 2 * B * D * w
                n = max(20, int(2e8 // flops))
                fwd = min(timeit.repeat(lambda: gemm(1.0, X, W, 0.0, out), number=n, repeat=5)) / n
                upd = min(timeit.repeat(lambda: gemm(-1e-4, X, dR, 1.0, W, trans_a=True), number=n, repeat=5)) / n
                pick = _blas.gemm_columns(B, D, max(args.widths))
                print(f"{B:5d}  {w:5d}  {B * D * w / 1e6:6.2f}M  {flops / fwd / 1e9:14.1f}  "
                      f"{flops / upd / 1e9:14.1f}   {'<-' if w == pick else ''}")


if __name__ == "__main__":
    main()
