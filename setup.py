"""Build the Cython extensions of fastmlp.

Compile flags are chosen by the compiler's type, not by the platform's name:
GCC-like compilers (gcc, clang, Apple clang, MinGW) get ``-O3`` and POSIX threads,
MSVC gets ``/O2``. The compiled step runs its threads on POSIX threads; whether the
compiler can build and link a program that starts one is tested by compiling a tiny
program first (as scikit-learn's build probes OpenMP). Where it cannot (MSVC, a
toolchain without pthreads), or when asked to, the serial variant is built: the C
code sees the macro ``FASTMLP_NO_THREADS``, and a one-line notice says so.

Environment switches:
  FASTMLP_THREADS=0  build the serial variant (one thread per fit)
  FASTMLP_DEBUG=1    compile with Cython's bounds and wraparound checks on (for a debug test run)
  FASTMLP_NATIVE=1   add -march=native (fast on the build machine, may crash on other CPUs:
                     never for wheels)
"""
import os
import sys
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PTHREAD_PROBE = r"""
#include <pthread.h>
static void *twice(void *arg) { *(int *)arg *= 2; return NULL; }
int main(void) {
    int value = 21;
    pthread_t thread;
    if (pthread_create(&thread, NULL, twice, &value) != 0) return 1;
    if (pthread_join(thread, NULL) != 0) return 1;
    return value == 42 ? 0 : 1;
}
"""


def notice(message):
    print(f"fastmlp build: {message}", file=sys.stderr)


def compiles_with_pthreads(compiler, flags):
    """Whether ``compiler`` compiles and links a program that starts a POSIX thread.

    The program is only built, not run, so the check holds when cross-compiling.
    """
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "pthread_probe.c")
        with open(source, "w") as f:
            f.write(PTHREAD_PROBE)
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objects, "pthread_probe", output_dir=tmp, extra_postargs=flags)
        except Exception as exc:  # distutils' CompileError or LinkError (of which there are two copies)
            if type(exc).__name__ not in ("CompileError", "LinkError"):
                raise
            return False
    return True


class BuildExt(build_ext):
    """``build_ext`` that sets each extension's flags from the compiler it is given."""

    def build_extensions(self):
        kind = self.compiler.compiler_type   # "unix" (gcc/clang), "mingw32", "cygwin", "msvc"
        gcc_like = kind in ("unix", "mingw32", "cygwin")
        # -g0: no debug information (it would be 80% of the wheel), except in a debug build
        compile_args = (["-O3"] + ([] if debug else ["-g0"])) if gcc_like else ["/O2"]
        link_args, macros = [], []

        if os.environ.get("FASTMLP_NATIVE") == "1":
            if gcc_like:
                compile_args.append("-march=native")
            else:
                notice(f"FASTMLP_NATIVE=1 is ignored with the {kind} compiler")

        if os.environ.get("FASTMLP_THREADS", "1") == "0":
            notice("FASTMLP_THREADS=0: building the serial step (one thread per fit)")
            threads = False
        elif not gcc_like:
            notice(f"no POSIX threads with the {kind} compiler: building the serial step "
                   f"(one thread per fit)")
            threads = False
        else:
            threads = compiles_with_pthreads(self.compiler, ["-pthread"])
            if threads:
                compile_args.append("-pthread")
                link_args.append("-pthread")
            else:
                notice("the compiler cannot build a POSIX-threads program: building the serial "
                       "step (one thread per fit)")
        if not threads:
            macros.append(("FASTMLP_NO_THREADS", "1"))
        self.force_if_variant_changed(compile_args + link_args + [f"{k}={v}" for k, v in macros])

        for ext in self.extensions:
            ext.extra_compile_args = compile_args + list(ext.extra_compile_args)
            ext.extra_link_args = link_args + list(ext.extra_link_args)
            ext.define_macros = macros + list(ext.define_macros)
        super().build_extensions()

    def force_if_variant_changed(self, flags):
        """Rebuild everything when the flags differ from the last build's in ``build_temp``.

        build_ext skips an extension whose output is newer than its sources, so
        without this a serial build after a threaded one (or the reverse) would keep
        the old objects.
        """
        stamp = os.path.join(self.build_temp, "fastmlp-flags.txt")
        wanted = " ".join(flags)
        try:
            with open(stamp) as f:
                same = f.read() == wanted
        except OSError:
            same = False
        if not same:
            self.force = True
            os.makedirs(self.build_temp, exist_ok=True)
            with open(stamp, "w") as f:
                f.write(wanted)


debug = os.environ.get("FASTMLP_DEBUG") == "1"
extensions = [Extension(f"fastmlp.{name}", [f"src_c/{name}.pyx"], include_dirs=["src_c"])
              for name in ("kernels", "_sgd")]

setup(
    cmdclass={"build_ext": BuildExt},
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
