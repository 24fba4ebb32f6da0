# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""libxenctrl as ctypes shows it to the collection, acting on a FakeXen's hypervisor state.

``FakeLibxenctrl(xen)`` has the ``xc_*`` functions the collection calls, each a callable whose
``argtypes``/``restype`` can be set as on a ctypes function. They follow Xen 4.17
(xen/drivers/passthrough/pci.c, iommu.c; xen/common/sysctl.c): ``xc_assign_device`` to DOMID_IO
quarantines a device that dom0 or the quarantine holds (EBUSY when a guest has it, ENODEV for a
device Xen does not know, EOPNOTSUPP without an IOMMU), ``xc_deassign_device`` from DOMID_IO
gives a quarantined device back to dom0 (ENODEV otherwise), ``xc_physinfo`` fills
``capabilities``. A failure returns -1 and sets errno where ``ctypes.get_errno`` reads it, as a
library loaded with ``use_errno=True`` does. It is loaded under its Xen's soname only
(``libxenctrl.so.4.17`` for Xen 4.17).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import struct

from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import DOMID_IO

_HANDLE = 0x5ca1ab1e
_HVM, _PV, _DIRECTIO, _HAP, _SHADOW, _IOMMU_HAP_PT_SHARE, _VPMU, _GNTTAB_V1 = (
    1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 7, 1 << 8)


class CFunction:
    """A ctypes function's face: callable, with argtypes and restype to set."""

    def __init__(self, call):
        self._call = call
        self.argtypes = None
        self.restype = ctypes.c_int

    def __call__(self, *args):
        return self._call(*args)


def _address(sbdf):
    return '%04x:%02x:%02x.%x' % (sbdf >> 16, (sbdf >> 8) & 0xff, (sbdf >> 3) & 0x1f, sbdf & 0x7)


class FakeLibxenctrl:
    def __init__(self, xen):
        self.xen = xen
        self.calls = []                   # (function name, arguments after the handle)
        self.open_handles = 0
        self.fail = {}                    # function name -> errno it fails with, once
        for name in ('xc_interface_open', 'xc_interface_close', 'xc_physinfo', 'xc_assign_device',
                     'xc_deassign_device'):
            setattr(self, name, CFunction(getattr(self, '_' + name)))

    def _failed(self, name):
        number = self.fail.pop(name, None)
        if number is not None:
            ctypes.set_errno(number)
        return number is not None

    @staticmethod
    def _error(number):
        ctypes.set_errno(number)
        return -1

    def _check_handle(self, handle):
        assert handle == _HANDLE and self.open_handles, 'a libxenctrl call without an open handle'

    def _xc_interface_open(self, logger, dombuild_logger, flags):
        self.calls.append(('xc_interface_open', (logger, dombuild_logger, flags)))
        if self._failed('xc_interface_open'):
            return None                   # NULL: privcmd could not be opened
        self.open_handles += 1
        return _HANDLE

    def _xc_interface_close(self, handle):
        self._check_handle(handle)
        self.open_handles -= 1
        return 0

    def _xc_physinfo(self, handle, buffer):
        self._check_handle(handle)
        self.calls.append(('xc_physinfo', ()))
        if self._failed('xc_physinfo'):
            return -1
        if self.xen.kernel.arch == 'x86_64':
            caps = _PV | _HVM | _HAP | _SHADOW | (_DIRECTIO if self.xen.directio else 0)
        else:
            caps = _HVM | _HAP | _VPMU | _GNTTAB_V1 | ((_DIRECTIO | _IOMMU_HAP_PT_SHARE) if self.xen.directio else 0)
        struct.pack_into('=I', buffer, 28, caps)
        return 0

    def _xc_assign_device(self, handle, domid, sbdf, flags):
        self._check_handle(handle)
        address = _address(sbdf)
        self.calls.append(('xc_assign_device', (domid, address, flags)))
        if self._failed('xc_assign_device'):
            return -1
        if not self.xen.directio:
            return self._error(errno.EOPNOTSUPP)          # iommu_do_domctl: no IOMMU
        if not self.xen.can_quarantine or domid != DOMID_IO:
            return self._error(errno.ENODEV)              # Arm without PCI support: only device-tree devices
        if not self.xen.kernel.exists(address):
            return self._error(errno.ENODEV)
        if self.xen.owner.get(address, DOMID_IO) != DOMID_IO:
            return self._error(errno.EBUSY)               # device_assigned: a guest has it
        self.xen.owner[address] = DOMID_IO
        return 0

    def _xc_deassign_device(self, handle, domid, sbdf):
        self._check_handle(handle)
        address = _address(sbdf)
        self.calls.append(('xc_deassign_device', (domid, address)))
        if self._failed('xc_deassign_device'):
            return -1
        if domid != DOMID_IO or self.xen.owner.get(address) != DOMID_IO:
            return self._error(errno.ENODEV)              # deassign_device: not owned by that domain
        del self.xen.owner[address]
        return 0

    def opener(self, name):
        """What ctypes.CDLL does for this library: it loads under its soname, nothing else."""
        if name != 'libxenctrl.so.%d.%d' % self.xen.kernel.xen_version:
            raise OSError('%s: cannot open shared object file: No such file or directory' % name)
        return self
