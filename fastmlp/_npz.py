"""Reading ``.npz`` archives without trusting them.

``numpy.load`` reads a member's array as soon as it is asked for, allocating what
its header declares, and lets the zip and ``.npy`` parsers' own exceptions
(``NotImplementedError``, ``RuntimeError``, ``AttributeError``, ...) escape on a
damaged file. :class:`NpzArchive` instead checks every member's name, its
``.npy`` header (shape, dtype, never an object array) and its declared size
against the archive before reading a byte of data, then lets
``numpy.lib.format.read_array`` read it with ``allow_pickle=False``, and turns
every sign of damage into a ``ValueError`` that names the file.

Memory stays bounded by the file: a stored member must be as large as it
claims, and a compressed one may claim at most ``_MAX_RATIO`` times its
compressed size (deflate cannot expand data more than 1032-fold).
"""

import lzma
import math
import os
import struct
import zipfile
import zlib

import numpy as np

from ._files import check_regular_file

_MAX_RATIO = 1100
_NPY_MAGIC = b"\x93NUMPY"
# What the zip, decompression and .npy header parsers raise on damaged bytes.
# (RuntimeError covers encrypted members and RecursionError.)
_DAMAGE = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError,
           NotImplementedError, RuntimeError, struct.error, OverflowError, UnicodeError,
           SyntaxError, KeyError, IndexError, TypeError, AttributeError)


class NpzArchive:
    """An ``.npz`` archive opened for checked reading; use it as a context manager.

    Parameters
    ----------
    path : str
        The file; it must be a regular file.
    what : str
        What the file is, for messages (``"model file"``, ``"npz file"``).
    kind : str
        What a good file is (``"an .npz archive"``): a damaged one "is not" that.
    fix : str
        How to make a good file, appended to messages about damage.

    Attributes
    ----------
    names : list of str
        The arrays the archive holds (member names without ``.npy``).
    """

    def __init__(self, path, what, kind, fix):
        check_regular_file(path, what)
        self.path, self.what, self.kind, self.fix = path, what, kind, fix
        self._file = open(path, "rb")
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self):
        head = self._file.read(len(_NPY_MAGIC))
        if not head:
            raise self.damaged("it is empty")
        if head == _NPY_MAGIC:
            raise self.damaged("it is a single-array .npy file")
        self._file.seek(0)
        self._size = os.fstat(self._file.fileno()).st_size
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except _DAMAGE as exc:
            raise self.damaged(f"it is not a zip archive ({type(exc).__name__}: {exc})") from None
        self._members = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name in self._members:
                raise self.damaged(f"it holds two members named {info.filename!r}")
            self._members[name] = info
        self.names = list(self._members)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._file.close()

    def damaged(self, what):
        """A ValueError saying the file is not what it should be, and ``what`` is wrong."""
        return ValueError(f"{self.what} {self.path!r} is not {self.kind}: {what}; {self.fix}")

    def read(self, name, check=None):
        """The array ``name``, after ``check(shape, dtype)`` has accepted its header.

        ``check`` returns None to accept the array, or a message saying what is
        wrong with it, which is raised as a ValueError naming the file before
        anything is allocated for the array. The member must hold exactly the
        bytes its header describes; then ``numpy.lib.format.read_array`` reads it
        with ``allow_pickle=False``, and its CRC is verified.
        """
        info = self._members[name]
        self._check_declared_size(info)
        try:
            with self._zip.open(info) as member:
                shape, dtype = self._header(member, name)
                problem = None if check is None else check(shape, dtype)
                if problem is not None:
                    raise _Refused(f"{self.what} {self.path!r}: {problem}")
                n_bytes = math.prod(shape) * dtype.itemsize
                if info.file_size != member.tell() + n_bytes:
                    raise _Refused(self.damaged(
                        f"array {name!r} declares shape {shape} of {dtype} ({n_bytes} bytes) but "
                        f"its member holds {info.file_size - member.tell()} bytes of data"))
            # Checked: now numpy reads it (never unpickling), and the CRC is verified at the end.
            with self._zip.open(info) as member:
                data = np.lib.format.read_array(member, allow_pickle=False)
                if member.read(1):
                    raise _Refused(self.damaged(f"array {name!r} has bytes after its data"))
        except _Refused as refusal:
            raise ValueError(str(refusal)) from None
        except _DAMAGE as exc:
            raise self.damaged(f"array {name!r} cannot be read ({type(exc).__name__}: {exc})") from None
        return data

    def _check_declared_size(self, info):
        """Refuse a member whose declared sizes the archive cannot hold: the source of
        huge allocations from small files."""
        stored = info.compress_type == zipfile.ZIP_STORED
        if (info.compress_size > self._size
                or (stored and info.file_size != info.compress_size)
                or info.file_size > _MAX_RATIO * info.compress_size + 4096):
            raise self.damaged(f"member {info.filename!r} declares {info.file_size} bytes "
                               f"({info.compress_size} compressed) in a file of {self._size} bytes")

    def _header(self, member, name):
        """``(shape, dtype)`` from the ``.npy`` header of ``member``."""
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise _Refused(self.damaged(f"array {name!r} has .npy format version {version}, "
                                        f"expected 1.0 or 2.0"))
        if dtype.hasobject:
            raise _Refused(f"{self.what} {self.path!r}: array {name!r} is an object array, which is "
                           f"refused (loading it would unpickle, which can run code); {self.fix}")
        return tuple(shape), dtype


class _Refused(Exception):
    """A checked refusal inside :meth:`NpzArchive.read`, kept apart from the parsers' errors."""
