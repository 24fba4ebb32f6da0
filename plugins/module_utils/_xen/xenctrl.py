# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Xen's quarantine from the module's own process: libxenctrl through ctypes, as libxl calls it.

``xl pci-assignable-add`` on a device that pciback already holds does one thing in Xen
(``libxl__device_pci_assignable_add`` in tools/libs/light/libxl_pci.c): it assigns the device to
Xen's quarantine domain, ``xc_assign_device(xch, DOMID_IO, sbdf, XEN_DOMCTL_DEV_RDM_RELAXED)``
("DOMID_IO is just a sentinel domain, without any actual mappings", so reserved memory regions
must not deny it). ``xl pci-assignable-remove`` undoes it with ``xc_deassign_device(xch, DOMID_IO,
sbdf)`` before its sysfs work. Both drop libxl's ``name`` record of the device as well (the
toolstack does that part, in xenstore). Done here, that is one hypercall per device instead of one
``xl`` process, and ``xl info``'s ``virt_caps`` come from ``xc_physinfo`` the same way.

Xen's own Python binding (``xen.lowlevel.xc``) is not used: it sits outside ``sys.path``, loads only
into the Python it was built for, and its ``assign_device`` passes strict RDM flags, which is not
what libxl does. libxenctrl's soname carries Xen's version (``libxenctrl.so.4.17``), and the
three calls used here have kept their signatures since Xen 4.6.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import struct

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.c_library import LibraryHandle

DOMID_IO = 0x7FF1                  # xen/include/public/xen.h
XEN_DOMCTL_DEV_RDM_RELAXED = 1     # xen/include/public/domctl.h
# struct xen_sysctl_physinfo: seven uint32_t (threads_per_core ... cpu_khz), then ``capabilities``.
PHYSINFO_CAPABILITIES_OFFSET = 28
# Room for the whole struct of any Xen version: xc_physinfo copies the library's own sizeof into it.
PHYSINFO_BUFFER_SIZE = 1024
PHYSCAP_HVM = 1 << 0
PHYSCAP_PV = 1 << 1
PHYSCAP_DIRECTIO = 1 << 2
# The names ``xl info`` prints in virt_caps (tools/xl/xl_info.c), bit by bit (XEN_SYSCTL_PHYSCAP_*).
_CAP_NAMES = ((1 << 3, 'hap'), (1 << 4, 'shadow'), (1 << 5, 'iommu_hap_pt_share'), (1 << 6, 'vmtrace'), (1 << 7, 'vpmu'),
              (1 << 8, 'gnttab-v1'), (1 << 9, 'gnttab-v2'))


class XenControlError(Exception):
    """A libxenctrl call failed; ``errno`` is what it set."""

    def __init__(self, call, error_number):
        self.errno = error_number
        super(XenControlError, self).__init__('%s: %s' % (call, os.strerror(error_number) if error_number else 'failed'))


def encode_sbdf(address):
    """libxl's pci_encode_bdf: domain << 16 | bus << 8 | slot << 3 | function, of a PciAddress."""
    return (address.domain << 16) | ((address.bus & 0xff) << 8) | ((address.slot & 0x1f) << 3) | (address.function & 0x7)


def virt_caps_words(capabilities):
    """``xl info``'s virt_caps for XEN_SYSCTL_physinfo's ``capabilities`` (libxl sets both directio flags from one bit)."""
    words = []
    if capabilities & PHYSCAP_PV:
        words.append('pv')
    if capabilities & PHYSCAP_HVM:
        words.append('hvm')
    if capabilities & PHYSCAP_DIRECTIO:
        words.extend(word for flag, word in ((PHYSCAP_HVM, 'hvm_directio'), (PHYSCAP_PV, 'pv_directio'))
                     if capabilities & flag)
    words.extend(word for flag, word in _CAP_NAMES if capabilities & flag)
    return ' '.join(words)


def _open_library(name):
    return ctypes.CDLL(name, use_errno=True)


def load_xenctrl(xen_version, opener=None):
    """(XenControl, None) for the libxenctrl of Xen ``xen_version`` (a tuple), its handle open, or (None, why it
    cannot be used)."""
    if not xen_version:
        return None, "Xen's version is not known, so neither is libxenctrl's soname"
    name = 'libxenctrl.so.%d.%d' % tuple(xen_version[:2])
    try:
        library = (opener or _open_library)(name)
        library.xc_interface_open.restype = ctypes.c_void_p
        library.xc_interface_open.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
        library.xc_interface_close.argtypes = [ctypes.c_void_p]
        library.xc_physinfo.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        library.xc_assign_device.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32]
        library.xc_deassign_device.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32]
    except (OSError, AttributeError) as exc:
        return None, '%s cannot be used: %s' % (name, exc)
    control = XenControl(library)
    try:
        control.open()
    except XenControlError as exc:
        return None, 'libxenctrl: %s' % exc
    return control, None


class XenControl(LibraryHandle):
    """One libxenctrl handle (``/dev/xen/privcmd``), opened by ``open`` and kept for the module's run."""

    _open_call = ('xc_interface_open', (None, None, 0))
    _close_call = 'xc_interface_close'

    def _open_failed(self, error_number):
        return XenControlError('xc_interface_open', error_number)

    def _call(self, name, *args):
        self.open()
        if getattr(self._library, name)(self._handle, *args) < 0:
            raise XenControlError(name, self._get_errno())

    def virt_caps(self):
        """What ``xl info`` prints as virt_caps, from one XEN_SYSCTL_physinfo."""
        buffer = ctypes.create_string_buffer(PHYSINFO_BUFFER_SIZE)
        self._call('xc_physinfo', buffer)
        return virt_caps_words(struct.unpack_from('=I', buffer.raw, PHYSINFO_CAPABILITIES_OFFSET)[0])

    def quarantine(self, address):
        """Assign the PciAddress to DOMID_IO, as ``xl pci-assignable-add`` does once pciback holds the device."""
        self._call('xc_assign_device', DOMID_IO, encode_sbdf(address), XEN_DOMCTL_DEV_RDM_RELAXED)

    def dequarantine(self, address):
        """Take the PciAddress out of DOMID_IO (back to dom0), as ``xl pci-assignable-remove`` does first."""
        self._call('xc_deassign_device', DOMID_IO, encode_sbdf(address))
