# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A bytecode cache for Python modules imported from zip archives, installed in the rig's image only.

Ansible runs every module task from a zip payload (AnsiballZ), and Python's zipimport keeps no bytecode: each task
compiles ``ansible.module_utils.basic``, everything it imports and the collection's module_utils from source again.
On the emulated dom0 that is about 2 s of every task (about 3 s of an ``ansible -m ping`` that takes 10 s). With
this cache the compiled code of a source file is kept under ``CACHE_DIR``, keyed by the interpreter's bytecode magic
number and the file's bytes, so that a changed file is compiled afresh; what runs is the same code.

build-image installs this file in the image's site-packages with a ``.pth`` line that imports it (so every python3
of dom0 has it, as soon as the interpreter starts) and ``RIG_ZIP_BYTECODE_CACHE=0`` in dom0's environment turns it
off. Nothing here is part of the collection: a host of the collection's users compiles as Python always does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import marshal
import os
import stat
import zipimport

import _imp

CACHE_DIR = '/var/cache/xenpci-rig/zip-bytecode'


def cache_path(source, cache_dir=None):
    """The cache file for ``source`` (bytes) under this interpreter's bytecode."""
    import hashlib
    from importlib.util import MAGIC_NUMBER
    return os.path.join(cache_dir or CACHE_DIR, hashlib.sha256(MAGIC_NUMBER + source).hexdigest())


def _store(path, code):
    """Write ``code`` to ``path`` atomically (a file of this process's own, then renamed); a failure is no error."""
    directory = os.path.dirname(path)
    temporary = '%s.%d.tmp' % (path, os.getpid())
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, 'wb') as handle:
            marshal.dump(code, handle)
        os.replace(temporary, path)
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass


def _trusted(directory):
    """The cache directory is used only when it is this user's own and nobody else can write to it."""
    try:
        status = os.lstat(directory)
    except OSError:
        return True                                 # not there yet: _store creates it, mode 0700
    return stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & 0o022


def caching(compile_source, cache_dir=None):
    """``zipimport._compile_source`` with the cache in front of ``compile_source``."""
    def compile_cached(pathname, source):
        path = cache_path(source, cache_dir)
        if not _trusted(os.path.dirname(path)):
            return compile_source(pathname, source)
        try:
            with open(path, 'rb', opener=lambda name, flags: os.open(name, flags | os.O_NOFOLLOW)) as handle:
                code = marshal.load(handle)
        except (OSError, EOFError, ValueError, TypeError):
            code = compile_source(pathname, source)
            if code is not None:
                _store(path, code)
            return code
        # The same bytes at another path (each payload is a new temporary file): tracebacks name this one.
        _imp._fix_co_filename(code, pathname)
        return code
    compile_cached.uncached = compile_source
    return compile_cached


def install():
    """Put the cache in front of zipimport's compiler, once; not when RIG_ZIP_BYTECODE_CACHE=0."""
    if os.environ.get('RIG_ZIP_BYTECODE_CACHE', '1') == '0':
        return
    if not hasattr(zipimport._compile_source, 'uncached'):
        zipimport._compile_source = caching(zipimport._compile_source)
