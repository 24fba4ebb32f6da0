# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SR-IOV on the x86_64 rig: QEMU's NVMe controller, up to eight virtual functions (tests/rig/boot's sriov-pf).

pci_sriov makes the VFs (its sriov_numvfs; Linux's nvme driver has sriov_configure), pci_assignable holds one by its PF
and index and Xen quarantines it, the VF count is not changed under a held VF, and pci_info reports the PF.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

pytestmark = pytest.mark.rig

RULES_FILE = '/etc/udev/rules.d/70-xenpci-passthrough-sriov.rules'


def virtual_functions(rig, pf):
    """The PF's VFs in index order, as the kernel links them (virtfn0, virtfn1, ...)."""
    out = rig.ssh('for link in /sys/bus/pci/devices/%s/virtfn*; do [ -e "$link" ] && echo "${link##*virtfn} '
                  '$(basename "$(readlink "$link")")"; done; true' % pf).stdout
    return [address for _index, address in sorted((int(index), address) for index, address in
                                                  (line.split() for line in out.splitlines()))]


@pytest.fixture
def sriov_pf(rig):
    """The rig's SR-IOV PF; afterwards its VFs given back and gone, and no rule file."""
    if not rig.sriov_pf:
        pytest.skip('the %s rig has no SR-IOV device (QEMU emulates one on the x86_64 rig)' % rig.arch)
    rig.require_pciback()
    yield rig.sriov_pf
    rig.give_back(virtual_functions(rig, rig.sriov_pf))
    rig.module('pci_sriov', {'pf': rig.sriov_pf, 'numvfs': 0, 'force': True, 'persistent': False})
    rig.ssh('rm -f %s' % RULES_FILE)


def test_vfs_are_made_once_held_by_pf_and_index_and_kept_while_held(rig, sriov_pf):
    pf = sriov_pf
    assert virtual_functions(rig, pf) == []
    made = rig.module('pci_sriov', {'pf': pf, 'numvfs': 2, 'autoprobe': False})
    assert not made.get('failed') and made['changed'] is True, made
    vfs = virtual_functions(rig, pf)
    assert (made['totalvfs'], made['numvfs_before'], made['numvfs'], len(vfs)) == (8, 0, 2, 2), made
    assert [vf['address'] for vf in made['vfs']] == vfs
    assert [rig.driver(address) for address in vfs] == [None, None], 'autoprobe off: no dom0 driver takes a new VF'
    again = rig.module('pci_sriov', {'pf': pf, 'numvfs': 2, 'autoprobe': False})
    assert not again.get('failed') and again['changed'] is False, again
    rule = rig.files(RULES_FILE)[RULES_FILE]
    assert rule is not None and 'KERNEL=="%s"' % pf in rule and 'ATTR{sriov_numvfs}="2"' in rule, rule

    info = dict((device['address'], device) for device in rig.module('pci_info', {})['devices'])
    assert info[pf]['sriov'] == {'totalvfs': 8, 'numvfs': 2, 'drivers_autoprobe': False,
                                 'vfs': [{'index': 0, 'address': vfs[0], 'driver': None},
                                         {'index': 1, 'address': vfs[1], 'driver': None}]}, info[pf]['sriov']
    assert info[vfs[1]]['physfn'] == pf

    held = rig.module('pci_assignable', {'devices': ['%s/vf0' % pf]})
    assert not held.get('failed') and held['changed'] is True, held
    assert [device['address'] for device in held['devices']] == [vfs[0]]
    assert rig.driver(vfs[0]) == 'pciback'
    if rig.xen_passthrough:
        assert vfs[0] in rig.ssh('xl pci-assignable-list').stdout.split()

    before = rig.drivers()
    shrink = rig.module('pci_sriov', {'pf': pf, 'numvfs': 1})
    assert shrink.get('failed') is True and vfs[0] in shrink['msg'], shrink
    assert rig.drivers() == before and virtual_functions(rig, pf) == vfs


@pytest.mark.parametrize('case, message', [
    ('too_many', 'sriov_totalvfs is 8'),
    ('no_sriov', 'SR-IOV'),
    ('vf_index', 'vf5'),
])
def test_bad_sriov_requests_change_nothing(rig, sriov_pf, case, message):
    pf = sriov_pf
    module, args = {
        'too_many': ('pci_sriov', {'pf': pf, 'numvfs': 9}),
        'no_sriov': ('pci_sriov', {'pf': rig.nics[0], 'numvfs': 1}),
        'vf_index': ('pci_assignable', {'devices': ['%s/vf5' % pf]}),
    }[case]
    before = rig.drivers()
    result = rig.module(module, args)
    assert result.get('failed') is True and message in result['msg'], result
    assert rig.drivers() == before and virtual_functions(rig, pf) == []


def test_the_vfs_and_the_one_held_for_guests_are_back_after_a_reboot(rig, sriov_pf):
    """The rule file at boot: the PF's driver makes the VFs again, and xen-pciback takes the held one as it appears."""
    pf = sriov_pf
    made = rig.module('pci_sriov', {'pf': pf, 'numvfs': 2, 'autoprobe': False, 'hold_vfs': [0]})
    assert not made.get('failed') and made['changed'] is True, made
    vfs = virtual_functions(rig, pf)
    held = rig.module('pci_assignable', {'devices': ['%s/vf0' % pf]})
    assert not held.get('failed') and rig.driver(vfs[0]) == 'pciback', held

    rig.reboot()
    assert virtual_functions(rig, pf) == vfs
    assert [rig.driver(address) for address in vfs] == ['pciback', None], 'held at boot, the other left driverless'
    again = rig.module('pci_sriov', {'pf': pf, 'numvfs': 2, 'autoprobe': False, 'hold_vfs': [0]})
    assert not again.get('failed') and again['changed'] is False, again
    back = rig.module('pci_assignable', {'devices': ['%s/vf0' % pf], 'state': 'absent'})
    assert not back.get('failed') and rig.driver(vfs[0]) is None, back
