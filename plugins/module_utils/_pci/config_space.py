# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""A PCI function's config space as sysfs gives it (its ``config`` file), read for what the collection decides.

``ConfigSpace.read`` takes the header type (multi-function), the PCI Express device or port type,
the ACS capability and control words (``isolation``), and the function-level resets the function
offers (``inventory``, for kernels without ``reset_method``), with one ``pread`` of the first
256 bytes and a few more along the extended capabilities. An unprivileged reader gets only the
first 64 bytes: the function then reads as conventional PCI, without ACS or resets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct

ACS_SV = 0x01   # source validation
ACS_RR = 0x04   # P2P request redirect
ACS_CR = 0x08   # P2P completion redirect
ACS_UF = 0x10   # upstream forwarding
ACS_EC = 0x20   # P2P egress control
REQUIRED_ACS = ACS_SV | ACS_RR | ACS_CR | ACS_UF

# PCI Express capability, device/port type (PCI_EXP_FLAGS_TYPE)
PCIE_ENDPOINT = 0x0
PCIE_LEGACY_ENDPOINT = 0x1
PCIE_RC_ENDPOINT = 0x9
PCIE_RC_EVENT_COLLECTOR = 0xa
PCIE_ROOT_PORT = 0x4
PCIE_UPSTREAM = 0x5
PCIE_DOWNSTREAM = 0x6
PCIE_TO_PCI_BRIDGE = 0x7
PCI_TO_PCIE_BRIDGE = 0x8
_CAP_PCIE = 0x10
_CAP_PM = 0x01
_CAP_AF = 0x13
_DEVCAP_FLR = 0x10000000
_PMCSR_NO_SOFT_RESET = 0x0008
_EXT_CAP_ACS = 0x000d
_STATUS_CAP_LIST = 0x10


class ConfigSpace:
    """One function's header type, PCI Express type, ACS words and function-level resets."""

    def __init__(self, multifunction=False, pcie_type=None, acs=None, readable=True, resets=()):
        self.multifunction = multifunction   # header type bit 7
        self.pcie_type = pcie_type           # None: not a PCI Express device
        self.acs = acs                       # (capability, control) words, or None: no ACS capability
        self.readable = readable
        self.resets = list(resets)           # function-level resets the config space offers: flr, af_flr, pm

    @classmethod
    def read(cls, path):
        """Parse the sysfs ``config`` file at ``path``; an unreadable one reads as conventional PCI without ACS."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))
        except OSError:
            return cls(readable=False)
        try:
            header = os.pread(fd, 256, 0)
            if len(header) < 64:
                return cls(readable=False)
            multifunction = bool(header[0x0e] & 0x80)
            pcie_type = None
            pcie_at = _find_capability(header, _CAP_PCIE)
            if pcie_at is not None and pcie_at + 4 <= len(header):
                pcie_type = (struct.unpack_from('<H', header, pcie_at + 2)[0] >> 4) & 0xf
            acs = None
            if pcie_type is not None:
                acs = _read_acs(fd)
            return cls(multifunction, pcie_type, acs, resets=_function_resets(header, pcie_at))
        except OSError:
            return cls(readable=False)
        finally:
            os.close(fd)

    def is_pcie(self):
        return self.pcie_type is not None

    def acs_missing(self, flags):
        """The ACS flags of ``flags`` this function does not enforce (pci_acs_flags_enabled)."""
        if self.acs is None:
            return flags
        capability, control = self.acs
        # A feature the capability does not offer is hard-wired on (but egress control).
        flags &= capability | ACS_EC
        return flags & ~control


def _find_capability(header, wanted):
    if not struct.unpack_from('<H', header, 0x06)[0] & _STATUS_CAP_LIST:
        return None
    pointer = header[0x34] & 0xfc
    seen = 0
    while pointer >= 0x40 and pointer + 2 <= len(header) and seen < 48:
        if header[pointer] == wanted:
            return pointer
        pointer = header[pointer + 1] & 0xfc
        seen += 1
    return None


def _function_resets(header, pcie_at):
    """The function-level resets Linux would probe, in its order (pcie_reset_flr, pci_af_flr, pci_pm_reset)."""
    resets = []
    if pcie_at is not None and pcie_at + 8 <= len(header) \
            and struct.unpack_from('<I', header, pcie_at + 4)[0] & _DEVCAP_FLR:
        resets.append('flr')
    af_at = _find_capability(header, _CAP_AF)
    if af_at is not None and af_at + 4 <= len(header) and header[af_at + 3] & 0x03 == 0x03:   # TP and FLR
        resets.append('af_flr')
    pm_at = _find_capability(header, _CAP_PM)
    if pm_at is not None and pm_at + 6 <= len(header) \
            and not struct.unpack_from('<H', header, pm_at + 4)[0] & _PMCSR_NO_SOFT_RESET:
        resets.append('pm')
    return resets


def _read_acs(fd):
    offset = 0x100
    seen = 0
    while offset and seen < 64:
        data = os.pread(fd, 8, offset)
        if len(data) < 8:
            return None
        header = struct.unpack_from('<I', data)[0]
        if header in (0, 0xffffffff):
            return None
        if header & 0xffff == _EXT_CAP_ACS:
            return struct.unpack_from('<HH', data, 4)
        offset = (header >> 20) & 0xffc
        if offset < 0x100:
            return None
        seen += 1
    return None
