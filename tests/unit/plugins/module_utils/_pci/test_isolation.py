# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Co-assignment sets from the topology, on a fake sysfs whose config files hold real config space layouts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import read_devices
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.config_space import ConfigSpace
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.isolation import (
    SOURCE_LINUX,
    SOURCE_TOPOLOGY,
    coassignment_sets,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PciSysfs
from ansible_collections.xenpci.passthrough.tests.unit.fakes.config_space import (
    ACS_ALL,
    DOWNSTREAM,
    ENDPOINT,
    PCIE_TO_PCI,
    ROOT_PORT,
    UPSTREAM,
    config_space,
)
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel

BRIDGE = '060400'


@pytest.fixture
def host(tmp_path):
    return FakeKernel(tmp_path)


def sets_of(kernel):
    sysfs = PciSysfs(kernel.paths)
    return coassignment_sets(sysfs, read_devices(sysfs))


def port(kernel, address, pcie_type=ROOT_PORT, acs=(ACS_ALL, ACS_ALL), parent=None):
    kernel.add_device(address, vendor='1b36', device='000c', class_code=BRIDGE, parent=parent, reset_methods=None,
                      config=config_space('1b36', '000c', bridge=True, pcie_type=pcie_type, acs=acs))


def endpoint(kernel, address, parent=None, multifunction=False, pcie_type=ENDPOINT, acs=None, vendor='8086',
             device='10d3'):
    kernel.add_device(address, vendor=vendor, device=device, parent=parent, driver='e1000e',
                      config=config_space(vendor, device, multifunction=multifunction, pcie_type=pcie_type, acs=acs))


def test_functions_of_a_conventional_multi_function_device_go_together(host):
    for function in (0, 1):
        host.add_device('0000:00:05.%d' % function, driver='e1000', config=config_space(multifunction=True))
    host.add_device('0000:00:03.0', driver='e1000', config=config_space())
    sets = sets_of(host)
    assert sets['0000:00:05.0']['devices'] == ['0000:00:05.1'] and sets['0000:00:05.1']['devices'] == ['0000:00:05.0']
    assert sets['0000:00:05.0']['source'] == SOURCE_TOPOLOGY
    assert sets['0000:00:05.0']['reasons'] == [
        '0000:00:05.0, 0000:00:05.1 are functions of one multi-function device without ACS isolation']
    assert sets['0000:00:03.0'] == {'devices': [], 'reasons': [], 'source': SOURCE_TOPOLOGY}


def test_a_multi_function_pcie_device_with_acs_is_isolated_per_function(host):
    for function in (0, 1):
        endpoint(host, '0000:00:06.%d' % function, multifunction=True, acs=(ACS_ALL, ACS_ALL))
    sets = sets_of(host)
    assert sets['0000:00:06.0']['devices'] == [] and sets['0000:00:06.1']['devices'] == []


def test_a_root_port_with_acs_isolates_what_is_below_it_and_one_without_does_not(host):
    port(host, '0000:00:08.0')
    endpoint(host, '0000:01:00.0', parent='0000:00:08.0')
    port(host, '0000:00:09.0', acs=(ACS_ALL, 0))            # capable, not enabled
    endpoint(host, '0000:02:00.0', parent='0000:00:09.0')
    port(host, '0000:00:0a.0', acs=None)                    # no ACS capability at all
    endpoint(host, '0000:03:00.0', parent='0000:00:0a.0')
    sets = sets_of(host)
    assert sets['0000:01:00.0']['devices'] == []
    assert sets['0000:00:08.0']['devices'] == []
    assert sets['0000:02:00.0']['devices'] == ['0000:00:09.0']
    assert sets['0000:02:00.0']['reasons'] == [
        'what is below 0000:00:09.0 (PCIe root port) is not isolated: it lacks ACS source validation, request redirect, '
        'completion redirect, upstream forwarding']
    assert sets['0000:03:00.0']['devices'] == ['0000:00:0a.0']


def test_acs_features_a_port_does_not_offer_count_as_enforced(host):
    offered = 0x01 | 0x10                                   # source validation and upstream forwarding only
    port(host, '0000:00:08.0', acs=(offered, offered))
    endpoint(host, '0000:01:00.0', parent='0000:00:08.0')
    port(host, '0000:00:09.0', acs=(offered, 0x01))         # upstream forwarding offered but off
    endpoint(host, '0000:02:00.0', parent='0000:00:09.0')
    sets = sets_of(host)
    assert sets['0000:01:00.0']['devices'] == []
    assert sets['0000:02:00.0']['devices'] == ['0000:00:09.0']
    assert sets['0000:02:00.0']['reasons'][0].endswith('lacks ACS upstream forwarding')


def test_a_switch_isolates_per_downstream_port_only_where_every_port_up_has_acs(host):
    port(host, '0000:00:08.0')
    port(host, '0000:01:00.0', pcie_type=UPSTREAM, acs=None, parent='0000:00:08.0')
    port(host, '0000:02:00.0', pcie_type=DOWNSTREAM, parent='0000:01:00.0')
    port(host, '0000:02:01.0', pcie_type=DOWNSTREAM, parent='0000:01:00.0')
    port(host, '0000:02:02.0', pcie_type=DOWNSTREAM, acs=None, parent='0000:01:00.0')
    endpoint(host, '0000:03:00.0', parent='0000:02:00.0')
    endpoint(host, '0000:04:00.0', parent='0000:02:01.0')
    endpoint(host, '0000:05:00.0', parent='0000:02:02.0')
    sets = sets_of(host)
    assert sets['0000:03:00.0']['devices'] == [] and sets['0000:04:00.0']['devices'] == []
    assert sets['0000:05:00.0']['devices'] == ['0000:02:02.0']

    # The same switch below a root port without ACS: everything below that root port is one set.
    other = FakeKernel(host.root + '-2')
    port(other, '0000:00:08.0', acs=None)
    port(other, '0000:01:00.0', pcie_type=UPSTREAM, acs=None, parent='0000:00:08.0')
    port(other, '0000:02:00.0', pcie_type=DOWNSTREAM, parent='0000:01:00.0')
    endpoint(other, '0000:03:00.0', parent='0000:02:00.0')
    sets = sets_of(other)
    assert sets['0000:03:00.0']['devices'] == ['0000:00:08.0', '0000:01:00.0', '0000:02:00.0']
    assert ('what is below 0000:02:00.0 is not isolated: 0000:00:08.0 (PCIe root port) on its path to the root '
            'complex lacks ACS source validation, request redirect, completion redirect, upstream forwarding'
            in sets['0000:03:00.0']['reasons'])


@pytest.mark.parametrize('bridge_config, kind', [
    (config_space('1b36', '0001', bridge=True), 'conventional PCI bridge'),
    (config_space('1b36', '000e', bridge=True, pcie_type=PCIE_TO_PCI), 'PCIe-to-PCI bridge'),
])
def test_a_pci_bridge_takes_everything_behind_it(host, bridge_config, kind):
    host.add_device('0000:00:0b.0', vendor='1b36', device='0001', class_code=BRIDGE, reset_methods=None,
                    config=bridge_config)
    for slot in (1, 2):
        host.add_device('0000:05:0%d.0' % slot, driver='e1000', parent='0000:00:0b.0', config=config_space())
    sets = sets_of(host)
    assert sets['0000:05:01.0']['devices'] == ['0000:00:0b.0', '0000:05:02.0']
    assert sets['0000:00:0b.0']['devices'] == ['0000:05:01.0', '0000:05:02.0']
    # One reason for the set, not one per device behind the bridge.
    assert sets['0000:05:01.0']['reasons'] == [
        '0000:00:0b.0 (%s) issues the DMA of everything behind it under its own requester ID' % kind]


def test_a_dma_alias_quirk_joins_the_function_it_aliases(host):
    # Marvell 88SE9230 issues DMA as function 1; both functions have ACS, so only the quirk joins them.
    endpoint(host, '0000:00:07.0', multifunction=True, acs=(ACS_ALL, ACS_ALL), vendor='1b4b', device='9230')
    endpoint(host, '0000:00:07.1', multifunction=True, acs=(ACS_ALL, ACS_ALL), vendor='1b4b', device='9230')
    endpoint(host, '0000:00:09.0', vendor='1b4b', device='9230')      # no function 1 there: alone
    sets = sets_of(host)
    assert sets['0000:00:07.0']['devices'] == ['0000:00:07.1']
    assert sets['0000:00:07.0']['reasons'] == ['0000:00:07.0 issues DMA as 0000:00:07.1 (a quirk Linux knows for '
                                               '1b4b:9230)']
    assert sets['0000:00:09.0']['devices'] == []


def test_linux_iommu_groups_are_used_as_they_are_where_linux_has_them(host):
    host.add_device('0000:00:05.0', driver='e1000', iommu_group=4, config=config_space(multifunction=True))
    host.add_device('0000:00:05.1', driver='e1000', iommu_group=5, config=config_space(multifunction=True))
    host.add_device('0000:00:06.0', driver='e1000', iommu_group=6)
    host.add_device('0000:00:06.1', driver='e1000', iommu_group=6)
    sets = sets_of(host)
    assert sets['0000:00:05.0'] == {'devices': [], 'reasons': [], 'source': SOURCE_LINUX}
    assert sets['0000:00:06.0'] == {'devices': ['0000:00:06.1'], 'reasons': ['IOMMU group 6 (Linux)'],
                                    'source': SOURCE_LINUX}


def test_config_space_that_cannot_be_read_counts_as_not_isolated(host, tmp_path):
    host.add_device('0000:00:05.0', driver='e1000')           # empty config file, as an unprivileged reader sees it
    host.add_device('0000:00:05.1', driver='e1000')
    assert sets_of(host)['0000:00:05.0']['devices'] == ['0000:00:05.1']
    assert ConfigSpace.read(str(tmp_path / 'missing')).readable is False


def test_the_parser_follows_capability_chains(tmp_path):
    path = tmp_path / 'config'
    path.write_bytes(config_space(multifunction=True, pcie_type=DOWNSTREAM, acs=(0x1f, 0x15)))
    config = ConfigSpace.read(str(path))
    assert (config.multifunction, config.pcie_type, config.acs) == (True, DOWNSTREAM, (0x1f, 0x15))
    path.write_bytes(config_space(pcie_type=ENDPOINT))
    config = ConfigSpace.read(str(path))
    assert (config.multifunction, config.pcie_type, config.acs) == (False, ENDPOINT, None)
    path.write_bytes(config_space())
    assert ConfigSpace.read(str(path)).is_pcie() is False


@pytest.mark.parametrize('config, methods', [
    (config_space(pcie_type=ENDPOINT, flr=True), ['flr', 'pm']),
    (config_space(pcie_type=ENDPOINT, flr=True, no_soft_reset=True), ['flr']),
    (config_space(no_soft_reset=True), ['bus']),
    (b'', ['bus']),
])
def test_a_kernel_without_reset_method_gets_the_resets_config_space_offers(host, config, methods):
    """Linux before 5.15 has a reset file but no reset_method: the resets come from config space."""
    host.add_device('0000:00:09.0', driver='e1000', config=config)
    os.unlink(os.path.join(host.paths.pci_devices, '0000:00:09.0', 'reset_method'))
    assert read_devices(PciSysfs(host.paths))['0000:00:09.0']['reset_methods'] == methods
