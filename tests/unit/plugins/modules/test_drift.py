# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Identity beside every address: the journal and the hide list record it, pci_info reports drift and each device's dom0
access status, pci_assignable and module_params refuse to go on holding or hiding another device."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.xenpci.passthrough.plugins.modules import module_params, pci_assignable, pci_info
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B

PORT_A = '0000:00:1c.0'
PORT_B = '0000:00:1d.0'
NIC = '0000:03:00.0'          # the e1000e behind PORT_A
MOVED = '0000:04:00.0'        # where it is once a card in front of it renumbered the buses


def by_address(result):
    return dict((device['address'], device) for device in result['devices'])


def journal(kernel):
    with open(kernel.paths.journal) as handle:
        return json.load(handle)['devices']


def hide_file(kernel):
    return os.path.join(kernel.root, 'etc', 'modprobe.d', 'xenpci-xen-pciback.conf')


def add_nic_behind_a_port(kernel):
    for port in (PORT_A, PORT_B):
        kernel.add_device(port, vendor='8086', device='2948', class_code='060400', reset_methods=None)
    kernel.add_device(NIC, vendor='8086', device='10d3', driver='e1000e', parent=PORT_A)


def renumber(kernel):
    """A card added behind PORT_B takes bus 3: the e1000e is at 04:00.0 now, behind the same port."""
    kernel.unplug(NIC)
    kernel.add_device(NIC, vendor='10de', device='1b80', class_code='030000', driver='nouveau', parent=PORT_B)
    kernel.add_device(MOVED, vendor='8086', device='10d3', driver='e1000e', parent=PORT_A)


def test_the_journal_and_the_hide_file_record_the_identity(run):
    add_nic_behind_a_port(run.kernel)
    assert run(pci_assignable, devices=[NIC])['changed'] is True
    assert journal(run.kernel)[NIC]['identity'] == {
        'vendor': '8086', 'device': '10d3', 'subsystem_vendor': '8086', 'subsystem_device': '0001',
        'class': '020000', 'path': 'pci0000:00/0000:00:1c.0/0000:03:00.0'}
    assert run(module_params, name='xen-pciback', params={'hide': [NIC]})['changed'] is True
    with open(hide_file(run.kernel)) as handle:
        lines = handle.read().splitlines()
    assert lines[-2:] == ['# identity 0000:03:00.0 vendor=8086 device=10d3 subsystem_vendor=8086 '
                          'subsystem_device=0001 class=020000 path=pci0000:00/0000:00:1c.0/0000:03:00.0',
                          'options xen-pciback hide=(0000:03:00.0)']
    again = run(module_params, name='xen-pciback', params={'hide': [NIC]})
    assert again['changed'] is False


def test_pci_info_reports_drift_and_the_device_that_left(run):
    add_nic_behind_a_port(run.kernel)
    run(pci_assignable, devices=[NIC, E1000_B])
    run(module_params, name='xen-pciback', params={'hide': [NIC]})
    run(pci_assignable, devices=[NIC], state='absent')
    renumber(run.kernel)
    run.kernel.unplug(E1000_B)
    result = run(pci_info, names=False)
    devices = by_address(result)
    assert devices[NIC]['identity']['device'] == '1b80'
    [drift] = devices[NIC]['drift']
    assert drift['source'] == 'hide' and drift['recorded']['device'] == '10d3'
    assert '8086:10d3' in drift['message'] and '10de:1b80' in drift['message']
    assert devices[MOVED]['drift'] == [] and devices[E1000_A]['drift'] == []
    notes = ' '.join(result['host']['notes'])
    assert 'records %s as 8086:100e' % E1000_B in notes and 'no device is at %s now' % E1000_B in notes


def test_pci_assignable_refuses_a_drifted_address_and_changes_nothing(run):
    add_nic_behind_a_port(run.kernel)
    run(pci_assignable, devices=[NIC])
    renumber(run.kernel)
    before = journal(run.kernel)
    refused = run(pci_assignable, devices=[NIC])
    assert refused['failed'] is True
    assert '8086:10d3' in refused['msg'] and '10de:1b80' in refused['msg'] and 'follow_identity' in refused['msg']
    assert run.kernel.driver(NIC) == 'nouveau' and journal(run.kernel) == before


def test_follow_identity_acts_where_the_recorded_device_is_now(run):
    add_nic_behind_a_port(run.kernel)
    run(pci_assignable, devices=[NIC])
    renumber(run.kernel)        # the e1000e left pciback with its old address; at the new one e1000e took it
    result = run(pci_assignable, devices=[NIC], follow_identity=True)
    assert result['changed'] is True, result
    [device] = result['devices']
    assert device['address'] == MOVED and device['followed_from'] == NIC and device['original_driver'] == 'e1000e'
    assert run.kernel.driver(MOVED) == 'pciback' and run.kernel.driver(NIC) == 'nouveau'
    recorded = journal(run.kernel)
    assert NIC not in recorded and recorded[MOVED]['identity']['path'] == 'pci0000:00/0000:00:1c.0/0000:04:00.0'


def test_force_acts_on_the_address_and_drops_the_other_devices_entry(run):
    add_nic_behind_a_port(run.kernel)
    run(pci_assignable, devices=[NIC])
    renumber(run.kernel)
    result = run(pci_assignable, devices=[NIC], force=True)
    assert result['changed'] is True and result['devices'][0]['original_driver'] == 'nouveau'
    assert journal(run.kernel)[NIC]['identity']['device'] == '1b80'


def test_an_identity_matching_two_devices_is_refused_naming_both(run):
    add_nic_behind_a_port(run.kernel)
    run(pci_assignable, devices=[NIC])
    kernel = run.kernel
    kernel.unplug(NIC)
    kernel.add_device(NIC, vendor='10de', device='1b80', class_code='030000', driver='nouveau', parent=PORT_B)
    kernel.add_device('0000:05:00.0', vendor='8086', device='10d3', driver='e1000e', parent=PORT_B)
    kernel.add_device('0000:06:00.0', vendor='8086', device='10d3', driver='e1000e')
    before = journal(kernel)
    refused = run(pci_assignable, devices=[NIC], follow_identity=True)
    assert refused['failed'] is True and '0000:05:00.0, 0000:06:00.0' in refused['msg'], refused
    assert journal(kernel) == before and kernel.driver('0000:05:00.0') == 'e1000e'


def test_a_recorded_device_that_left_is_refused_when_followed(run):
    add_nic_behind_a_port(run.kernel)
    run(pci_assignable, devices=[NIC])
    run.kernel.replace_device(NIC, vendor='10de', device='1b80', class_code='030000', driver='nouveau', parent=PORT_B)
    refused = run(pci_assignable, devices=[NIC], follow_identity=True)
    assert refused['failed'] is True and 'has left the host' in refused['msg']


def test_module_params_refuses_to_go_on_hiding_another_device(run):
    add_nic_behind_a_port(run.kernel)
    run(module_params, name='xen-pciback', params={'hide': [NIC]})
    with open(hide_file(run.kernel)) as handle:
        before = handle.read()
    renumber(run.kernel)
    refused = run(module_params, name='xen-pciback', params={'hide': [NIC]})
    assert refused['failed'] is True and 'refusing to go on hiding another device' in refused['msg']
    with open(hide_file(run.kernel)) as handle:
        assert handle.read() == before
    # Taken out, then hidden at its new address: the file records the e1000e there.
    assert run(module_params, name='xen-pciback', params={'hide': [NIC]}, state='absent')['changed'] is True
    assert run(module_params, name='xen-pciback', params={'hide': [MOVED]})['changed'] is True
    with open(hide_file(run.kernel)) as handle:
        text = handle.read()
    assert '# identity 0000:04:00.0 vendor=8086 device=10d3' in text and NIC not in text


def write_hide(kernel, text, name='local.conf'):
    path = os.path.join(kernel.root, 'etc', 'modprobe.d', name)
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write('options xen-pciback hide=%s\n' % text)


def test_dom0_access_of_each_device(run):
    kernel = run.kernel
    # The running xen-pciback was given E1000_A and XHCI at boot; e1000 took E1000_A before it (the initramfs race).
    with open(os.path.join(kernel.paths.pciback_module, 'parameters', 'hide'), 'w') as handle:
        handle.write('(0000:00:03.0)(0000:00:05.0)\n')
    with open(os.path.join(kernel.paths.pciback_driver, 'slots'), 'w') as handle:
        handle.write('0000:00:03.0\n')
    run(pci_assignable, devices=['0000:00:05.0', '0000:00:06.0'])
    write_hide(kernel, '(0000:00:03.0)(0000:00:04.0)(0000:00:05.0)')
    result = run(pci_info, names=False)
    access = dict((address, device['dom0_access']) for address, device in by_address(result).items())
    assert access['0000:00:03.0'] == 'hidden_but_claimed'
    assert access['0000:00:04.0'] == 'disable_on_reboot'
    assert access['0000:00:05.0'] == 'disabled'
    assert access['0000:00:06.0'] == 'enable_on_reboot'
    assert access['0000:00:02.0'] == 'enabled'
    assert result['host']['pciback']['hide']['boot']['entries'] == ['0000:00:03.0', '0000:00:04.0', '0000:00:05.0']
    assert result['host']['problems'] == []


def test_a_hide_list_the_kernel_rejects_is_a_problem_naming_the_entry(run):
    write_hide(run.kernel, '(0000:00:03.0)(0000:00:4.0.1)(0000:00:05.0)')
    result = run(pci_info, names=False)
    devices = by_address(result)
    assert devices['0000:00:03.0']['dom0_access'] == 'hide_unparsed'
    assert devices['0000:00:05.0']['dom0_access'] == 'hide_unparsed'
    assert devices['0000:00:02.0']['dom0_access'] == 'enabled'
    [problem] = result['host']['problems']
    assert 'at "(0000:00:4.0.1)(0000:00:05.0)"' in problem and 'local.conf line 1' in problem
