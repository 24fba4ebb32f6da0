# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PCI config space as the kernel's sysfs ``config`` file gives it (4096 bytes for PCIe), built from a few facts.

The layout is the hardware's: header type at 0x0e, the capability list from 0x34 (a power
management capability first, then PCI Express with its device/port type), the extended
capabilities from 0x100 (AER first, then ACS with its capability and control words), so that
the collection's parser walks real chains.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

ROOT_PORT = 0x4
UPSTREAM = 0x5
DOWNSTREAM = 0x6
PCIE_TO_PCI = 0x7
ENDPOINT = 0x0
ACS_ALL = 0x1f          # source validation, translation blocking, request and completion redirect, upstream forwarding


def config_space(vendor='8086', device='100e', multifunction=False, bridge=False, pcie_type=None,
                 acs=None, flr=False, no_soft_reset=False):
    """``pcie_type``: None for conventional PCI; ``acs``: None (no ACS capability) or (capability, control).

    ``flr``: function level reset in the PCIe device capabilities; ``no_soft_reset``: the power
    management capability says D3hot to D0 does not reset the function.
    """
    data = bytearray(4096 if pcie_type is not None else 256)
    struct.pack_into('<HH', data, 0, int(vendor, 16), int(device, 16))
    struct.pack_into('<H', data, 0x06, 0x0010)                       # status: capability list
    data[0x0e] = (0x01 if bridge else 0x00) | (0x80 if multifunction else 0x00)
    data[0x34] = 0x40
    data[0x40], data[0x41] = 0x01, 0x60 if pcie_type is not None else 0x00    # power management
    struct.pack_into('<H', data, 0x44, 0x0008 if no_soft_reset else 0x0000)    # PMCSR
    if pcie_type is not None:
        data[0x60], data[0x61] = 0x10, 0x00
        struct.pack_into('<H', data, 0x62, 0x0002 | (pcie_type << 4))
        struct.pack_into('<I', data, 0x64, 0x10000000 if flr else 0)              # device capabilities
        next_ext = 0x140 if acs is not None else 0
        struct.pack_into('<I', data, 0x100, 0x0001 | (1 << 16) | (next_ext << 20))   # AER
        if acs is not None:
            struct.pack_into('<IHH', data, 0x140, 0x000d | (1 << 16), acs[0], acs[1])
    return bytes(data)
