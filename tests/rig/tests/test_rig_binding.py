# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection against a real Xen dom0: real xen-pciback, real xl and xenstored, emulated PCI devices.

Each test leaves the rig as it found it (devices on their own drivers), so they can run in any order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

pytestmark = pytest.mark.rig

MGMT_NIC = '0000:00:01.0'
ROOT_DISK = '0000:00:02.0'
E1000_A = '0000:00:03.0'
E1000_B = '0000:00:04.0'
XHCI = '0000:00:06.0'
BRIDGE = '0000:00:08.0'


def assignable(rig):
    return sorted(rig.ssh('xl pci-assignable-list').stdout.split())


def by_address(result):
    return dict((device['address'], device) for device in result['devices'])


@pytest.fixture
def clean(rig):
    """Devices back on their drivers after the test, whatever it did."""
    yield rig
    rig.module('pci_assignable', {'devices': [E1000_A, E1000_B, XHCI], 'state': 'absent', 'force': True})


def test_pci_info_sees_the_rig(rig):
    result = rig.module('pci_info', {})
    assert result['changed'] is False
    devices = by_address(result)
    assert devices[E1000_A]['driver'] == 'e1000' and devices[E1000_A]['vendor_id'] == '8086'
    assert devices[XHCI]['driver'] == 'xhci_hcd'
    assert any('default route' in reason for reason in devices[MGMT_NIC]['host_needs'])
    assert devices[ROOT_DISK]['host_needs'] == ['holds the root file system']
    assert devices[BRIDGE]['bridge'] is True
    assert devices['0000:00:05.0']['multifunction'] is True
    host = result['host']
    assert host['arch'] == 'x86_64'
    assert host['xen']['dom0'] is True and host['xen']['version'].startswith('4.17')
    assert host['xen']['quarantine_capable'] is True
    assert host['pciback'] == dict(host['pciback'], build='module', loaded=True, variant='pv_backend',
                                   kconfig_symbol='CONFIG_XEN_PCIDEV_BACKEND')
    assert host['problems'] == []


def test_assign_two_nics_in_one_task_then_give_them_back(clean):
    rig = clean
    check = rig.module('pci_assignable', {'devices': [E1000_A, '00:04.0']}, check=True)
    assert check['changed'] is True and rig.driver(E1000_A) == 'e1000'
    result = rig.module('pci_assignable', {'devices': [E1000_A, '00:04.0']}, diff=True)
    assert result['changed'] is True, result
    assert assignable(rig) == [E1000_A, E1000_B]
    assert rig.driver(E1000_A) == rig.driver(E1000_B) == 'pciback'
    again = rig.module('pci_assignable', {'devices': [E1000_A, E1000_B]})
    assert again['changed'] is False
    back = rig.module('pci_assignable', {'devices': [E1000_A, E1000_B], 'state': 'absent'})
    assert back['changed'] is True
    assert rig.driver(E1000_A) == rig.driver(E1000_B) == 'e1000'
    assert assignable(rig) == []
    assert rig.ssh('ls /sys/bus/pci/devices/%s/net' % E1000_A).stdout.strip()     # its interface is back
    assert rig.module('pci_assignable', {'devices': [E1000_A, E1000_B], 'state': 'absent'})['changed'] is False


def test_xl_gives_back_what_the_module_assigned(clean):
    rig = clean
    rig.module('pci_assignable', {'devices': [E1000_A]})
    # remove -r succeeds only if the device is quarantined, and rebinds only with driver_path recorded
    out = rig.ssh('xl pci-assignable-remove -r %s 2>&1' % E1000_A).stdout
    assert 'not rebinding' not in out
    assert rig.driver(E1000_A) == 'e1000'


def test_the_module_gives_back_what_xl_assigned(clean):
    rig = clean
    rig.ssh('xl pci-assignable-add %s' % XHCI)
    assert rig.driver(XHCI) == 'pciback'
    result = rig.module('pci_assignable', {'devices': [XHCI], 'state': 'absent'})
    device = by_address(result)[XHCI]
    assert device['original_driver'] == 'xhci_hcd' and device['original_driver_source'] == 'xenstore'
    assert rig.driver(XHCI) == 'xhci_hcd'
    assert assignable(rig) == []


@pytest.mark.parametrize('devices, message', [
    ([E1000_A, MGMT_NIC], 'carries the default route'),
    ([E1000_A, ROOT_DISK], 'holds the root file system'),
    ([E1000_A, BRIDGE], 'is a bridge'),
    ([E1000_A, '0000:00:03'], 'invalid device address'),
    ([E1000_A, '0000:00:1e.0'], 'no such PCI device'),
])
def test_refusals_on_the_real_host_move_nothing(rig, devices, message):
    before = rig.drivers()
    result = rig.module('pci_assignable', {'devices': devices})
    assert result.get('failed') is True and message in result['msg'], result
    assert rig.drivers() == before
