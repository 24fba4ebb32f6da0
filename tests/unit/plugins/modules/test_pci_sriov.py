# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pci_sriov, and VFs in pci_assignable and pci_info, run as modules against the fake dom0."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sriov import RULES_HEADER, rules_path
from ansible_collections.xenpci.passthrough.plugins.modules import pci_assignable, pci_info, pci_sriov
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A
from ansible_collections.xenpci.passthrough.tests.unit.fakes.snapshot import HostSnapshot, assert_unchanged

PF = '0000:03:00.0'
RULE = ('ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="0000:03:00.0", ATTR{vendor}=="0x8086", ATTR{device}=="0x10fb", '
        'DRIVER=="?*", DRIVER!="pciback", %sATTR{sriov_numvfs}="%d"\n')


@pytest.fixture
def sriov(run):
    """The fake dom0 with an SR-IOV NIC (ixgbe, 63 VFs at most, ixgbevf for its VFs)."""
    run.kernel.add_device(PF, vendor='8086', device='10fb', driver='ixgbe')
    run.kernel.add_sriov(PF, totalvfs=63, vf_device='10ed', vf_driver='ixgbevf')
    return run


def rules(run):
    with open(rules_path(run.kernel.paths)) as handle:
        return handle.read()


def test_create_vfs_then_again_unchanged_with_diff(sriov):
    result = sriov(pci_sriov, pf='03:00.0', numvfs=2, autoprobe=False, _ansible_diff=True)
    assert result['changed'] is True and result['pf'] == PF and result['driver'] == 'ixgbe'
    assert (result['totalvfs'], result['numvfs_before'], result['numvfs']) == (63, 0, 2)
    assert (result['drivers_autoprobe_before'], result['drivers_autoprobe']) == (True, False)
    assert result['vfs'] == [{'index': 0, 'address': '0000:03:10.0', 'driver': None},
                             {'index': 1, 'address': '0000:03:10.2', 'driver': None}]
    sysfs_diff, file_diff = result['diff']
    assert sysfs_diff['before'] == '%s: sriov_numvfs 0, sriov_drivers_autoprobe 1\n' % PF
    assert sysfs_diff['after'] == '%s: sriov_numvfs 2, sriov_drivers_autoprobe 0\n' % PF
    assert file_diff['after'] == RULES_HEADER + RULE % ('ATTR{sriov_drivers_autoprobe}="0", ', 2)
    assert rules(sriov) == file_diff['after'] and sriov.kernel.numvfs(PF) == 2
    before = HostSnapshot.take(sriov.kernel.root)
    again = sriov(pci_sriov, pf=PF, numvfs=2, autoprobe=False)
    assert again['changed'] is False
    assert_unchanged(before, sriov.kernel.root)


def test_check_mode_writes_nothing_and_says_what_would_change(sriov):
    before = HostSnapshot.take(sriov.kernel.root)
    result = sriov(pci_sriov, pf=PF, numvfs=4, _ansible_check_mode=True, _ansible_diff=True)
    assert result['changed'] is True and result['numvfs'] == 4 and result['vfs'] == []
    assert result['diff'][1]['after'] == RULES_HEADER + RULE % ('', 4)
    assert sriov.kernel.writes == []
    assert_unchanged(before, sriov.kernel.root)


def test_a_change_goes_through_zero_and_autoprobe_binds_the_vf_driver(sriov):
    sriov(pci_sriov, pf=PF, numvfs=1)
    result = sriov(pci_sriov, pf=PF, numvfs=3)
    assert result['changed'] is True and (result['numvfs_before'], result['numvfs']) == (1, 3)
    assert [vf['driver'] for vf in result['vfs']] == ['ixgbevf'] * 3
    assert [text for path, text in sriov.kernel.writes if path.endswith('sriov_numvfs')] == ['1\n', '0\n', '3\n']
    assert rules(sriov) == RULES_HEADER + RULE % ('', 3)


def test_numvfs_zero_removes_the_vfs_and_the_rule_file(sriov):
    sriov(pci_sriov, pf=PF, numvfs=2)
    result = sriov(pci_sriov, pf=PF, numvfs=0)
    assert result['changed'] is True and result['vfs'] == [] and sriov.kernel.numvfs(PF) == 0
    assert not os.path.exists(rules_path(sriov.kernel.paths))


def test_a_vf_made_assignable_by_pf_and_index_blocks_a_change_until_force(sriov):
    sriov(pci_sriov, pf=PF, numvfs=2, autoprobe=False)
    vf = sriov.kernel.vf_address(PF, 1)
    assigned = sriov(pci_assignable, devices=['%s/vf1' % PF])
    assert assigned['changed'] is True, assigned
    assert assigned['devices'][0]['address'] == vf and assigned['devices'][0]['sriov_vf'] == '%s/vf1' % PF
    assert sriov.kernel.driver(vf) == 'pciback'
    before = HostSnapshot.take(sriov.kernel.root, sriov.xen)
    refused = sriov(pci_sriov, pf=PF, numvfs=4)
    assert refused['failed'] is True
    assert '%s (%s/vf1) is bound to pciback' % (vf, PF) in refused['msg']
    assert 'recorded as held in the journal' in refused['msg'] and 'force' in refused['msg']
    assert_unchanged(before, sriov.kernel.root, sriov.xen)
    forced = sriov(pci_sriov, pf=PF, numvfs=4, force=True)
    assert forced['changed'] is True and sorted(forced['in_use']) == [vf]
    assert sriov.kernel.numvfs(PF) == 4


def test_a_vf_a_domain_uses_is_named(sriov):
    sriov(pci_sriov, pf=PF, numvfs=1, autoprobe=False)
    vf = sriov.kernel.vf_address(PF, 0)
    sriov(pci_assignable, devices=['%s/vf0' % PF])
    sriov.xen.attach(vf, 5)
    refused = sriov(pci_sriov, pf=PF, numvfs=0)
    assert refused['failed'] is True and '%s (%s/vf0) is' % (vf, PF) in refused['msg']
    assert 'assigned to domain 5' in refused['msg'] and sriov.kernel.numvfs(PF) == 1


@pytest.mark.parametrize('args, words', [
    (dict(pf=PF, numvfs=64), ['numvfs 64 is out of range for %s' % PF, 'sriov_totalvfs is 63']),
    (dict(pf=E1000_A, numvfs=1), ['%s has no SR-IOV capability' % E1000_A]),
    (dict(pf='0000:03:00', numvfs=1), ["'0000:03:00' is not a PCI function address"]),
    (dict(pf='0000:0b:00.0', numvfs=1), ['no PCI function 0000:0b:00.0']),
])
def test_bad_input_fails_naming_the_value_with_nothing_changed(sriov, args, words):
    before = HostSnapshot.take(sriov.kernel.root, sriov.xen)
    result = sriov(pci_sriov, **args)
    assert result['failed'] is True
    for word in words + ['nothing was changed']:
        assert word in result['msg']
    assert_unchanged(before, sriov.kernel.root, sriov.xen)


def test_a_pf_on_pciback_is_refused(sriov):
    sriov(pci_assignable, devices=[PF])
    assert sriov.kernel.driver(PF) == 'pciback'
    before = HostSnapshot.take(sriov.kernel.root, sriov.xen)
    result = sriov(pci_sriov, pf=PF, numvfs=2)
    assert result['failed'] is True and '%s is bound to pciback' % PF in result['msg']
    assert_unchanged(before, sriov.kernel.root, sriov.xen)


@pytest.mark.parametrize('reference, words', [
    ('%s/vf2' % PF, ['VF index 2 is out of range', 'indexes 0-1']),
    ('%s/vf0' % E1000_A, ['has no SR-IOV capability']),
    ('03:00.z/vf0', ['is not a PCI function address']),
])
def test_pci_assignable_refuses_a_bad_vf_reference_with_nothing_changed(sriov, reference, words):
    sriov(pci_sriov, pf=PF, numvfs=2)
    before = HostSnapshot.take(sriov.kernel.root, sriov.xen)
    result = sriov(pci_assignable, devices=[E1000_A, reference])
    assert result['failed'] is True
    for word in [reference, 'nothing was changed'] + words:
        assert word in result['msg']
    assert_unchanged(before, sriov.kernel.root, sriov.xen)


def test_pci_assignable_gives_back_a_vf_by_pf_and_index(sriov):
    sriov(pci_sriov, pf=PF, numvfs=1)
    vf = sriov.kernel.vf_address(PF, 0)
    sriov(pci_assignable, devices=['%s/vf0' % PF])
    back = sriov(pci_assignable, devices=['%s/vf0' % PF], state='absent')
    assert back['changed'] is True and sriov.kernel.driver(vf) == 'ixgbevf'


def test_pci_info_reports_each_pf_sriov_state(sriov):
    sriov(pci_sriov, pf=PF, numvfs=2, autoprobe=False)
    first, second = sriov.kernel.vf_address(PF, 0), sriov.kernel.vf_address(PF, 1)
    sriov(pci_assignable, devices=[first])
    devices = dict((device['address'], device) for device in sriov(pci_info)['devices'])
    assert devices[PF]['sriov'] == {
        'totalvfs': 63, 'numvfs': 2, 'drivers_autoprobe': False,
        'vfs': [{'index': 0, 'address': first, 'driver': 'pciback'},
                {'index': 1, 'address': second, 'driver': None}],
    }
    assert devices[PF]['virtfns'] == [first, second]
    assert devices[first]['sriov'] is None and devices[first]['physfn'] == PF
    assert devices[E1000_A]['sriov'] is None


@pytest.mark.parametrize('planted', ['file', 'directory'])
def test_a_symbolic_link_at_the_rule_file_or_its_directory_is_refused(sriov, tmp_path, planted):
    path = rules_path(sriov.kernel.paths)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    if planted == 'file':
        os.makedirs(os.path.dirname(path))
        (elsewhere / 'target').write_text('')
        os.symlink(str(elsewhere / 'target'), path)
    else:
        os.makedirs(os.path.dirname(os.path.dirname(path)))
        os.symlink(str(elsewhere), os.path.dirname(path))
    before = HostSnapshot.take(sriov.kernel.root, sriov.xen)
    result = sriov(pci_sriov, pf=PF, numvfs=2)
    assert result['failed'] is True and 'nothing was changed' in result['msg'], result
    assert_unchanged(before, sriov.kernel.root, sriov.xen)
    assert os.listdir(str(elsewhere)) == (['target'] if planted == 'file' else [])


def test_a_vf_without_autoprobe_is_held_through_an_override_that_goes_with_it(sriov):
    sriov(pci_sriov, pf=PF, numvfs=1, autoprobe=False)
    vf = sriov.kernel.vf_address(PF, 0)
    held = sriov(pci_assignable, devices=['%s/vf0' % PF])
    assert held['changed'] is True and sriov.kernel.driver(vf) == 'pciback'
    assert sriov.kernel.override(vf) == 'pciback'       # the kernel probes such a VF only through one
    with open(os.path.join(sriov.kernel.root, 'var/lib/xenpci_passthrough/drivers.json')) as handle:
        entry = json.load(handle)['devices'][vf]
    assert entry['sriov_vf'] == '%s/vf0' % PF                # the journal knows the VF by its PF and index too
    back = sriov(pci_assignable, devices=['%s/vf0' % PF], state='absent')
    assert back.get('changed') is True and sriov.kernel.driver(vf) is None and sriov.kernel.override(vf) is None, back
