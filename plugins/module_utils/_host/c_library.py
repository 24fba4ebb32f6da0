# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""A C library's handle in the module's process, through ctypes: opened once, kept for the run."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes


class LibraryHandle:
    """``library`` is a ctypes library (or a fake with the same functions); ``get_errno`` reads what a call set.

    Subclasses say how the handle is opened and closed (``_open_call``, ``_close_call``) and which error a failed
    open raises (``_open_failed``).
    """

    _open_call = None       # (function name, arguments)
    _close_call = None      # function name

    def __init__(self, library, get_errno=ctypes.get_errno):
        self._library = library
        self._get_errno = get_errno
        self._handle = None

    def _open_failed(self, error_number):
        raise NotImplementedError

    def open(self):
        if self._handle is None:
            name, arguments = self._open_call
            handle = getattr(self._library, name)(*arguments)
            if not handle:
                raise self._open_failed(self._get_errno())
            self._handle = handle

    def close(self):
        if self._handle is not None:
            getattr(self._library, self._close_call)(self._handle)
            self._handle = None
