# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import (
    controller_address,
    find_host_needs,
    interface_owners,
    iommu_groups,
    read_devices,
    route_interface,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PciSysfs
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, MGMT_NIC, ROOT_DISK, XHCI


def test_ids_come_from_modalias_or_from_the_separate_files(kernel):
    os.unlink(os.path.join(kernel.paths.pci_devices, XHCI, 'modalias'))
    devices = read_devices(PciSysfs(kernel.paths))
    assert (devices[E1000_A]['vendor_id'], devices[E1000_A]['device_id'], devices[E1000_A]['class']) == ('8086', '100e', '020000')
    assert (devices[XHCI]['vendor_id'], devices[XHCI]['device_id'], devices[XHCI]['class']) == ('1b36', '000d', '0c0330')


def test_a_bridge_port_carries_the_default_route_of_the_bridge(kernel):
    kernel.add_interface('xenbr0', lower=['ens3'])
    kernel.add_route('xenbr0', '0.0.0.0', 0)
    assert interface_owners(kernel.paths)['xenbr0'] == [E1000_A]
    needs = find_host_needs(kernel.paths, read_devices(PciSysfs(kernel.paths)))
    assert needs[E1000_A] == ['carries the default route (xenbr0)']
    assert E1000_B not in needs


def test_the_controller_route_is_the_longest_prefix(kernel):
    kernel.add_route('ens4', '192.168.50.0', 24)
    kernel.add_route('ens3', '192.168.0.0', 16)
    assert route_interface(kernel.paths, '192.168.50.9') == 'ens4'
    assert route_interface(kernel.paths, '192.168.7.1') == 'ens3'
    assert route_interface(kernel.paths, '8.8.8.8') == 'enp0s2'
    assert route_interface(kernel.paths, 'not-an-address') is None


def test_root_on_device_mapper_points_at_the_disk_below(kernel):
    with open(os.path.join(kernel.paths.proc, 'self', 'mountinfo'), 'w') as handle:
        handle.write('25 1 253:0 / / rw - ext4 /dev/mapper/vg-root rw\n')
    dm = os.path.join(kernel.root, 'sys', 'devices', 'virtual', 'block', 'dm-0')
    os.makedirs(os.path.join(dm, 'slaves'))
    os.symlink(os.path.join(kernel.paths.sys, 'block', 'vda'), os.path.join(dm, 'slaves', 'vda'))
    os.symlink(dm, os.path.join(kernel.paths.sys, 'dev', 'block', '253:0'))
    needs = find_host_needs(kernel.paths, read_devices(PciSysfs(kernel.paths)))
    assert needs[ROOT_DISK] == ['holds the root file system']


def test_iommu_groups_are_derived_from_the_device_records(kernel):
    devices = read_devices(PciSysfs(kernel.paths))
    assert iommu_groups(devices) == {}
    devices[E1000_A]['iommu_group'] = devices[E1000_B]['iommu_group'] = '3'
    devices[MGMT_NIC]['iommu_group'] = '1'
    assert iommu_groups(devices) == {'1': [MGMT_NIC], '3': [E1000_A, E1000_B]}


def test_the_controller_address_comes_from_ssh_connection():
    assert controller_address({'SSH_CONNECTION': '10.0.2.2 50122 10.0.2.15 22'}) == '10.0.2.2'
    assert controller_address({'SSH_CONNECTION': ''}) is None
    assert controller_address({}) is None
