# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xenpci.passthrough.plugins.modules import pci_assignable
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, MGMT_NIC


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
