# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.xenpci.passthrough.plugins.modules import pci_assignable, pci_info
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, MGMT_NIC, ROOT_DISK, VGA, XHCI
from ansible_collections.xenpci.passthrough.tests.unit.fakes.config_space import config_space

PCI_IDS = """# pci.ids excerpt
8086  Intel Corporation
\t100e  82540EM Gigabit Ethernet Controller
\t\t8086 001e  PRO/1000 MT Desktop Adapter
\t10c9  82576 Gigabit Network Connection
1b36  Red Hat, Inc.
\t000d  QEMU XHCI Host Controller
C 02  Network controller
\t00  Ethernet controller
C 0c  Serial bus controller
\t03  USB controller
\t\t30  XHCI
"""


def by_address(result):
    return dict((device['address'], device) for device in result['devices'])


def test_reports_devices_drivers_and_what_the_host_needs(run):
    result = run(pci_info)
    assert result['changed'] is False
    devices = by_address(result)
    assert devices[E1000_A]['driver'] == 'e1000' and devices[E1000_A]['net_interfaces'] == ['ens3']
    assert devices[MGMT_NIC]['host_needs'] == ['carries the default route (enp0s2)']
    assert devices[ROOT_DISK]['host_needs'] == ['holds the root file system']
    assert devices[ROOT_DISK]['block_devices'] == ['vda']
    assert devices[VGA]['boot_vga'] is True and devices[VGA]['host_needs'] == ['is the boot VGA device']
    assert devices[E1000_A]['passthrough']['candidate'] is True
    assert devices['0000:00:06.0']['multifunction'] is True and devices[E1000_A]['multifunction'] is False
    assert devices[E1000_A]['reset_methods'] == ['flr', 'bus']
    host = result['host']
    assert host['xen']['dom0'] is True and host['xen']['version'] == '4.17.5'
    assert host['pciback']['loaded'] is True and host['pciback']['build'] == 'module'
    assert host['xen']['quarantine_capable'] is True
    assert host['problems'] == []


def test_the_sets_a_guest_must_take_whole_come_from_the_topology_in_a_dom0(run, fake_dom0):
    kernel, _xen = fake_dom0
    for address in ('0000:00:09.0', '0000:00:09.1'):
        kernel.add_device(address, driver='e1000', config=config_space(multifunction=True))
    devices = by_address(run(pci_info))
    assert devices['0000:00:09.1']['coassignment'] == {
        'devices': ['0000:00:09.0'], 'source': 'topology',
        'reasons': ['0000:00:09.0, 0000:00:09.1 are functions of one multi-function device without ACS isolation']}
    # The rig host's igb isolates its two functions with ACS.
    assert devices['0000:00:06.0']['coassignment'] == {'devices': [], 'reasons': [], 'source': 'topology'}


def test_filters_select_devices(run):
    assert [d['address'] for d in run(pci_info, classes=['0200'], ids=['8086:*'])['devices']] == [
        E1000_A, E1000_B, '0000:00:06.0', '0000:00:06.1']
    assert [d['address'] for d in run(pci_info, ids=['1b36:000d'])['devices']] == [XHCI]
    assert [d['address'] for d in run(pci_info, drivers=['e1000'], addresses=['00:04.0'])['devices']] == [E1000_B]
    assert [d['address'] for d in run(pci_info, drivers=['none'])['devices']] == ['0000:00:00.0']


def test_bad_filters_fail_clearly(run):
    result = run(pci_info, classes=['network'], ids=['intel'])
    assert result['failed'] is True
    assert "'network' is not a PCI class" in result['msg'] and "'intel' is not a vendor id" in result['msg']


def test_names_come_from_pci_ids(run):
    path = os.path.join(run.kernel.root, 'usr', 'share', 'misc', 'pci.ids')
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write(PCI_IDS)
    result = run(pci_info)
    assert result['host']['pci_ids'] == path and not result['host']['notes'] and not result.get('warnings'), result
    devices = by_address(result)
    assert devices[E1000_A]['vendor_name'] == 'Intel Corporation'
    assert devices[E1000_A]['device_name'] == '82540EM Gigabit Ethernet Controller'
    assert devices[E1000_A]['class_name'] == 'Ethernet controller'
    assert devices[XHCI]['class_name'] == 'USB controller'
    assert devices[VGA]['vendor_name'] is None


def test_names_without_pci_ids_are_null_and_the_task_says_why(run):
    result = run(pci_info)
    assert by_address(result)[E1000_A]['vendor_name'] is None and result['host']['pci_ids'] is None
    assert [note for note in result['host']['notes'] if 'no pci.ids on the host' in note], result['host']
    assert 'no pci.ids on the host' in str(result.get('warnings')), result
    quiet = run(pci_info, names=False)
    assert quiet['host']['pci_ids'] is None and not quiet['host']['notes'] and not quiet.get('warnings')


def test_passthrough_view_after_assignment(run):
    run(pci_assignable, devices=[E1000_A])
    run.xen.attach(E1000_A, 7)
    device = by_address(run(pci_info, addresses=[E1000_A]))[E1000_A]
    assert device['driver'] == 'pciback'
    assert device['passthrough'] == {
        'pciback_bound': True, 'pciback_slot': True, 'original_driver': 'e1000',
        'original_driver_source': 'journal', 'journal_phase': 'held', 'assigned_domain': 7,
        'assignable': False, 'candidate': True, 'guest_configs': [],
    }


def test_passthrough_view_after_the_guest_is_destroyed(run):
    run(pci_assignable, devices=[E1000_A, E1000_B])
    run.xen.attach(E1000_A, 2)
    run.xen.destroy(2)                                  # its PV PCI backend stays, closed
    run.xen.attach(E1000_B, 3)
    del run.xen.store['/libxl/pci/0000-00-04-0/domid']  # only the backend of the live guest names it
    devices = by_address(run(pci_info, addresses=[E1000_A, E1000_B]))
    assert devices[E1000_A]['passthrough']['assigned_domain'] is None
    assert devices[E1000_A]['passthrough']['assignable'] is True
    assert devices[E1000_B]['passthrough']['assigned_domain'] == 3
    assert devices[E1000_B]['passthrough']['assignable'] is False


def test_passthrough_view_names_the_guest_configs_of_each_device(run):
    config_dir = os.path.join(run.kernel.root, 'etc', 'xen')
    os.makedirs(config_dir)
    files = {
        'web1.cfg': "name = 'web1'\npci = [ '%s', '%s,permissive=1' ]\n" % (E1000_A, E1000_B[len('0000:'):]),
        'web2.cfg': "name = 'web2'\npci = [\n  '%s@08',   # the same port\n]\n" % E1000_A,
        'odd.cfg': "pci = [ '%s' ] +\n" % XHCI,                 # xl cannot read it: it names nothing
        'xl.conf': "pci = [ '%s' ]\n" % XHCI,                   # not a guest's
    }
    for name, text in files.items():
        with open(os.path.join(config_dir, name), 'w') as handle:
            handle.write(text)
    devices = by_address(run(pci_info, addresses=[E1000_A, E1000_B, XHCI]))
    assert devices[E1000_A]['passthrough']['guest_configs'] == [os.path.join(config_dir, 'web1.cfg'),
                                                                os.path.join(config_dir, 'web2.cfg')]
    assert devices[E1000_B]['passthrough']['guest_configs'] == [os.path.join(config_dir, 'web1.cfg')]
    assert devices[XHCI]['passthrough']['guest_configs'] == []
