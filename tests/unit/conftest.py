# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures: a Xen dom0 laid out in tmp_path, shaped like the QEMU test rig."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.tests.unit.fakes.config_space import ACS_ALL, ENDPOINT, config_space
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen import xenctrl, xenstore
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import FakeXen
from ansible_collections.xenpci.passthrough.tests.unit.fakes.xenctrl import FakeLibxenctrl
from ansible_collections.xenpci.passthrough.tests.unit.fakes.xenstore import FakeLibxenstore

MGMT_NIC = '0000:00:02.0'
E1000_A = '0000:00:03.0'
E1000_B = '0000:00:04.0'
XHCI = '0000:00:05.0'
MULTI_0 = '0000:00:06.0'
MULTI_1 = '0000:00:06.1'
ROOT_DISK = '0000:00:07.0'
VGA = '0000:00:01.0'
HOST_BRIDGE = '0000:00:00.0'


def build_rig_host(root, arch='x86_64', pciback_loaded=True, **kernel_options):
    """A dom0 with the rig's devices: management NIC, root disk, boot VGA and passthrough candidates."""
    kernel = FakeKernel(root, arch=arch, **kernel_options)
    kernel.add_device(HOST_BRIDGE, vendor='8086', device='29c0', class_code='060000', reset_methods=None)
    kernel.add_device(VGA, vendor='1234', device='1111', class_code='030000', driver='bochs-drm', boot_vga=True)
    kernel.add_device(MGMT_NIC, vendor='1af4', device='1000', class_code='020000', driver='virtio-pci')
    kernel.add_interface('enp0s2', MGMT_NIC)
    kernel.add_route('enp0s2', '0.0.0.0', 0)
    kernel.add_route('enp0s2', '10.0.2.0', 24)
    kernel.add_device(E1000_A, driver='e1000', net=['ens3'])
    kernel.add_device(E1000_B, driver='e1000', net=['ens4'])
    kernel.add_device(XHCI, vendor='1b36', device='000d', class_code='0c0330', driver='xhci_hcd')
    # A dual-port igb whose functions ACS isolates: each can go to a guest alone.
    for address in (MULTI_0, MULTI_1):
        kernel.add_device(address, vendor='8086', device='10c9', class_code='020000', driver='igb',
                          config=config_space('8086', '10c9', multifunction=True, pcie_type=ENDPOINT,
                                              acs=(ACS_ALL, ACS_ALL)))
    kernel.driver_ids['virtio-pci'].add(('1af4', '1001'))
    kernel.add_device(ROOT_DISK, vendor='1af4', device='1001', class_code='010000', driver='virtio-pci', block=['vda'])
    kernel.add_mount('/', 'vda')
    if pciback_loaded:
        kernel.load_pciback()
    return kernel


@pytest.fixture
def kernel(tmp_path):
    return build_rig_host(str(tmp_path))


@pytest.fixture
def xen(kernel):
    return FakeXen(kernel)


def _no_library(name):
    raise OSError('%s: cannot open shared object file: No such file or directory' % name)


@pytest.fixture(autouse=True)
def no_xen_libraries(monkeypatch):
    """By default a test's dom0 has no loadable libxenctrl nor libxenstore (the xl and xenstore-* commands), whatever
    the machine running the tests has."""
    monkeypatch.setattr(xenctrl, '_open_library', _no_library)
    monkeypatch.setattr(xenstore, '_open_library', _no_library)


@pytest.fixture
def libxenctrl(xen, monkeypatch):
    """The dom0 of ``xen`` with libxenctrl loadable: quarantine goes through it, in process."""
    library = FakeLibxenctrl(xen)
    monkeypatch.setattr(xenctrl, '_open_library', library.opener)
    return library


@pytest.fixture
def libxenstore(xen, monkeypatch):
    """The dom0 of ``xen`` with libxenstore loadable: xenstore is read and written in process."""
    library = FakeLibxenstore(xen)
    monkeypatch.setattr(xenstore, '_open_library', library.opener)
    return library
