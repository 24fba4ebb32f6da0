# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""xenstore from the module's own process: libxenstore through ctypes, as xenstore-ls, -write and -rm use it.

``xenstore-ls -f PATH`` walks the tree below PATH with one ``xs_directory`` and one ``xs_read`` per
node; ``xenstore-write`` and ``xenstore-rm`` each make one ``xs_write`` or ``xs_rm`` per path, in a
transaction of their own. Done here the walk and the writes are the same requests to xenstored,
without a process per command (about 0.1 s each on the emulated rig). libxenstore connects to
xenstored's socket, or to ``/dev/xen/xenbus`` where xenstored runs elsewhere, as the commands do.
Its soname, ``libxenstore.so.4``, has not changed since Xen 4.2.

Only a connection to xenstored's socket is kept: where the socket does not answer, libxenstore
opens the xenbus device instead, whose requests wait for as long as xenstored is down, with no
time limit; the commands, which the collection runs with one, are used then.

What the library returns is allocated with ``malloc``; it is freed with the ``free`` found through
the library's handle (its C library).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.c_library import LibraryHandle

SONAME = 'libxenstore.so.4'
XBT_NULL = 0
# A transaction xenstored could not commit because another one changed the same nodes: try it again.
_TRANSACTION_ATTEMPTS = 5


class XenStoreError(Exception):
    """A libxenstore call failed; ``errno`` is what it set."""

    def __init__(self, call, path, error_number):
        self.errno = error_number
        super(XenStoreError, self).__init__('%s %s: %s' % (call, path, os.strerror(error_number) if error_number else 'failed'))


def _open_library(name):
    return ctypes.CDLL(name, use_errno=True)


def load_xenstore(opener=None):
    """(XenStore, None) with its connection open, or (None, why libxenstore cannot be used)."""
    try:
        library = (opener or _open_library)(SONAME)
        library.xs_open.restype = ctypes.c_void_p
        library.xs_open.argtypes = [ctypes.c_ulong]
        library.xs_close.restype = None
        library.xs_close.argtypes = [ctypes.c_void_p]
        library.xs_directory.restype = ctypes.POINTER(ctypes.c_char_p)
        library.xs_directory.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint)]
        library.xs_read.restype = ctypes.c_void_p
        library.xs_read.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint)]
        library.xs_write.restype = ctypes.c_bool
        library.xs_write.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        library.xs_rm.restype = ctypes.c_bool
        library.xs_rm.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p]
        library.xs_transaction_start.restype = ctypes.c_uint32
        library.xs_transaction_start.argtypes = [ctypes.c_void_p]
        library.xs_transaction_end.restype = ctypes.c_bool
        library.xs_transaction_end.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_bool]
        library.free.restype = None
        library.free.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError) as exc:
        return None, '%s cannot be used: %s' % (SONAME, exc)
    store = XenStore(library)
    before = _open_descriptors()
    try:
        store.open()
    except XenStoreError as exc:
        return None, 'libxenstore: %s' % exc
    opened = sorted(target for fd, target in _open_descriptors().items() if before.get(fd) != target)
    if [target for target in opened if not target.startswith('socket:')]:
        store.close()
        return None, ("libxenstore: xenstored's socket did not answer and the xenbus device (%s) would wait for it "
                      "without a time limit" % ', '.join(opened))
    return store, None


def _open_descriptors():
    """{descriptor: what it is open on} for this process (the listing's own descriptor is gone by then)."""
    found = {}
    try:
        names = os.listdir('/proc/self/fd')
    except OSError:
        return found
    for name in names:
        try:
            found[name] = os.readlink('/proc/self/fd/' + name)
        except OSError:
            pass
    return found


def _is_null(pointer):
    return pointer is None or not ctypes.cast(pointer, ctypes.c_void_p).value


class XenStore(LibraryHandle):
    """One connection to xenstored through libxenstore."""

    _open_call = ('xs_open', (0,))
    _close_call = 'xs_close'

    def _open_failed(self, error_number):
        return XenStoreError('xs_open', '', error_number)

    def _missing(self, pointer, call, path):
        """True when ``call`` returned NULL because ``path`` does not exist; XenStoreError for any other NULL."""
        if not _is_null(pointer):
            return False
        number = self._get_errno()
        if number == errno.ENOENT:
            return True
        raise XenStoreError(call, path, number)

    def directory(self, path, transaction=XBT_NULL):
        """The names of ``path``'s children, or None when ``path`` does not exist."""
        count = ctypes.c_uint(0)
        names = self._library.xs_directory(self._handle, transaction, path.encode('utf-8'), ctypes.byref(count))
        if self._missing(names, 'xs_directory', path):
            return None
        try:
            return [names[index].decode('utf-8', 'replace') for index in range(count.value)]
        finally:
            self._library.free(names)

    def read(self, path, transaction=XBT_NULL):
        """``path``'s value, or None when it does not exist."""
        length = ctypes.c_uint(0)
        value = self._library.xs_read(self._handle, transaction, path.encode('utf-8'), ctypes.byref(length))
        if self._missing(value, 'xs_read', path):
            return None
        try:
            return ctypes.string_at(value, length.value).decode('utf-8', 'replace')
        finally:
            self._library.free(value)

    def tree(self, path):
        """{full path: value} of every node below ``path`` (not ``path`` itself), as ``xenstore-ls -f`` lists them;
        {} when ``path`` does not exist. A node removed while the walk runs is left out."""
        found = {}
        pending = [path.rstrip('/')]
        while pending:
            parent = pending.pop()
            for name in self.directory(parent) or []:
                child = '%s/%s' % (parent, name)
                value = self.read(child)
                if value is not None:
                    found[child] = value
                    pending.append(child)
        return found

    def change(self, writes=(), removals=()):
        """Write {path: value} and remove ``removals`` (a path that is not there is passed over, as xenstore-rm
        does) in one transaction, tried again while xenstored reports a conflict (EAGAIN)."""
        for _attempt in range(_TRANSACTION_ATTEMPTS):
            transaction = self._library.xs_transaction_start(self._handle)
            if not transaction:
                raise XenStoreError('xs_transaction_start', '', self._get_errno())
            try:
                for path, value in writes:
                    data = value.encode('utf-8')
                    if not self._library.xs_write(self._handle, transaction, path.encode('utf-8'), data, len(data)):
                        raise XenStoreError('xs_write', path, self._get_errno())
                for path in removals:
                    if not self._library.xs_rm(self._handle, transaction, path.encode('utf-8')):
                        number = self._get_errno()
                        if number != errno.ENOENT:
                            raise XenStoreError('xs_rm', path, number)
            except XenStoreError:
                self._library.xs_transaction_end(self._handle, transaction, True)
                raise
            if self._library.xs_transaction_end(self._handle, transaction, False):
                return
            number = self._get_errno()
            if number != errno.EAGAIN:
                raise XenStoreError('xs_transaction_end', '', number)
        raise XenStoreError('xs_transaction_end', '', errno.EAGAIN)
