# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci import sysfs
from ansible_collections.xenpci.passthrough.plugins.modules import pci_assignable
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, MGMT_NIC, MULTI_0, MULTI_1, build_rig_host
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import FakeXen
from ansible_collections.xenpci.passthrough.tests.unit.plugins.modules.conftest import ModuleRunner


def test_present_then_again_then_absent_with_diff(run):
    result = run(pci_assignable, devices=[E1000_A, '00:04.0'], _ansible_diff=True)
    assert result['changed'] is True
    assert result['diff']['before'] == '%s: e1000\n%s: e1000\n' % (E1000_A, E1000_B)
    assert result['diff']['after'] == '%s: pciback\n%s: pciback\n' % (E1000_A, E1000_B)
    assert run.kernel.driver(E1000_A) == 'pciback'
    again = run(pci_assignable, devices=[E1000_A, E1000_B], _ansible_diff=True)
    assert again['changed'] is False and again['diff'] == {'before': '', 'after': ''}
    back = run(pci_assignable, devices=[E1000_A, E1000_B], state='absent')
    assert back['changed'] is True and run.kernel.driver(E1000_B) == 'e1000'


def test_functions_all_takes_the_whole_device(run):
    result = run(pci_assignable, devices=['00:06.1'], functions='all')
    assert [device['address'] for device in result['devices']] == [MULTI_0, MULTI_1]
    assert run.kernel.driver(MULTI_0) == run.kernel.driver(MULTI_1) == 'pciback'
    again = run(pci_assignable, devices=[MULTI_0], functions='all')
    assert again['changed'] is False


def test_a_device_without_a_reset_warns(run):
    run.kernel.add_device('0000:00:09.0', driver='e1000', reset_methods=None)
    result = run(pci_assignable, devices=['0000:00:09.0'])
    assert result['changed'] is True and 'offers no reset' in str(result.get('warnings')), result
    back = run(pci_assignable, devices=['0000:00:09.0'], state='absent')
    assert back['changed'] is True
    refused = run(pci_assignable, devices=['0000:00:09.0'], require_reset=True)
    assert refused['failed'] is True and 'offers no reset' in refused['msg']
    assert run.kernel.driver('0000:00:09.0') == 'e1000'


def test_check_mode_changes_nothing(run):
    result = run(pci_assignable, devices=[E1000_A], _ansible_check_mode=True)
    assert result['changed'] is True
    assert run.kernel.driver(E1000_A) == 'e1000' and run.kernel.writes == []


def test_a_refusal_fails_the_task_with_the_reason(run):
    result = run(pci_assignable, devices=[E1000_A, MGMT_NIC])
    assert result['failed'] is True
    assert 'carries the default route' in result['msg'] and 'nothing was changed' in result['msg']
    assert run.kernel.driver(E1000_A) == 'e1000'


def test_bad_arguments_are_refused_by_the_argument_spec(run):
    result = run(pci_assignable, devices=[E1000_A], state='assigned')
    assert result['failed'] is True and 'state' in result['msg']


def test_a_hypervisor_without_pci_passthrough_is_said_in_the_result(run):
    run.xen.can_quarantine = run.xen.directio = False
    result = run(pci_assignable, devices=[E1000_A])
    assert result['changed'] is True and not result.get('failed')
    assert result['devices'][0]['quarantined'] is False
    assert 'no PCI passthrough support' in result['hypervisor_limit']


def test_a_device_left_by_a_destroyed_guest_is_given_back(run):
    # A guest that powers itself off (on_poweroff="destroy") leaves its PV PCI backend behind, closed:
    # the domain is gone, and the device is back in quarantine where xl pci-assignable-remove -r takes it.
    run(pci_assignable, devices=[E1000_A])
    run.xen.attach(E1000_A, 2)
    run.xen.destroy(2)
    assert run.xen.store['/local/domain/0/backend/pci/2/0/dev-0'] == E1000_A
    assert run.xen.store['/local/domain/0/backend/pci/2/0/state'] == '6'
    result = run(pci_assignable, devices=[E1000_A], state='absent')
    assert not result.get('failed'), result['msg']
    assert result['changed'] is True
    assert run.kernel.driver(E1000_A) == 'e1000' and E1000_A not in run.xen.owner


def test_a_device_a_live_guest_uses_is_refused_naming_that_guest(run):
    run(pci_assignable, devices=[E1000_A, E1000_B])
    run.xen.attach(E1000_B, 2)
    run.xen.destroy(2)
    run.xen.attach(E1000_A, 3)
    result = run(pci_assignable, devices=[E1000_A, E1000_B], state='absent')
    assert result['failed'] is True
    assert '%s is assigned to domain 3' % E1000_A in result['msg'] and 'domain 2' not in result['msg']
    assert run.kernel.driver(E1000_A) == run.kernel.driver(E1000_B) == 'pciback'
    # Only the PV backend names the guest (libxl before 4.15 kept no domid in its record): still refused.
    del run.xen.store['/libxl/pci/0000-00-03-0/domid']
    result = run(pci_assignable, devices=[E1000_A], state='absent')
    assert result['failed'] is True and '%s is assigned to domain 3' % E1000_A in result['msg']
    assert run.kernel.driver(E1000_A) == 'pciback'


def test_an_empty_device_list_changes_nothing_and_warns(run):
    result = run(pci_assignable, devices=[])
    assert result['changed'] is False and not result.get('failed') and result['devices'] == []
    assert 'devices is empty' in str(result.get('warnings')), result
    assert run.kernel.writes == []


@pytest.mark.parametrize('options, message', [
    ({'xen': False}, 'not running on Xen'),
    ({'dom0': False}, 'not dom0'),
    ({'pciback_build': 'absent'}, 'xen-pciback is not available'),
])
def test_a_host_that_cannot_assign_is_refused_before_anything_is_created(
        tmp_path, monkeypatch, capsys, options, message):
    uname = os.uname()
    kernel = build_rig_host(str(tmp_path), arch=uname[4], release=uname[2], pciback_loaded=False, **options)
    xen = FakeXen(kernel)
    monkeypatch.setattr(HostPaths, 'default_root', kernel.root)
    monkeypatch.setattr(sysfs, 'PciSysfs', lambda paths: xen.sysfs)
    monkeypatch.setattr(Commands, 'for_module', classmethod(lambda cls, module: xen.commands))
    for state in ('present', 'absent'):
        result = ModuleRunner(kernel, xen, capsys)(pci_assignable, devices=[E1000_A], state=state)
        assert result['failed'] is True and message in result['msg'], result
    assert not os.path.exists(kernel.paths.state_dir) and kernel.writes == []
