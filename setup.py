"""Build the Cython extensions of fastmlp.

Environment switches (all off by default):
  FASTMLP_DEBUG=1   compile with bounds and wraparound checks on (for a debug test run)
  FASTMLP_NATIVE=1  add -march=native (fast on this CPU, crashes on older ones: never for wheels)
  FASTMLP_OPENMP=0  build without OpenMP (one thread per fit; on by default with GCC/Clang on Linux)
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("FASTMLP_DEBUG") == "1"
compile_args = ["-O3"]
link_args = []
if os.environ.get("FASTMLP_NATIVE") == "1":
    compile_args.append("-march=native")
if os.environ.get("FASTMLP_OPENMP", "1" if sys.platform.startswith("linux") else "0") == "1":
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

extensions = [
    Extension(f"fastmlp.{name}", [f"src_c/{name}.pyx"], include_dirs=["src_c"],
              extra_compile_args=compile_args, extra_link_args=link_args)
    for name in ("kernels", "_sgd")
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src_c"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
        },
    ),
)
