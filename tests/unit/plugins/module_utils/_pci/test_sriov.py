# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SR-IOV: the fake kernel's sriov_numvfs_store, the plan, the refusals, the rule file and VF references."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sriov import (
    RULES_HEADER,
    SriovError,
    parse_rules,
    parse_vf_reference,
    plan_sriov,
    read_pf,
    render_rules,
    resolve_vf_references,
    rules_path,
    virtfns,
)
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel, KernelSysfs
from ansible_collections.xenpci.passthrough.tests.unit.fakes.snapshot import HostSnapshot, assert_unchanged

PF = '0000:03:00.0'
PF2 = '0000:03:00.1'
PLAIN = '0000:05:00.0'
ORPHAN = '0000:06:00.0'     # SR-IOV capable, no driver


def rule(address, numvfs, autoprobe=None, vendor='8086', device='10c9'):
    return ('ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="%s", ATTR{vendor}=="0x%s", ATTR{device}=="0x%s", '
            'DRIVER=="?*", DRIVER!="pciback", %sATTR{sriov_numvfs}="%d"\n'
            % (address, vendor, device, '' if autoprobe is None else 'ATTR{sriov_drivers_autoprobe}="%d", ' % autoprobe,
               numvfs))


@pytest.fixture
def host(tmp_path):
    kernel = FakeKernel(tmp_path)
    for address in (PF, PF2):
        kernel.add_device(address, vendor='8086', device='10c9', driver='igb')
        kernel.add_sriov(address, totalvfs=7, vf_device='10ca', vf_driver='igbvf')
    kernel.add_device(PLAIN, driver='e1000')
    kernel.add_device(ORPHAN, vendor='15b3', device='1017')
    kernel.add_sriov(ORPHAN, totalvfs=8, vf_device='1018', vf_driver=None)
    kernel.load_pciback()
    return kernel


def plan(host, pf, numvfs, **options):
    return plan_sriov(host.paths, KernelSysfs(host), pf, numvfs, **options)


def read_rules(host):
    with open(rules_path(host.paths)) as handle:
        return handle.read()


# ---- the fake kernel behaves as sriov_numvfs_store --------------------------------------------

def test_the_fake_kernel_creates_vfs_with_their_links_and_probes_them_with_autoprobe(host):
    sysfs = KernelSysfs(host)
    sysfs.write(os.path.join(sysfs.device_dir(PF), 'sriov_numvfs'), '2\n')
    first, second = host.vf_address(PF, 0), host.vf_address(PF, 1)
    assert (first, second) == ('0000:03:10.0', '0000:03:10.2')     # offset 0x80, stride 2
    assert read_pf(sysfs, PF)['vfs'] == [{'index': 0, 'address': first, 'driver': 'igbvf'},
                                         {'index': 1, 'address': second, 'driver': 'igbvf'}]
    assert os.path.basename(os.readlink(os.path.join(sysfs.device_dir(first), 'physfn'))) == PF
    sysfs.write(os.path.join(sysfs.device_dir(PF), 'sriov_numvfs'), '0\n')
    assert not sysfs.exists(first) and read_pf(sysfs, PF)['vfs'] == [] and read_pf(sysfs, PF)['numvfs'] == 0


@pytest.mark.parametrize('pf, before, text, error', [
    (PF, 2, '3\n', errno.EBUSY),        # non-zero to non-zero: through 0
    (PF, 0, '8\n', errno.ERANGE),       # above sriov_totalvfs
    (PF, 0, 'many\n', errno.EINVAL),    # not a u16
    (ORPHAN, 0, '1\n', errno.ENOENT),   # no driver
])
def test_the_fake_kernel_refuses_as_the_kernel_does(host, pf, before, text, error):
    sysfs = KernelSysfs(host)
    if before:
        sysfs.write(os.path.join(sysfs.device_dir(pf), 'sriov_numvfs'), '%d\n' % before)
    with pytest.raises(OSError) as caught:
        sysfs.write(os.path.join(sysfs.device_dir(pf), 'sriov_numvfs'), text)
    assert caught.value.errno == error
    assert read_pf(sysfs, pf)['numvfs'] == before and len(read_pf(sysfs, pf)['vfs']) == before


def test_the_fake_kernel_leaves_vfs_without_a_driver_when_autoprobe_is_off(host):
    sysfs = KernelSysfs(host)
    sysfs.write(os.path.join(sysfs.device_dir(PF), 'sriov_drivers_autoprobe'), '0\n')
    sysfs.write(os.path.join(sysfs.device_dir(PF), 'sriov_numvfs'), '1\n')
    assert read_pf(sysfs, PF)['drivers_autoprobe'] is False
    assert read_pf(sysfs, PF)['vfs'][0]['driver'] is None


def test_unbinding_the_pf_driver_loses_its_vfs(host):
    sysfs = KernelSysfs(host)
    sysfs.write(os.path.join(sysfs.device_dir(PF), 'sriov_numvfs'), '3\n')
    sysfs.unbind(PF, 'igb')
    assert read_pf(sysfs, PF)['numvfs'] == 0 and not sysfs.exists(host.vf_address(PF, 0))


# ---- the plan ---------------------------------------------------------------------------------

def test_create_vfs_then_again_changes_nothing(host):
    first = plan(host, PF, 3, autoprobe=False)
    assert first.changed
    first.apply()
    assert host.numvfs(PF) == 3 and host.autoprobe(PF) is False
    assert [vf['driver'] for vf in first.result()['vfs']] == [None, None, None]
    assert read_rules(host) == RULES_HEADER + rule(PF, 3, autoprobe=0)
    again = plan(host, '03:00.0', 3, autoprobe=False)
    assert not again.changed
    before = HostSnapshot.take(host.root)
    again.apply()
    assert_unchanged(before, host.root)


def test_a_change_goes_through_zero(host):
    plan(host, PF, 2).apply()
    host.writes[:] = []
    changed = plan(host, PF, 5)
    changed.apply()
    assert [text for path, text in host.writes if path.endswith('sriov_numvfs')] == ['0\n', '5\n']
    assert changed.result()['numvfs_before'] == 2 and changed.result()['numvfs'] == 5
    assert [vf['index'] for vf in changed.result()['vfs']] == [0, 1, 2, 3, 4]


def test_numvfs_zero_removes_the_pf_line_and_the_file_when_empty(host):
    plan(host, PF, 2).apply()
    plan(host, PF2, 1, autoprobe=True).apply()
    assert read_rules(host) == RULES_HEADER + rule(PF, 2) + rule(PF2, 1, autoprobe=1)
    plan(host, PF, 0).apply()
    assert read_rules(host) == RULES_HEADER + rule(PF2, 1, autoprobe=1)
    assert host.numvfs(PF) == 0 and host.numvfs(PF2) == 1
    plan(host, PF2, 0).apply()
    assert not os.path.exists(rules_path(host.paths))


def test_not_persistent_sets_sysfs_and_drops_the_line(host):
    plan(host, PF, 2).apply()
    plan(host, PF, 4, persistent=False).apply()
    assert host.numvfs(PF) == 4 and not os.path.exists(rules_path(host.paths))


def test_autoprobe_omitted_keeps_what_the_line_had(host):
    plan(host, PF, 2, autoprobe=False).apply()
    plan(host, PF, 3).apply()
    assert read_rules(host) == RULES_HEADER + rule(PF, 3, autoprobe=0)
    assert host.autoprobe(PF) is False


def test_a_vf_on_pciback_is_named_and_the_change_refused_unless_force(host):
    sysfs = KernelSysfs(host)
    plan(host, PF, 2, autoprobe=False).apply()
    vf = host.vf_address(PF, 1)
    sysfs.pciback_new_slot(vf)
    sysfs.set_driver_override(vf, 'pciback')        # autoprobe off: the kernel probes the VF only with an override
    sysfs.bind(vf, 'pciback')
    before = HostSnapshot.take(host.root)
    with pytest.raises(SriovError) as caught:
        plan(host, PF, 4)
    assert '%s (%s/vf1) is bound to pciback' % (vf, PF) in str(caught.value)
    assert 'nothing was changed' in str(caught.value) and 'force' in str(caught.value)
    assert_unchanged(before, host.root)
    forced = plan(host, PF, 4, force=True)
    forced.apply()
    assert host.numvfs(PF) == 4 and forced.result()['in_use'] == {vf: ['bound to pciback']}


def test_a_vf_held_in_the_journal_or_used_by_a_domain_is_named(host):
    plan(host, PF, 2).apply()
    first, second = host.vf_address(PF, 0), host.vf_address(PF, 1)
    os.makedirs(host.paths.state_dir)
    with open(host.paths.journal, 'w') as handle:
        json.dump({'format': 1, 'devices': {first: {'phase': 'held', 'original_driver': 'igbvf'}}}, handle)
    with pytest.raises(SriovError) as caught:
        plan(host, PF, 0, domains=lambda: {second: '7'})
    message = str(caught.value)
    assert '%s (%s/vf0) is recorded as held in the journal' % (first, PF) in message
    assert '%s (%s/vf1) is assigned to domain 7' % (second, PF) in message
    assert host.numvfs(PF) == 2


def test_a_vf_the_host_needs_is_named(host):
    plan(host, PF, 1).apply()
    vf = host.vf_address(PF, 0)
    host.add_interface('ens3v0', vf)
    host.add_route('ens3v0')
    with pytest.raises(SriovError) as caught:
        plan(host, PF, 0)
    assert vf in str(caught.value) and 'default route' in str(caught.value)


def test_the_same_number_is_no_change_even_with_vfs_in_use(host):
    sysfs = KernelSysfs(host)
    plan(host, PF, 1).apply()
    vf = host.vf_address(PF, 0)
    sysfs.unbind(vf, 'igbvf')
    sysfs.pciback_new_slot(vf)
    sysfs.bind(vf, 'pciback')
    assert not plan(host, PF, 1).changed


@pytest.mark.parametrize('pf, numvfs, words', [
    (PF, 8, ['numvfs 8 is out of range for %s' % PF, 'sriov_totalvfs is 7']),
    (PF, -1, ['numvfs -1 is out of range']),
    (PLAIN, 1, ['%s has no SR-IOV capability' % PLAIN]),
    ('0000:09:00.0', 1, ['no PCI function 0000:09:00.0']),
    ('03:00.9', 1, ["'03:00.9' is not a PCI function address"]),
    (ORPHAN, 1, ['%s has no driver' % ORPHAN]),
])
def test_bad_input_is_refused_naming_the_value_with_nothing_changed(host, pf, numvfs, words):
    before = HostSnapshot.take(host.root)
    with pytest.raises(SriovError) as caught:
        plan(host, pf, numvfs)
    for word in words:
        assert word in str(caught.value)
    assert 'nothing was changed' in str(caught.value)
    assert_unchanged(before, host.root)


def test_a_pf_on_pciback_is_refused(host):
    sysfs = KernelSysfs(host)
    sysfs.unbind(PF, 'igb')
    sysfs.pciback_new_slot(PF)
    sysfs.bind(PF, 'pciback')
    with pytest.raises(SriovError) as caught:
        plan(host, PF, 2)
    assert '%s is bound to pciback' % PF in str(caught.value)


def test_a_vf_given_as_pf_is_refused(host):
    plan(host, PF, 1).apply()
    with pytest.raises(SriovError) as caught:
        plan(host, host.vf_address(PF, 0), 1)
    assert 'is a virtual function of %s' % PF in str(caught.value)


def test_a_kernel_refusal_puts_autoprobe_back(host):
    host.fail_write(os.path.relpath(os.path.join(host.paths.pci_devices, PF, 'sriov_numvfs'), host.root), errno.ENOMEM)
    with pytest.raises(SriovError) as caught:
        plan(host, PF, 3, autoprobe=False).apply()
    assert 'ENOMEM' in str(caught.value) and 'MMIO' in str(caught.value)
    assert host.autoprobe(PF) is True and host.numvfs(PF) == 0
    assert not os.path.exists(rules_path(host.paths))


def test_a_vf_of_a_pf_without_autoprobe_binds_only_with_an_override_which_the_binder_sets(host):
    sysfs = KernelSysfs(host)
    plan(host, PF, 2, autoprobe=False).apply()
    vf = host.vf_address(PF, 0)
    sysfs.pciback_new_slot(vf)
    with pytest.raises(OSError) as caught:
        sysfs.bind(vf, 'pciback')                   # what xl pci-assignable-add does: ENODEV here
    assert caught.value.errno == errno.ENODEV
    assert sysfs.probed_only_with_override(vf) is True and sysfs.probed_only_with_override(PF) is False


def test_a_hand_edited_rule_file_is_refused(host):
    path = rules_path(host.paths)
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write(RULES_HEADER + 'ACTION=="add", KERNEL=="x", RUN+="/bin/true"\n')
    with pytest.raises(SriovError) as caught:
        plan(host, PF, 1)
    assert 'line 3 is not an SR-IOV rule' in str(caught.value) and host.numvfs(PF) == 0


def hold(vf, pf, index):
    return ('ACTION=="add", SUBSYSTEM=="pci", KERNEL=="%s", TEST=="physfn", DRIVER!="?*", ENV{XENPCI_PASSTHROUGH_VF}='
            '"%s/vf%d", ATTR{driver_override}="pciback", ATTR{subsystem/drivers/pciback/new_slot}="$kernel", ATTR{subsystem/drivers/pciback/bind}="$kernel"\n'
            % (vf, pf, index))


def test_rules_render_and_parse_back():
    entries = {PF2: {'vendor': '8086', 'device': '10c9', 'autoprobe': False, 'numvfs': 2, 'hold': [1]},
               PF: {'vendor': '8086', 'device': '10c9', 'autoprobe': None, 'numvfs': 7, 'hold': []}}
    text = render_rules(entries, lambda pf, index: 'vf-%s-%d' % (pf, index))
    assert text == RULES_HEADER + rule(PF, 7) + rule(PF2, 2, autoprobe=0) + hold('vf-%s-1' % PF2, PF2, 1)
    assert parse_rules(text, 'f') == entries
    assert render_rules({}, None) is None


def test_vfs_held_at_every_boot_get_a_line_each_at_the_address_the_kernel_gives_them(host):
    planned = plan(host, PF, 3, autoprobe=False, hold_vfs=[2, 0])
    planned.apply()
    vfs = virtfns(KernelSysfs(host), PF)
    assert read_rules(host) == RULES_HEADER + rule(PF, 3, autoprobe=0) + hold(vfs[0], PF, 0) + hold(vfs[2], PF, 2)
    assert plan(host, PF, 3).changed is False                  # hold_vfs omitted: the lines stay
    assert plan(host, PF, 3, hold_vfs=[0, 2]).changed is False
    plan(host, PF, 1).apply()                                   # fewer VFs: the held ones past the end go
    assert read_rules(host) == RULES_HEADER + rule(PF, 1, autoprobe=0) + hold(vfs[0], PF, 0)
    plan(host, PF, 1, hold_vfs=[]).apply()
    assert read_rules(host) == RULES_HEADER + rule(PF, 1, autoprobe=0)


@pytest.mark.parametrize('options, message', [
    (dict(autoprobe=False, hold_vfs=[3]), 'hold_vfs: vf3 out of range'),
    (dict(hold_vfs=[0]), 'needs autoprobe: false'),
    (dict(autoprobe=False, hold_vfs=[0], persistent=False), 'needs persistent: true'),
])
def test_bad_hold_vfs_are_refused_before_anything_changes(host, options, message):
    before = HostSnapshot.take(host.root)
    with pytest.raises(SriovError, match=message):
        plan(host, PF, 2, **options).apply()
    assert_unchanged(before, host.root)


# ---- VFs by PF and index ------------------------------------------------------------------------

def test_vf_references_resolve_through_the_virtfn_links(host):
    plan(host, PF, 2).apply()
    sysfs = KernelSysfs(host)
    assert parse_vf_reference('03:00.0/vf1') == (PF, 1)
    assert parse_vf_reference(PLAIN) is None
    devices, names = resolve_vf_references(sysfs, ['03:00.0/vf1', PLAIN])
    assert devices == [host.vf_address(PF, 1), PLAIN]
    assert names == {host.vf_address(PF, 1): '%s/vf1' % PF}


@pytest.mark.parametrize('reference, words', [
    ('%s/vf2' % PF, ['VF index 2 is out of range', '2 VFs enabled', 'indexes 0-1']),
    ('%s/vf0' % PF2, ['VF index 0 is out of range', 'no VF enabled']),
    ('%s/vf0' % PLAIN, ['%s has no SR-IOV capability' % PLAIN]),
    ('03:00.9/vf0', ["'03:00.9' is not a PCI function address"]),
    ('0000:0a:00.0/vf0', ['there is no PCI function 0000:0a:00.0']),
])
def test_bad_vf_references_are_named(host, reference, words):
    plan(host, PF, 2).apply()
    with pytest.raises(SriovError) as caught:
        resolve_vf_references(KernelSysfs(host), [reference])
    for word in [reference] + words:
        assert word in str(caught.value)
