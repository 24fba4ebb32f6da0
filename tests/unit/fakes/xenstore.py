# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""libxenstore as ctypes shows it to the collection, on a FakeXen's store (the one its xenstore-* commands use).

Each ``xs_*`` function is a callable with ``argtypes``/``restype`` to set, and behaves as libxenstore
over xenstored does (tools/libs/store/xs.c, tools/xenstored): ``xs_directory`` returns a malloc'd
array of names and sets the count through its pointer argument, ``xs_read`` a malloc'd buffer and
its length, both NULL with errno ENOENT for a path that does not exist; ``xs_write`` creates the
missing parents; ``xs_rm`` of a missing path fails with ENOENT. Every buffer handed out must come
back through ``free`` exactly once (``leaked`` lists those that did not). With ``device`` set, ``xs_open``
opens that file, as libxenstore opens the xenbus device when xenstored's socket does not answer. Transactions apply their
requests as they come and can be made to fail at the end with EAGAIN (``conflicts``), as
xenstored's do when another transaction changed the same nodes; an aborted one is rolled back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os

from ansible_collections.xenpci.passthrough.tests.unit.fakes.xenctrl import CFunction

_HANDLE = 0x5702e


class FakeLibxenstore:
    def __init__(self, xen):
        self.xen = xen
        self.calls = []                   # (function name, path or None)
        self.allocated = {}               # address -> the ctypes object behind it
        self.conflicts = 0                # transactions still to end with EAGAIN
        self.fail_open = None             # errno xs_open fails with
        self.device = None                # a path xs_open opens instead of xenstored's socket (its fallback)
        self._descriptor = None
        self.fail_paths = {}              # path -> errno a write or rm of it fails with
        self._transactions = {}           # id -> the store as it was when it started
        self._next_transaction = 1
        for name in ('xs_open', 'xs_close', 'xs_directory', 'xs_read', 'xs_write', 'xs_rm', 'xs_transaction_start',
                     'xs_transaction_end', 'free'):
            setattr(self, name, CFunction(getattr(self, '_' + name)))

    @property
    def leaked(self):
        return sorted(self.allocated)

    def opener(self, name):
        if name != 'libxenstore.so.4':
            raise OSError('%s: cannot open shared object file: No such file or directory' % name)
        return self

    def _hand_out(self, buffer):
        address = ctypes.addressof(buffer)
        self.allocated[address] = buffer
        return address

    @staticmethod
    def _null(number):
        ctypes.set_errno(number)
        return None

    def _check(self, handle, transaction=0):
        assert handle == _HANDLE, 'a libxenstore call without a connection'
        assert transaction == 0 or transaction in self._transactions, 'an unknown transaction'

    def _xs_open(self, flags):
        self.calls.append(('xs_open', None))
        if self.fail_open is not None:
            return self._null(self.fail_open)
        if self.device is not None:
            self._descriptor = os.open(self.device, os.O_RDWR)
        return _HANDLE

    def _xs_close(self, handle):
        self._check(handle)
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def _exists(self, path):
        return path in self.xen.store or any(key.startswith(path + '/') for key in self.xen.store)

    def _xs_directory(self, handle, transaction, path, count):
        self._check(handle, transaction)
        path = path.decode('utf-8').rstrip('/')
        self.calls.append(('xs_directory', path))
        if not self._exists(path):
            return self._null(errno.ENOENT)
        names = sorted(set(key[len(path) + 1:].split('/')[0] for key in self.xen.store if key.startswith(path + '/')))
        count._obj.value = len(names)
        array = (ctypes.c_char_p * (len(names) + 1))(*[name.encode('utf-8') for name in names])
        self._hand_out(array)
        return ctypes.cast(array, ctypes.POINTER(ctypes.c_char_p))

    def _xs_read(self, handle, transaction, path, length):
        self._check(handle, transaction)
        path = path.decode('utf-8')
        self.calls.append(('xs_read', path))
        if not self._exists(path):
            return self._null(errno.ENOENT)
        data = self.xen.store.get(path, '').encode('utf-8')
        length._obj.value = len(data)
        return self._hand_out(ctypes.create_string_buffer(data, len(data) + 1))

    def _change(self, name, handle, transaction, path):
        """The path of a write or removal, or None when it is to fail (errno set)."""
        self._check(handle, transaction)
        path = path.decode('utf-8')
        self.calls.append((name, path))
        if path in self.fail_paths:
            ctypes.set_errno(self.fail_paths[path])
            return None
        return path

    def _xs_write(self, handle, transaction, path, data, length):
        path = self._change('xs_write', handle, transaction, path)
        if path is None:
            return False
        self.xen.set(path, data[:length].decode('utf-8'))
        return True

    def _xs_rm(self, handle, transaction, path):
        path = self._change('xs_rm', handle, transaction, path)
        if path is None:
            return False
        if not self._exists(path):
            ctypes.set_errno(errno.ENOENT)
            return False
        for key in [key for key in self.xen.store if key == path or key.startswith(path + '/')]:
            del self.xen.store[key]
        return True

    def _xs_transaction_start(self, handle):
        self._check(handle)
        transaction = self._next_transaction
        self._next_transaction += 1
        self._transactions[transaction] = dict(self.xen.store)
        self.calls.append(('xs_transaction_start', None))
        return transaction

    def _xs_transaction_end(self, handle, transaction, abort):
        self._check(handle, transaction)
        before = self._transactions.pop(transaction)
        self.calls.append(('xs_transaction_end', 'abort' if abort else None))
        if abort or self.conflicts:
            self.xen.store.clear()
            self.xen.store.update(before)
            if not abort:
                self.conflicts -= 1
                ctypes.set_errno(errno.EAGAIN)
                return False
        return True

    def _free(self, pointer):
        address = ctypes.cast(pointer, ctypes.c_void_p).value
        assert address in self.allocated, 'free of a pointer libxenstore did not hand out'
        del self.allocated[address]
