# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The binding engine against a fake sysfs that behaves like the kernel and a libxl-like xl."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import re

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.binding import (
    ACTION_BIND, ACTION_RELEASE, DevicePlan, PassthroughError, open_binder, rollback_message, safety_refusals,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import DriverJournal
from ansible_collections.xenpci.passthrough.tests.unit.conftest import (
    E1000_A, E1000_B, HOST_BRIDGE, MGMT_NIC, MULTI_0, MULTI_1, ROOT_DISK, VGA, XHCI, build_rig_host,
)
from ansible_collections.xenpci.passthrough.tests.unit.fakes.config_space import config_space
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import DOMID_IO, FakeXen


def binder(kernel, xen, **options):
    return open_binder(kernel.paths, xen.commands, sysfs=xen.sysfs, uname=kernel.uname, **options)


def journal(kernel):
    return DriverJournal(kernel.paths).load()


def by_address(result):
    return dict((device['address'], device) for device in result['devices'])


def tree_snapshot(kernel):
    """Every driver link, the slots, overrides and the journal: what a refused run must not change."""
    drivers = dict((address, kernel.driver(address)) for address in sorted(kernel._devices))
    overrides = dict((address, kernel.override(address)) for address in sorted(kernel._devices))
    journal_bytes = open(kernel.paths.journal, 'rb').read() if os.path.exists(kernel.paths.journal) else None
    return drivers, overrides, kernel.slots(), journal_bytes


# ---- assigning ---------------------------------------------------------------------------------
def test_assign_binds_a_list_in_one_call_and_records_original_drivers(kernel, xen):
    result = binder(kernel, xen).ensure(['00:03.0', E1000_B], 'present')
    assert result['changed'] is True
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'pciback'
    assert kernel.slots() == [E1000_A, E1000_B]
    entries = journal(kernel)
    assert entries[E1000_A]['original_driver'] == 'e1000' and entries[E1000_A]['phase'] == 'held'
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'
    assert xen.owner == {E1000_A: DOMID_IO, E1000_B: DOMID_IO}
    devices = by_address(result)
    assert devices[E1000_A]['driver_before'] == 'e1000' and devices[E1000_A]['driver_after'] == 'pciback'
    assert devices[E1000_A]['quarantined'] is True


def test_libxl_driver_path_is_written_before_xl_quarantines(kernel, xen):
    binder(kernel, xen).ensure([E1000_A], 'present')
    assert xen.driver_path_at_add[E1000_A] == '/sys/bus/pci/drivers/e1000'


def test_second_run_changes_nothing_and_writes_nothing(kernel, xen):
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    writes, calls = len(kernel.writes), len(xen.calls)
    result = binder(kernel, xen).ensure([E1000_A, '00:04.0'], 'present')
    assert result['changed'] is False
    assert [device['action'] for device in result['devices']] == ['unchanged', 'unchanged']
    assert len(kernel.writes) == writes
    assert not [call for call in xen.calls[calls:] if call[:2] == ['xl', 'pci-assignable-add']]


def test_check_mode_reports_the_change_and_touches_nothing(kernel, xen):
    before = tree_snapshot(kernel)
    result = binder(kernel, xen, check_mode=True).ensure([E1000_A], 'present')
    assert result['changed'] is True
    assert by_address(result)[E1000_A]['driver_after'] == 'pciback'
    assert tree_snapshot(kernel) == before and kernel.writes == []
    assert xen.store == {}


def test_reset_writes_the_reset_file_after_binding(kernel, xen):
    resets = kernel.resets.get(E1000_A, 0)
    result = binder(kernel, xen, reset=True).ensure([E1000_A], 'present')
    assert by_address(result)[E1000_A]['reset'] is True
    assert (os.path.relpath(os.path.join(kernel.paths.pci_devices, E1000_A, 'reset'), kernel.root), '1') in kernel.writes
    assert kernel.resets[E1000_A] == resets + 2     # pciback's own reset on bind, then ours


def test_a_foreign_driver_override_is_cleared_for_pciback_and_given_back(kernel, xen):
    xen.sysfs.set_driver_override(E1000_A, 'vfio-pci')
    binder(kernel, xen).ensure([E1000_A], 'present')
    assert kernel.driver(E1000_A) == 'pciback'
    assert journal(kernel)[E1000_A]['original_override'] == 'vfio-pci'
    kernel.driver_ids.setdefault('vfio-pci', set())
    kernel.add_driver('vfio-pci')
    binder(kernel, xen).ensure([E1000_A], 'absent')
    assert kernel.override(E1000_A) == 'vfio-pci'


def test_pciback_is_loaded_when_it_is_a_module(tmp_path):
    kernel = build_rig_host(str(tmp_path), pciback_loaded=False)
    xen = FakeXen(kernel)
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    assert kernel.driver(E1000_A) == 'pciback'
    assert 'loaded xen-pciback' in result['notes']


def test_without_xenstored_the_device_is_bound_in_sysfs_only(tmp_path):
    kernel = build_rig_host(str(tmp_path))
    xen = FakeXen(kernel, running=False)
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    assert kernel.driver(E1000_A) == 'pciback'
    assert xen.store == {} and xen.calls == []
    assert any('xenstored is not running' in note for note in result['notes'])
    assert by_address(result)[E1000_A]['quarantined'] is None


def test_hypervisor_without_pci_passthrough_is_reported_not_failed(tmp_path):
    kernel = build_rig_host(str(tmp_path), arch='aarch64')
    xen = FakeXen(kernel, quarantine=False)              # Debian 12's arm64 Xen 4.17, as on the arm64 rig
    check = binder(kernel, xen, check_mode=True).ensure([E1000_A, E1000_B], 'present')
    assert 'Xen 4.17 on aarch64 has no PCI passthrough support' in check['hypervisor_limit']
    result = binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert result['changed'] is True
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'pciback'
    assert by_address(result)[E1000_A]['quarantined'] is False
    assert result['hypervisor_limit'] == check['hypervisor_limit']
    assert any('no PCI passthrough support' in note for note in result['notes'])
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'
    assert not [call for call in xen.calls if call[:2] == ['xl', 'pci-assignable-add']]
    assert binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')['changed'] is False
    back = binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')
    assert back['hypervisor_limit'] == check['hypervisor_limit']    # given back without xl
    assert not [call for call in xen.calls if call[:2] == ['xl', 'pci-assignable-remove']]
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'


def test_a_hypervisor_that_claims_an_iommu_but_refuses_to_quarantine_off_x86(tmp_path):
    """A Xen that says directio but is built without PCI passthrough: xl fails once, then is not asked again."""
    kernel = build_rig_host(str(tmp_path), arch='aarch64', xen_version=(4, 21))
    xen = FakeXen(kernel, quarantine=False, directio=True)
    result = binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert result['changed'] is True
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'pciback'
    assert [device['quarantined'] for device in result['devices']] == [False, False]
    assert 'Xen 4.21 on aarch64 has no PCI passthrough support' in result['hypervisor_limit']
    assert 'failed to quarantine %s' % E1000_A in result['hypervisor_limit']
    assert len([call for call in xen.calls if call[:2] == ['xl', 'pci-assignable-add']]) == 1
    assert journal(kernel)[E1000_A]['quarantined_boot'] is None
    released = binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')
    assert released['changed'] is True
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'
    assert kernel.slots() == [] and journal(kernel) == {}


def test_a_pciback_that_needs_a_pci_reset_xen_lacks_fails_and_puts_the_batch_back(tmp_path):
    """Debian 13 on arm64: Linux 6.12's xen-pciback asks Xen to reset the device, Xen 4.20 answers ENOSYS."""
    kernel = build_rig_host(str(tmp_path), arch='aarch64', xen_version=(4, 20))
    xen = FakeXen(kernel, quarantine=False)
    bind = os.path.relpath(os.path.join(kernel.paths.pci_drivers, 'pciback', 'bind'), kernel.root)
    kernel.fail_write(bind, errno.ENOSYS, times=2)
    with pytest.raises(PassthroughError) as caught:
        binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    message = str(caught.value)
    assert message.startswith('%s: xen-pciback cannot take the device: Xen 4.20 on aarch64 has no PCI passthrough '
                              'support and answers ENOSYS to the PCI device reset' % E1000_A)
    assert 'pciback can hold no device on this host' in message and 'put back' in message
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'
    assert kernel.slots() == [] and journal(kernel) == {}
    assert xen.record(E1000_A, 'driver_path') is None
    assert not [call for call in xen.calls if call[:2] == ['xl', 'pci-assignable-add']]


def test_on_x86_a_refused_quarantine_is_still_a_failure(tmp_path):
    kernel = build_rig_host(str(tmp_path))
    xen = FakeXen(kernel, quarantine=False, directio=True)
    with pytest.raises(PassthroughError, match='failed to quarantine'):
        binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'
    assert journal(kernel) == {}


def test_x86_with_an_iommu_reports_no_hypervisor_limit(kernel, xen):
    assert binder(kernel, xen).ensure([E1000_A], 'present')['hypervisor_limit'] is None


def test_a_run_that_changes_nothing_asks_xen_nothing(kernel, xen):
    """Held and quarantined in this boot: no xl at all, only the two reads of libxl's records."""
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    del xen.calls[:]
    result = binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert result['changed'] is False and result['hypervisor_limit'] is None
    assert [call[0] for call in xen.calls] == ['xenstore-ls', 'xenstore-ls'], xen.calls


def test_records_of_devices_given_back_go_in_one_xenstore_rm(kernel, xen):
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    del xen.calls[:]
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')
    removals = [call for call in xen.calls if call[0] == 'xenstore-rm']
    assert len(removals) == 1 and len(removals[0]) == 3, removals
    assert xen.record(E1000_A, 'driver_path') is None and xen.record(E1000_B, 'driver_path') is None
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'


def test_a_record_that_cannot_be_removed_does_not_keep_the_others(kernel, xen):
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    first = xen._xs_key(E1000_A, 'driver_path')
    xen.fail_commands['xenstore-rm ' + first] = [1, 1]      # the batch and then the first path alone fail
    result = binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')
    assert xen.record(E1000_B, 'driver_path') is None and xen.record(E1000_A, 'driver_path') is not None
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'
    assert any('could not remove libxl driver_path records' in note for note in result['notes']), result['notes']


def test_after_a_reboot_a_held_device_is_quarantined_again_once(kernel, xen):
    binder(kernel, xen).ensure([E1000_A], 'present')
    xen.owner.clear()                      # the hypervisor forgets quarantine on reboot
    kernel.set_boot_id('0f0e0d0c-0000-4000-8000-000000000002')
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    assert by_address(result)[E1000_A]['action'] == 'adopted'
    assert xen.owner == {E1000_A: DOMID_IO}
    assert binder(kernel, xen).ensure([E1000_A], 'present')['changed'] is False


def test_after_a_reboot_xen_is_asked_once_before_the_held_devices_are_quarantined_again(kernel, xen):
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    xen.owner.clear()
    kernel.set_boot_id('0f0e0d0c-0000-4000-8000-000000000002')
    del xen.calls[:]
    result = binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert [device['action'] for device in result['devices']] == ['adopted', 'adopted']
    assert [' '.join(call) for call in xen.calls if call[0] == 'xl'] == [
        'xl info', 'xl pci-assignable-add %s' % E1000_A, 'xl pci-assignable-add %s' % E1000_B]


def test_after_a_reboot_libxl_records_come_back_where_xen_cannot_quarantine(tmp_path):
    """arm64 rig: a reboot loses xenstore; held devices are adopted once, to write libxl's driver_path again."""
    kernel = build_rig_host(str(tmp_path), arch='aarch64')
    xen = FakeXen(kernel, quarantine=False)
    binder(kernel, xen).ensure([E1000_A], 'present')
    for key in [key for key in xen.store if key.startswith('/libxl/')]:
        del xen.store[key]                 # xenstore lives in memory
    kernel.set_boot_id('0f0e0d0c-0000-4000-8000-000000000002')
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    device = by_address(result)[E1000_A]
    assert (device['action'], device['original_driver'], device['quarantined']) == ('adopted', 'e1000', False)
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'
    assert binder(kernel, xen).ensure([E1000_A], 'present')['changed'] is False


def test_a_device_hidden_at_boot_is_adopted_and_released_to_the_driver_the_kernel_picks(tmp_path):
    kernel = build_rig_host(str(tmp_path), pciback_loaded=False)
    xen = FakeXen(kernel)
    xen.sysfs.unbind(E1000_A, 'e1000')        # as if pciback's hide= took it before e1000 loaded
    kernel.load_pciback(hide='(%s)' % E1000_A)
    assert kernel.driver(E1000_A) == 'pciback'
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    assert by_address(result)[E1000_A]['action'] == 'adopted'
    result = binder(kernel, xen).ensure([E1000_A], 'absent')
    assert kernel.driver(E1000_A) == 'e1000'
    assert by_address(result)[E1000_A]['original_driver_source'] == 'kernel probe'


# ---- releasing ---------------------------------------------------------------------------------
def test_release_gives_back_the_original_driver_and_clears_every_record(kernel, xen):
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    result = binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')
    assert result['changed'] is True
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'
    assert kernel.slots() == [] and xen.owner == {}
    assert journal(kernel) == {}
    assert xen.record(E1000_A, 'driver_path') is None
    assert binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')['changed'] is False


def test_release_clears_a_driver_override_left_at_pciback(kernel, xen):
    xen.sysfs.unbind(E1000_A, 'e1000')
    xen.sysfs.set_driver_override(E1000_A, 'pciback')
    xen.sysfs.bind(E1000_A, 'pciback')
    binder(kernel, xen).ensure([E1000_A], 'absent')
    assert kernel.override(E1000_A) is None
    assert kernel.driver(E1000_A) == 'e1000'


def test_release_uses_the_recorded_driver_not_a_name_guessed_from_modalias(kernel, xen):
    kernel.module_drivers['xhci_hcd'] = set([('1b36', '000d')])
    binder(kernel, xen).ensure([XHCI], 'present')
    os.unlink(os.path.join(kernel.paths.pci_drivers, 'xhci_hcd', 'bind'))  # the module was unloaded meanwhile
    import shutil
    shutil.rmtree(os.path.join(kernel.paths.pci_drivers, 'xhci_hcd'))
    del kernel.driver_ids['xhci_hcd']
    binder(kernel, xen).ensure([XHCI], 'absent')
    assert kernel.driver(XHCI) == 'xhci_hcd'
    assert ['modprobe', '-q', xen.sysfs.attribute(XHCI, 'modalias')] in xen.calls


def test_restore_false_leaves_the_device_driverless_and_keeps_the_record(kernel, xen):
    binder(kernel, xen).ensure([E1000_A], 'present')
    binder(kernel, xen).ensure([E1000_A], 'absent', restore=False)
    assert kernel.driver(E1000_A) is None
    assert journal(kernel)[E1000_A]['phase'] == 'released'
    assert binder(kernel, xen).ensure([E1000_A], 'absent', restore=False)['changed'] is False
    binder(kernel, xen).ensure([E1000_A], 'absent')
    assert kernel.driver(E1000_A) == 'e1000' and journal(kernel) == {}


# ---- interplay with xl ---------------------------------------------------------------------------
def test_a_device_assigned_by_xl_is_given_back_by_the_module(kernel, xen):
    rc, _out, err = xen.run(['xl', 'pci-assignable-add', E1000_A])
    assert rc == 0, err
    result = binder(kernel, xen).ensure([E1000_A], 'absent')
    assert kernel.driver(E1000_A) == 'e1000'
    assert by_address(result)[E1000_A]['original_driver_source'] == 'xenstore'
    assert xen.owner == {} and xen.record(E1000_A, 'driver_path') is None


def test_a_device_assigned_by_the_module_is_given_back_by_xl_remove_r(kernel, xen):
    binder(kernel, xen).ensure([E1000_A], 'present')
    rc, _out, err = xen.run(['xl', 'pci-assignable-remove', '-r', E1000_A])
    assert rc == 0 and 'not rebinding' not in err
    assert kernel.driver(E1000_A) == 'e1000'
    assert binder(kernel, xen).ensure([E1000_A], 'absent')['changed'] is True   # stale journal entry dropped
    assert journal(kernel) == {}


def test_xl_lists_exactly_the_assigned_devices(kernel, xen):
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    _rc, out, _err = xen.run(['xl', 'pci-assignable-list'])
    assert out.split() == [E1000_A, E1000_B]


# ---- refusals: each a clear error, nothing changed ----------------------------------------------
@pytest.mark.parametrize('device, reason', [
    (MGMT_NIC, 'carries the default route (enp0s2)'),
    (ROOT_DISK, 'holds the root file system'),
    (VGA, 'is the boot VGA device'),
    (HOST_BRIDGE, 'is a bridge'),
])
def test_devices_the_host_needs_are_refused(kernel, xen, device, reason):
    before = tree_snapshot(kernel)
    with pytest.raises(PassthroughError, match=re.escape(reason)) as caught:
        binder(kernel, xen).ensure([E1000_A, device], 'present')
    assert tree_snapshot(kernel) == before and kernel.writes == []
    assert xen.store == {}
    assert [(d['action'], d['driver_after']) for d in caught.value.results] == [
        ('unchanged', 'e1000'), ('unchanged', kernel.driver(device))]


def test_the_connection_to_the_controller_is_refused(kernel, xen):
    kernel.add_route('ens4', '192.168.50.0', 24)
    with pytest.raises(PassthroughError, match='connection to the controller 192.168.50.7'):
        binder(kernel, xen, controller_address='192.168.50.7').ensure([E1000_B], 'present')
    assert kernel.driver(E1000_B) == 'e1000'


def test_force_takes_a_device_the_host_needs(kernel, xen):
    binder(kernel, xen, force=True).ensure([MGMT_NIC], 'present')
    assert kernel.driver(MGMT_NIC) == 'pciback'


def test_a_partial_iommu_group_is_refused(tmp_path):
    kernel = build_rig_host(str(tmp_path))
    for address in (MULTI_0, MULTI_1):
        group = os.path.join(kernel.paths.sys, 'kernel', 'iommu_groups', '7', 'devices')
        os.makedirs(group, exist_ok=True)
        os.symlink(os.path.join(kernel.paths.pci_devices, address), os.path.join(group, address))
        os.symlink(os.path.dirname(group), os.path.join(kernel.paths.pci_devices, address, 'iommu_group'))
    xen = FakeXen(kernel)
    with pytest.raises(PassthroughError, match=r'0000:00:06.0 cannot be isolated from 0000:00:06.1, which stay on dom0 '
                                               r'drivers \(IOMMU group 7 \(Linux\)\)'):
        binder(kernel, xen).ensure([MULTI_0], 'present')
    assert kernel.driver(MULTI_0) == 'igb'
    binder(kernel, xen).ensure([MULTI_0, MULTI_1], 'present')
    assert kernel.driver(MULTI_0) == kernel.driver(MULTI_1) == 'pciback'


def add_conventional_pair(kernel):
    """Two functions of one conventional PCI device (as QEMU's multi-function e1000), and a PCI bridge with one behind."""
    pair = ['0000:00:09.0', '0000:00:09.1']
    for address in pair:
        kernel.add_device(address, driver='e1000', config=config_space(multifunction=True))
    kernel.add_device('0000:00:0b.0', vendor='1b36', device='0001', class_code='060400', reset_methods=None,
                      config=config_space('1b36', '0001', bridge=True))
    kernel.add_device('0000:05:01.0', driver='e1000', parent='0000:00:0b.0', config=config_space())
    return pair


def test_without_linux_groups_a_set_from_the_topology_is_refused_in_part(kernel, xen):
    pair = add_conventional_pair(kernel)
    before = tree_snapshot(kernel)
    with pytest.raises(PassthroughError, match=r'0000:00:09.0 cannot be isolated from 0000:00:09.1, which stay on dom0 '
                                               r'drivers \(0000:00:09.0, 0000:00:09.1 are functions of one '
                                               r'multi-function device without ACS isolation\)'):
        binder(kernel, xen).ensure([pair[0]], 'present')
    assert tree_snapshot(kernel) == before
    # The bridge is in the set of the device behind it, but is neither moved nor in the way.
    binder(kernel, xen).ensure(['0000:05:01.0'], 'present')
    assert kernel.driver('0000:05:01.0') == 'pciback' and kernel.driver('0000:00:0b.0') is None
    binder(kernel, xen).ensure(pair, 'present')
    assert [kernel.driver(address) for address in pair] == ['pciback'] * 2


def test_force_takes_one_member_of_a_set(kernel, xen):
    pair = add_conventional_pair(kernel)
    binder(kernel, xen, force=True).ensure([pair[1]], 'present')
    assert [kernel.driver(address) for address in pair] == ['e1000', 'pciback']


def test_a_set_whose_other_members_have_no_driver_is_not_refused(kernel, xen):
    pair = add_conventional_pair(kernel)
    xen.sysfs.unbind(pair[1], 'e1000')
    binder(kernel, xen).ensure([pair[0]], 'present')
    assert [kernel.driver(address) for address in pair] == ['pciback', None]


def test_functions_all_moves_every_function_of_the_device_named(kernel, xen):
    pair = add_conventional_pair(kernel)
    result = binder(kernel, xen, functions='all').ensure([pair[1]], 'present')
    assert [device['address'] for device in result['devices']] == pair
    assert [kernel.driver(address) for address in pair] == ['pciback'] * 2
    binder(kernel, xen, functions='all').ensure([pair[0]], 'absent')
    assert [kernel.driver(address) for address in pair] == ['e1000'] * 2
    with pytest.raises(PassthroughError, match='no such PCI device: 0000:00:09.2'):
        binder(kernel, xen, functions='all').ensure(['0000:00:09.2'], 'present')


def test_a_device_without_a_reset_is_warned_about_or_refused(kernel, xen):
    kernel.add_device('0000:00:09.0', driver='e1000', reset_methods=None)
    before = tree_snapshot(kernel)
    with pytest.raises(PassthroughError, match='0000:00:09.0 offers no reset the kernel can do'):
        binder(kernel, xen, require_reset=True).ensure(['0000:00:09.0'], 'present')
    assert tree_snapshot(kernel) == before
    warned = binder(kernel, xen)
    warned.ensure(['0000:00:09.0'], 'present')
    assert kernel.driver('0000:00:09.0') == 'pciback'
    assert warned.warnings == ['0000:00:09.0 offers no reset the kernel can do (no FLR, power-management, bus or slot '
                               'reset): a guest may get it in the state its last user left it (require_reset: true '
                               'refuses such a device)']
    assert binder(kernel, xen, require_reset=True).ensure([E1000_A], 'present')['changed'] is True


def test_a_device_used_by_a_guest_is_not_released(kernel, xen):
    binder(kernel, xen).ensure([E1000_A], 'present')
    xen.attach(E1000_A, 5)
    before = tree_snapshot(kernel)
    with pytest.raises(PassthroughError, match='assigned to domain 5'):
        binder(kernel, xen).ensure([E1000_A], 'absent')
    assert tree_snapshot(kernel) == before


def test_the_safety_refusals_are_computed_from_what_they_are_given_alone():
    """No host at all: the plans, the request, libxl's records and an inventory as read_devices,
    find_host_needs and coassignment_sets return them."""
    nic, sibling, held = '0000:00:03.0', '0000:00:03.1', '0000:00:05.0'
    plans = [DevicePlan(nic, 'present', ACTION_BIND, True, ('e1000', None, False), None, 'e1000', 'current driver'),
             DevicePlan(held, 'absent', ACTION_RELEASE, True, ('pciback', None, True),
                        {'phase': 'releasing', 'original_driver': 'e1000'}, 'e1000', 'journal')]
    devices = {nic: {'bridge': False, 'class': '020000', 'reset_methods': [], 'driver': 'e1000'},
               sibling: {'bridge': False, 'class': '020000', 'reset_methods': ['flr'], 'driver': 'e1000'}}
    inventory = (devices, {nic: ['carries the default route (eth0)']},
                 {nic: {'devices': [nic, sibling], 'reasons': ['IOMMU group 1 (Linux)']}})
    records = {held: {'domid': '3'}}
    refusals, warnings = safety_refusals(plans, [nic], records, inventory)
    assert refusals == [
        '%s carries the default route (eth0)' % nic,
        '%s cannot be isolated from %s, which stay on dom0 drivers (IOMMU group 1 (Linux)); a guest needs the whole '
        'set: list them too' % (nic, sibling),
        '%s is assigned to domain 3; detach it from the guest first (xl pci-detach)' % held]
    assert warnings == ['%s offers no reset the kernel can do (no FLR, power-management, bus or slot reset): a guest '
                        'may get it in the state its last user left it (require_reset: true refuses such a device)' % nic]
    assert safety_refusals(plans, [nic], records, inventory, require_reset=True)[0][1].startswith(nic + ' offers no reset')
    assert safety_refusals(plans, [nic, held], records, None, force=True) == ([], [])
    assert safety_refusals(plans, [nic], records, None, force=True)[0] == [refusals[-1]]    # not named: force or not


@pytest.mark.parametrize('bad', ['0000:03:00', '03:*.*', '../../../etc/passwd', '0000:00:03.0\n', '00:03.0;reboot'])
def test_malformed_addresses_change_nothing(kernel, xen, bad):
    before = tree_snapshot(kernel)
    with pytest.raises(PassthroughError, match='invalid device address'):
        binder(kernel, xen).ensure([E1000_A, bad], 'present')
    assert tree_snapshot(kernel) == before and kernel.writes == [] and xen.calls == []


def test_a_missing_device_changes_nothing(kernel, xen):
    with pytest.raises(PassthroughError, match='no such PCI device: 0000:00:1f.0'):
        binder(kernel, xen).ensure([E1000_A, '00:1f.0'], 'present')
    assert kernel.driver(E1000_A) == 'e1000' and kernel.writes == []


@pytest.mark.parametrize('options, message', [
    ({'xen': False}, 'not running on Xen'),
    ({'dom0': False}, 'not dom0'),
])
def test_a_host_that_is_not_a_dom0_is_refused(tmp_path, options, message):
    kernel = build_rig_host(str(tmp_path), pciback_loaded=False, **options)
    xen = FakeXen(kernel)
    with pytest.raises(PassthroughError, match=message):
        binder(kernel, xen).ensure([E1000_A], 'present')
    assert kernel.writes == []


@pytest.mark.parametrize('arch, symbol', [('x86_64', 'CONFIG_XEN_PCIDEV_BACKEND'), ('aarch64', 'CONFIG_XEN_PCIDEV_STUB')])
def test_a_kernel_without_pciback_is_refused_naming_the_option_for_the_arch(tmp_path, arch, symbol):
    kernel = build_rig_host(str(tmp_path), arch=arch, pciback_loaded=False, pciback_build='absent')
    xen = FakeXen(kernel)
    with pytest.raises(PassthroughError, match='lacks %s' % symbol):
        binder(kernel, xen).ensure([E1000_A], 'present')
    assert kernel.driver(E1000_A) == 'e1000'


def test_a_damaged_journal_stops_the_run_before_any_change(kernel, xen):
    binder(kernel, xen).ensure([E1000_A], 'present')
    with open(kernel.paths.journal, 'w') as handle:
        handle.write('{"format": 1, "devices": {"0000:00:03.0": ')
    with pytest.raises(Exception, match='not valid JSON'):
        binder(kernel, xen).ensure([E1000_B], 'present')
    assert kernel.driver(E1000_B) == 'e1000'


def test_a_journal_replaced_by_a_symlink_is_refused(kernel, xen, tmp_path):
    binder(kernel, xen).ensure([E1000_A], 'present')
    target = tmp_path / 'elsewhere.json'
    target.write_text(open(kernel.paths.journal).read())
    os.unlink(kernel.paths.journal)
    os.symlink(str(target), kernel.paths.journal)
    with pytest.raises(Exception, match='symbolic link'):
        binder(kernel, xen).ensure([E1000_B], 'present')
    assert kernel.driver(E1000_B) == 'e1000'


# ---- failures part-way: roll back ------------------------------------------------------------------
def test_a_failed_bind_rolls_back_the_whole_batch(kernel, xen):
    kernel.refuse['pciback'] = set([MULTI_0])
    with pytest.raises(PassthroughError) as caught:
        binder(kernel, xen).ensure([E1000_A, E1000_B, MULTI_0], 'present')
    assert 'put back' in str(caught.value) and MULTI_0 in str(caught.value)
    assert (kernel.driver(E1000_A), kernel.driver(E1000_B), kernel.driver(MULTI_0)) == ('e1000', 'e1000', 'igb')
    assert kernel.slots() == []
    assert journal(kernel) == {}
    assert xen.record(E1000_A, 'driver_path') is None and xen.owner == {}


def test_a_failed_libxl_record_write_moves_nothing_and_leaves_the_journal_to_the_next_run(kernel, xen):
    xen.fail_commands['xenstore-write ' + xen._xs_key(E1000_A, 'driver_path')] = [1]
    with pytest.raises(PassthroughError, match='cannot write libxl records to xenstore: .*; nothing was moved$'):
        binder(kernel, xen).ensure([E1000_A], 'present')
    assert kernel.driver(E1000_A) == 'e1000' and kernel.slots() == []
    assert journal(kernel)[E1000_A]['phase'] == 'binding'         # as an interruption leaves it
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    assert by_address(result)[E1000_A]['recovered'] is True and kernel.driver(E1000_A) == 'pciback'


def test_a_failed_quarantine_rolls_back_the_whole_batch(kernel, xen):
    xen.fail_commands['xl pci-assignable-add'] = [None, 1]
    with pytest.raises(PassthroughError, match='injected failure'):
        binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'
    assert xen.owner == {} and journal(kernel) == {}


def test_a_driver_that_will_not_take_its_device_back_leaves_it_on_pciback_not_orphaned(kernel, xen):
    kernel.refuse['pciback'] = set([E1000_B])
    kernel.refuse['e1000'] = set([E1000_A])
    with pytest.raises(PassthroughError, match='held by pciback'):
        binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert kernel.driver(E1000_A) == 'pciback'
    assert kernel.driver(E1000_B) == 'e1000'
    assert journal(kernel)[E1000_A]['original_driver'] == 'e1000'
    kernel.refuse.clear()
    binder(kernel, xen).ensure([E1000_A], 'absent')
    assert kernel.driver(E1000_A) == 'e1000'


def test_a_device_unplugged_part_way_leaves_no_pciback_slot_behind(kernel, xen):
    """The batch's last device leaves the bus once the first is on pciback: the rest go back, and
    when the device comes back (rescan), its own driver takes it, not a slot left by the rollback."""
    pciback_bind = os.path.relpath(os.path.join(kernel.paths.pci_drivers, 'pciback', 'bind'), kernel.root)
    kernel.after_next_write(pciback_bind, lambda: kernel.unplug(MULTI_1))
    with pytest.raises(PassthroughError) as failure:
        binder(kernel, xen).ensure([E1000_A, E1000_B, MULTI_0, MULTI_1], 'present')
    message = str(failure.value)
    assert message.startswith(MULTI_1 + ': No such device') and 'left the PCI bus' in message, message
    assert [kernel.driver(address) for address in (E1000_A, E1000_B, MULTI_0)] == ['e1000', 'e1000', 'igb']
    assert kernel.slots() == [] and journal(kernel) == {}
    assert xen.owner == {}
    assert [xen.record(address, 'driver_path') for address in (E1000_A, E1000_B, MULTI_0, MULTI_1)] == [None] * 4
    kernel.rescan()
    assert kernel.driver(MULTI_1) == 'igb'


def test_a_device_that_left_the_bus_and_one_parked_on_pciback_are_both_named(kernel, xen):
    """Two things go wrong in one rollback: the failure's message names the device gone and the device held by
    pciback, each with its own reason, and neither hides the other."""
    pciback_bind = os.path.relpath(os.path.join(kernel.paths.pci_drivers, 'pciback', 'bind'), kernel.root)
    kernel.after_next_write(pciback_bind, lambda: kernel.unplug(MULTI_1))
    kernel.refuse['e1000'] = set([E1000_A])
    with pytest.raises(PassthroughError) as failure:
        binder(kernel, xen).ensure([E1000_A, E1000_B, MULTI_0, MULTI_1], 'present')
    message = str(failure.value)
    assert message.startswith(MULTI_1 + ': No such device'), message
    assert '%s left the PCI bus during the run' % MULTI_1 in message, message
    assert 'except %s, held by pciback because its driver would not take it back' % E1000_A in message, message
    assert [kernel.driver(address) for address in (E1000_A, E1000_B, MULTI_0)] == ['pciback', 'e1000', 'igb']
    assert kernel.slots() == [E1000_A]
    assert set(journal(kernel)) == set([E1000_A]) and journal(kernel)[E1000_A]['phase'] == 'held'
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'
    assert [xen.record(address, 'driver_path') for address in (E1000_B, MULTI_0, MULTI_1)] == [None] * 3
    devices = by_address({'devices': failure.value.results})
    assert (devices[E1000_A]['driver_after'], devices[MULTI_1]['driver_after']) == ('pciback', None)


@pytest.mark.parametrize('gone, parked, tail', [
    ((), (), 'every device of this batch was put back as it was'),
    (('B',), (), 'B left the PCI bus during the run; every other device of this batch was put back as it was'),
    ((), ('C',), 'the batch was put back, except C, held by pciback because its driver would not take it back'),
    (('B',), ('C', 'D'), 'B left the PCI bus during the run; the rest of the batch was put back, except C, D, held by '
                         'pciback because its driver would not take it back'),
])
def test_the_rollback_message_says_every_cause(gone, parked, tail):
    assert rollback_message('A', 'No such device (ENODEV)', gone, parked) == 'A: No such device (ENODEV); ' + tail


def test_a_failed_give_back_puts_the_released_batch_back_on_pciback(kernel, xen):
    binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    kernel.fail_write(os.path.relpath(os.path.join(kernel.paths.pci_drivers, 'e1000', 'bind'), kernel.root), errno.EIO, times=1)
    kernel.refuse['e1000'] = set([E1000_B])
    with pytest.raises(PassthroughError):
        binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'pciback'
    assert set(journal(kernel)) == set([E1000_A, E1000_B])
    assert all(entry['original_driver'] == 'e1000' for entry in journal(kernel).values())


# ---- interrupted runs: the next run finishes or undoes ---------------------------------------------
def interrupt_between_unbind_and_bind(kernel, xen, address):
    """What kill -9 leaves: the journal says 'binding', the device was unbound, pciback never bound it."""
    entries = {address: {'original_driver': kernel.driver(address), 'phase': 'binding',
                         'quarantined_boot': None, 'original_override': None}}
    DriverJournal(kernel.paths).save(entries)
    xen.sysfs.unbind(address, kernel.driver(address))


def test_an_interrupted_assignment_is_finished_by_the_next_run(kernel, xen):
    interrupt_between_unbind_and_bind(kernel, xen, E1000_A)
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    assert kernel.driver(E1000_A) == 'pciback'
    assert by_address(result)[E1000_A]['recovered'] is True
    assert journal(kernel)[E1000_A]['original_driver'] == 'e1000'
    assert binder(kernel, xen).ensure([E1000_A], 'absent')['changed'] is True
    assert kernel.driver(E1000_A) == 'e1000'


def test_an_interrupted_device_not_named_again_goes_back_to_its_driver(kernel, xen):
    interrupt_between_unbind_and_bind(kernel, xen, E1000_A)
    result = binder(kernel, xen).ensure([E1000_B], 'present')
    assert kernel.driver(E1000_A) == 'e1000' and kernel.driver(E1000_B) == 'pciback'
    assert by_address(result)[E1000_A]['recovered'] is True
    assert set(journal(kernel)) == set([E1000_B])


def test_journal_is_written_atomically_with_a_private_mode(kernel, xen):
    binder(kernel, xen).ensure([E1000_A], 'present')
    assert os.stat(kernel.paths.journal).st_mode & 0o777 == 0o600
    assert os.stat(kernel.paths.state_dir).st_mode & 0o777 == 0o700
    assert json.load(open(kernel.paths.journal))['format'] == 1
    assert [name for name in os.listdir(kernel.paths.state_dir) if name.startswith('.')] == []
