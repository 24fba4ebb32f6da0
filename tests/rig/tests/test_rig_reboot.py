# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Persistence across a real reboot of the dom0: devices assigned with ``assign_persistent`` are on xen-pciback
again after the rig reboots, the record of their original drivers is intact, and they can be given back.

The rig's initramfs carries only what mounts the root file system (see build-image), so the e1000 driver loads from
the root file system, where the pciback role's softdep makes xen-pciback load first and its hide list applies: the
path a Debian host takes when the NIC driver is not in the initramfs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from conftest import OPTIONS_FILE, SOFTDEP_FILE

# On the arm64 rigs the reboot is a slow test (make rig-test-full): make test reboots the x86_64 rig, the same
# persistence and adoption, with Xen's quarantine to restore besides; what differs on arm64 (adoption where Xen
# cannot quarantine) is a unit test of its own.
pytestmark = [pytest.mark.rig] + ([] if (os.environ.get('RIG_ARCH') or 'x86_64') == 'x86_64' else [pytest.mark.slow])


PREPARE = {'pciback_native_drivers': ['e1000'], 'pciback_manage_bootloader': False}


@pytest.fixture
def persistent(rig):
    """Leaves the rig as it was: devices on e1000, no hide list, no softdep, the running pciback's slots empty."""
    rig.require_pciback()
    yield rig
    rig.give_back(rig.nics)
    rig.ssh('rm -f %s %s' % (OPTIONS_FILE, SOFTDEP_FILE))


def test_persistent_assignment_survives_a_reboot(persistent, play):
    rig = persistent
    held = rig.nics[:2]                       # two e1000s, persistent
    bystander = rig.multifunction[0]          # an e1000 that nobody asked for
    assign = {'assign_devices': held, 'assign_persistent': True}
    assert [rig.driver(address) for address in held + [bystander]] == ['e1000'] * 3

    # The role has the initramfs regenerated for a changed softdep only where the initramfs can load a driver it
    # names (test_rig_roles shows it would for virtio_blk, which the rig's initramfs holds); the rig's holds no
    # e1000, so the run leaves it alone, and e1000 meets the softdep on the root file system at boot.
    initramfs = 'stat -c %Y /boot/initrd.img-$(uname -r)'
    built = rig.ssh(initramfs).stdout
    prepared = play('pciback', PREPARE)
    assert prepared.failed == 0 and 'regenerates the initramfs' not in prepared.output, prepared
    assert rig.ssh(initramfs).stdout == built
    assigned = play('assign', assign)
    assert assigned.failed == 0 and assigned.changed > 0, assigned
    assert [rig.driver(address) for address in held] == ['pciback'] * 2
    hide = ''.join('(%s)' % address for address in held)
    assert 'hide=%s' % hide in rig.files(OPTIONS_FILE)[OPTIONS_FILE]
    recorded = rig.recorded_drivers()
    assert {address: recorded.get(address) for address in held} == {address: 'e1000' for address in held}

    rig.reboot()

    # xen-pciback took them at boot, before e1000 could; the device nobody named is on e1000 as before.
    assert [rig.driver(address) for address in held] == ['pciback'] * 2
    assert rig.driver(bystander) == 'e1000'
    assert sorted(rig.ssh('xl pci-assignable-list').stdout.split()) == held
    assert rig.ssh('cat /sys/module/xen_pciback/parameters/hide').stdout.strip() == hide
    recorded = rig.recorded_drivers()
    assert {address: recorded.get(address) for address in held} == {address: 'e1000' for address in held}

    # What a reboot loses is Xen's side: its quarantine and libxl's records in xenstore (which lives in memory).
    # The next run adopts the devices: it takes their original driver from the journal and restores Xen's side;
    # after that the role has nothing to do, and giving the devices back restores e1000 from the record.
    adopted = rig.module('pci_assignable', {'devices': held})
    assert not adopted['failed'], adopted
    assert [(device['action'], device['original_driver'], device['original_driver_source'])
            for device in adopted['devices']] == [('adopted', 'e1000', 'journal')] * 2, adopted
    again = play('assign', assign)
    assert again.failed == 0 and again.changed == 0, again
    back = play('assign', dict(assign, assign_state='absent'))
    assert back.failed == 0 and back.changed > 0, back
    assert [rig.driver(address) for address in held] == ['e1000'] * 2
    assert rig.files(OPTIONS_FILE)[OPTIONS_FILE] is None                     # the hide list emptied, the file gone
    assert rig.ssh('xl pci-assignable-list').stdout.split() == []
