# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Boot-time hiding that stays right, across power cycles of the x86_64 rig.

Drift: two NICs of models found nowhere else on the rig (``Rig.drift``) boot at each other's address, as a card moved
to another slot while the host was off. The hide list still names the old address, so xen-pciback takes the other
card at boot: ``pci_info`` reports the drift, the ``assign`` role refuses, and with ``assign_follow_identity`` it
holds the recorded card where it is now, moves the hide list there and gives the other card back.

The initramfs race: the rig's initramfs carries only what mounts the root file system (build-image), so an e1000e's
driver loads from the root file system, after xen-pciback. Put into the initramfs, e1000e takes the hidden e1000e at
boot before xen-pciback can (``hidden_but_claimed``); the ``pciback`` role finds it, puts xen-pciback and a softdep
into the initramfs, and after ``update-initramfs -u -k all`` (what a kernel upgrade runs) and a power cycle (the rig
boots the initramfs on dom0's disk, as a boot loader would) xen-pciback holds the device.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from conftest import OPTIONS_FILE, SOFTDEP_FILE

pytestmark = [pytest.mark.rig, pytest.mark.power_cycle]

MODULES_FILE = '/etc/initramfs-tools/modules'

# The NIC drivers from the root file system load after xen-pciback; the role finds the initramfs's own.
PREPARE = {'pciback_native_drivers': ['e1000'], 'pciback_manage_bootloader': False}


def pci_info(rig, addresses):
    result = rig.module('pci_info', {'names': False})
    assert not result['failed'], result
    return {device['address']: device for device in result['devices'] if device['address'] in addresses}


@pytest.fixture
def drift_rig(rig):
    if len(rig.drift) != 2 or not rig.msi_nics:
        pytest.skip('the %s rig has no pair of NICs to move (x86_64 only)' % rig.arch)
    rig.require_pciback()
    devices = rig.drift + rig.msi_nics[:1]
    yield rig
    # The software as it was; the NICs stay where the last power cycle put them and the rig keeps booting dom0's
    # initramfs (these tests run last: see conftest).
    rig.give_back(devices)
    rig.ssh("rm -f %s %s; sed -i -e '/^e1000e$/d' -e '/^xen-pciback$/d' %s" % (OPTIONS_FILE, SOFTDEP_FILE, MODULES_FILE))


def test_drift_and_the_initramfs_race_across_power_cycles(drift_rig, play):
    rig = drift_rig
    first, second = rig.drift               # the 82545EM at the first address, the 82544GC at the second
    race = rig.msi_nics[0]                  # an e1000e, whose driver goes into the initramfs
    assign = {'assign_devices': [first, race], 'assign_persistent': True}

    prepared = play('pciback', PREPARE)
    assert prepared.failed == 0, prepared
    assigned = play('assign', assign)
    assert assigned.failed == 0 and assigned.changed > 0, assigned
    assert [rig.driver(address) for address in (first, race)] == ['pciback'] * 2
    rig.ssh('echo e1000e >> %s && update-initramfs -u' % MODULES_FILE, timeout=600)

    rig.power_cycle(swap='%s=%s' % (first, second))

    # The 82545EM is at the second address now, on e1000; xen-pciback took the 82544GC, which the hide list names now.
    assert rig.drift == [second, first] and rig.swap
    assert [rig.driver(address) for address in (first, second)] == ['pciback', 'e1000']
    # e1000e from the initramfs took the hidden e1000e before xen-pciback loaded.
    assert rig.driver(race) == 'e1000e'
    devices = pci_info(rig, (first, second, race))
    assert sorted(entry['source'] for entry in devices[first]['drift']) == ['hide', 'journal'], devices[first]
    assert devices[first]['drift'][0]['recorded']['device'] == '100f'          # the 82545EM was recorded there
    assert devices[first]['identity']['device'] == '100c'                      # the 82544GC is there now
    assert devices[first]['dom0_access'] == 'disabled' and not devices[second]['drift']
    assert devices[second]['dom0_access'] == 'enabled'
    assert devices[race]['dom0_access'] == 'hidden_but_claimed', devices[race]

    # The assign role refuses the drifted address, naming it; nothing changes.
    drivers, options = rig.drivers(), rig.files(OPTIONS_FILE)
    refused = play('assign', assign)
    assert refused.failed == 1 and first in refused.output and 'follow_identity' in refused.output, refused
    assert rig.drivers() == drivers and rig.files(OPTIONS_FILE) == options

    # Following the identity: the 82545EM held where it is now, the hide list moved, the 82544GC given back.
    followed = play('assign', dict(assign, assign_follow_identity=True),
                    facts='{"selected": assign_selected, "followed_from": assign_followed_from}')
    assert followed.failed == 0 and followed.changed > 0, followed
    assert followed.facts == {'selected': sorted([second, race]), 'followed_from': [first]}, followed.facts
    assert [rig.driver(address) for address in (first, second, race)] == ['e1000', 'pciback', 'pciback']
    hide = rig.files(OPTIONS_FILE)[OPTIONS_FILE]
    assert '(%s)' % second in hide and '(%s)' % race in hide and first not in hide, hide
    recorded = rig.recorded_drivers()
    assert {address: recorded.get(address) for address in (first, second, race)} == {
        first: None, second: 'e1000', race: 'e1000e'}
    # Selected by its identity, the card is found where it is now, already held: nothing to do.
    again = play('assign', {'assign_identities': [{'vendor': '8086', 'device': '100f'}], 'assign_persistent': True},
                 facts='{"selected": assign_selected}')
    assert again.failed == 0 and again.changed == 0 and again.facts == {'selected': [second]}, again

    # The pciback role finds e1000e in the initramfs, the native driver of a hidden device, and closes the race.
    closed = play('pciback', PREPARE)
    assert closed.failed == 0, closed
    assert 'loads e1000e, the native driver of %s' % race in ' '.join(closed.output.split()), closed
    assert 'regenerates the initramfs' in closed.output, closed
    assert 'xen-pciback' in rig.files(MODULES_FILE)[MODULES_FILE].split()
    assert 'softdep e1000e pre: xen-pciback' in rig.files(SOFTDEP_FILE)[SOFTDEP_FILE]
    unchanged = play('pciback', PREPARE)
    assert unchanged.failed == 0 and unchanged.changed == 0, unchanged

    # What a kernel upgrade runs builds the initramfs again from the same configuration.
    rig.ssh('update-initramfs -u -k all', timeout=600)
    rig.power_cycle(swap=rig.swap)

    assert [rig.driver(address) for address in (first, second, race)] == ['e1000', 'pciback', 'pciback']
    devices = pci_info(rig, (first, second, race))
    assert [devices[address]['drift'] for address in (first, second, race)] == [[], [], []]
    assert [devices[address]['dom0_access'] for address in (first, second, race)] == ['enabled', 'disabled', 'disabled']
