"""fastmlp's kernels for a step's two big products beside libxsmm's JIT kernels.

libxsmm (https://github.com/libxsmm/libxsmm) generates machine code for small matrix
products at run time, for the CPU it runs on; it is the field's library for products
of this size. fastmlp does not use it: ``pip install .`` must build on a fresh
machine without system packages, and fastmlp's own kernels read the batch's rows in
place, through the shuffled order. This script measures what that choice costs or
gains. It builds ``libxsmm_products.c`` (next to it) against fastmlp's kernels
(``src_c/_small_gemm.h``) and an installed libxsmm (Debian: ``apt install
libxsmm-dev``), and runs it once with libxsmm's code for this CPU and once with its
AVX2 code (``LIBXSMM_TARGET=hsw``). Each run times, on one thread, taking turns in
that one process, a step's forward product ``Xb @ W1_s`` and W1's update
``W1_s += step * Xb.T @ dA1`` for a slice of ``n`` hidden units: by fastmlp's AVX-512
and AVX2 kernels (reading X's rows in place) and by libxsmm (which needs the batch
gathered into one matrix, and ``step`` applied to dA1 first: both copies count in
its time and are shown apart).

    python benchmarks/libxsmm_products.py

"x fastmlp" is libxsmm's time over fastmlp's kernels of the same instruction set
(AVX-512 against libxsmm's code for an AVX-512 CPU, AVX2 against its AVX2 code), in
the same process. "diff" is how far libxsmm's W1 ended from fastmlp's after the same
steps (max |difference| / max |W1|): the two sum in different orders.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from fastmlp import benchmark, kernels

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "libxsmm_products.c"
KERNELS_DIR = HERE.parent / "src_c"
DEFAULT_LIBS = ["-lxsmm", "-lxsmmnoblas", "-lpthread", "-lrt", "-ldl", "-lm"]


def libxsmm_flags():
    """(cflags, libs) for libxsmm from pkg-config, or the usual names; None if its header
    is nowhere to be found."""
    if shutil.which("pkg-config"):
        found = subprocess.run(["pkg-config", "--cflags", "--libs", "libxsmm"], capture_output=True, text=True)
        if found.returncode == 0:
            words = found.stdout.split()
            libs = [w for w in words if w.startswith(("-l", "-L"))]
            # libxsmm calls BLAS for shapes it has no code for (none here): its stand-in
            # library, linked after it, saves linking a BLAS
            return [w for w in words if not w.startswith(("-l", "-L"))], \
                libs[:libs.index("-lxsmm") + 1] + ["-lxsmmnoblas"] + libs[libs.index("-lxsmm") + 1:]
    include = sysconfig.get_config_var("INCLUDEDIR") or "/usr/include"
    for folder in (include, "/usr/include", "/usr/local/include"):
        if os.path.exists(os.path.join(folder, "libxsmm.h")):
            return [f"-I{folder}"], DEFAULT_LIBS
    return None


def build(folder, real, cflags, libs):
    """The harness for one element type; its path."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    out = os.path.join(folder, f"libxsmm_products_{real}")
    # -O3 as setup.py builds the kernels: their register tiles need GCC's full unrolling
    command = [*cc.split(), "-O3", f"-DREAL={real}", f"-I{KERNELS_DIR}", *cflags, str(SOURCE),
               "-o", out, *libs]
    subprocess.run(command, check=True)
    return out


def run(binary, args, target=None):
    """One run of the harness: ``(fastmlp, theirs, copies, arch)``: ``{isa: (us, gflops,
    diff)}`` for fastmlp's kernels, the same triple for libxsmm (None where it has no
    kernel), the microseconds of its copies, and the code it ran (``LIBXSMM_TARGET``)."""
    env = dict(os.environ)
    env.pop("LIBXSMM_TARGET", None)
    if target:
        env["LIBXSMM_TARGET"] = target
    out = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, check=True,
                         env=env).stdout
    fastmlp, theirs, copies, arch = {}, None, None, "?"
    for line in out.splitlines():
        if line.startswith("# libxsmm"):
            arch = line.rsplit("target", 1)[-1].strip()
        elif line.startswith("#"):
            print(line)
        else:
            name, *values = line.split()
            if name == "fastmlp":
                fastmlp[int(values[0])] = tuple(map(float, values[1:]))
            elif name == "libxsmm":
                theirs = tuple(map(float, values))
            else:
                copies = float(values[0])
    return fastmlp, theirs, copies, arch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2580, help="rows of X")
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--shapes", nargs="+", default=["30x64", "30x128", "30x256", "256x64"],
                        help="batch x slice width (hidden units on one thread): 30x64 is the "
                             "seed's shape on two threads, 30x128 on one, 30x256 H=512 on two")
    parser.add_argument("--rounds", type=int, default=15, help="epochs per contender, taking turns")
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float32", "float64"])
    args = parser.parse_args(argv)

    isa = kernels.small_gemm_isa()
    if isa == 0:
        print("This CPU has neither AVX2 nor AVX-512: fastmlp's kernels do not run here.")
        return 0
    flags = libxsmm_flags()
    if flags is None:
        print("libxsmm not found (its header libxsmm.h): install it (Debian/Ubuntu: "
              "apt install libxsmm-dev) or build it from source, then run this again.")
        return 0
    for line in benchmark.machine_description():
        print(f"# {line}")
    isas = list(range(isa, 0, -1))        # fastmlp's kernels this CPU runs: AVX-512, AVX2
    targets = [None] + (["hsw"] if isa == 2 else [])
    print(f"# N={args.n} D={args.features}; median of {args.rounds} epochs each, one thread")
    print("dtype    batch  width  contender            us/step  GFLOP/s  x fastmlp  copies us  diff")
    with tempfile.TemporaryDirectory() as folder:
        for dtype in args.dtypes:
            binary = build(folder, "double" if dtype == "float64" else "float", *flags)
            for shape in args.shapes:
                batch, width = (int(v) for v in shape.lower().split("x"))
                lead = f"{dtype:8s} {batch:5d}  {width:5d}"
                for target in targets:
                    fastmlp, theirs, copies, arch = run(
                        binary, [args.n, args.features, batch, width, args.rounds, *isas], target)
                    if theirs is None:
                        print(f"{lead}  libxsmm has no kernel for this shape")
                        continue
                    if target is None:      # fastmlp's kernels: printed with the first run
                        for i, (us, gflops, _) in fastmlp.items():
                            print(f"{lead}  {'fastmlp ' + kernels.ISA_NAMES[i]:18s} {us:9.1f}  {gflops:7.1f}")
                    # libxsmm's code for this CPU against fastmlp's best, its AVX2 code against AVX2
                    mine = isa if target is None else 1
                    us, gflops, diff = theirs
                    print(f"{lead}  {'libxsmm (' + arch + ')':18s} {us:9.1f}  {gflops:7.1f}  "
                          f"{us / fastmlp[mine][0]:9.2f}  {copies:9.1f}  {diff:.1e}")
                    if target is not None:
                        print(f"{'':8s} {'':5s}  {'':5s}  (fastmlp {kernels.ISA_NAMES[mine]} in that run: "
                              f"{fastmlp[mine][0]:.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
