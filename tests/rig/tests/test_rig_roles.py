# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The roles pciback and assign, and the assign playbook, with ansible-playbook against the real dom0.

The rig boots Xen through QEMU's multiboot loader (no GRUB), so the pciback role runs with
pciback_manage_bootloader false; everything else is the real thing: the dom0 and kernel checks,
xen-pciback's modprobe.d file and run-time parameters, the devices moved by the assign role.
Each test leaves the rig as it found it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from conftest import OPTIONS_FILE, SOFTDEP_FILE

# Slow under emulation (each role run takes minutes on the TCG dom0): `make rig-test-full` runs them.
pytestmark = [pytest.mark.rig, pytest.mark.slow]

MODULES_LOAD = '/etc/modules-load.d/xen-pciback.conf'
PERMISSIVE = '/sys/module/xen_pciback/parameters/permissive'


@pytest.fixture
def pristine(rig):
    """What the pciback role touches, put back as the rig had it: files, xen-pciback's permissive, devices."""
    modules_load = rig.ssh('cat %s' % MODULES_LOAD).stdout
    permissive = rig.ssh('cat %s' % PERMISSIVE).stdout.strip()
    yield rig
    rig.give_back(rig.nics[:2] + [rig.xhci])
    rig.ssh('rm -f %s %s %s.*' % (OPTIONS_FILE, SOFTDEP_FILE, OPTIONS_FILE))
    rig.ssh("printf '%%s' '%s' > %s" % (modules_load, MODULES_LOAD))
    rig.ssh('echo %s > %s' % (permissive, PERMISSIVE))


def pv_backend(rig):
    """x86: xen-pciback is the PV backend, with permissive; Arm: the stub, whose role path refuses it."""
    return rig.arch == 'x86_64'


def pciback_vars(rig, **more):
    variables = {
        'pciback_hide': [rig.nics[1], rig.multifunction[1][len('0000:'):]],
        'pciback_permissive': pv_backend(rig),
        'pciback_manage_bootloader': False,       # the rig boots Xen without GRUB
    }
    variables.update(more)
    return variables


def hide_words(*addresses):
    return 'hide=%s' % ''.join('(%s)' % address for address in addresses)


PCIBACK_FACTS = '{"reboot": pciback_reboot_required, "bootloader": pciback_bootloader_update_required}'


def test_pciback_role_check_mode_then_real_then_idempotent(pristine, play):
    rig = pristine
    before = rig.files(OPTIONS_FILE, MODULES_LOAD)
    permissive = rig.ssh('cat %s' % PERMISSIVE).stdout.strip()
    assert permissive == 'N'
    check = play('pciback', pciback_vars(rig), check=True, facts=PCIBACK_FACTS)
    assert check.failed == 0 and check.changed > 0, check
    assert rig.files(OPTIONS_FILE, MODULES_LOAD) == before
    assert rig.ssh('cat %s' % PERMISSIVE).stdout.strip() == 'N'

    real = play('pciback', pciback_vars(rig), facts=PCIBACK_FACTS)
    assert real.failed == 0 and real.changed > 0, real
    options = rig.ssh('cat %s' % OPTIONS_FILE).stdout
    hidden = hide_words(rig.nics[1], rig.multifunction[1])
    if pv_backend(rig):
        assert 'options xen-pciback %s permissive=1' % hidden in options
        assert rig.ssh('cat %s' % PERMISSIVE).stdout.strip() == 'Y'      # applied at run time
    else:
        assert 'options xen-pciback %s\n' % hidden in options and 'permissive' not in options, options
    assert rig.ssh('grep -x xen-pciback %s' % MODULES_LOAD).returncode == 0
    # hide is read-only in the running module: it takes the next boot
    assert real.facts == {'reboot': True, 'bootloader': False}

    again = play('pciback', pciback_vars(rig), facts=PCIBACK_FACTS)
    assert again.failed == 0 and again.changed == 0, again
    assert again.facts['reboot'] is True                              # still true until the reboot
    converged = play('pciback', pciback_vars(rig), check=True)
    assert converged.failed == 0 and converged.changed == 0, converged

    if not pv_backend(rig):
        return
    off = play('pciback', pciback_vars(rig, pciback_permissive=False, pciback_hide=[]))
    assert off.failed == 0 and off.changed > 0, off
    options = rig.ssh('cat %s' % OPTIONS_FILE).stdout
    assert 'permissive' not in options and hidden in options   # hide is merged, kept


def test_pciback_role_refuses_pv_backend_options_on_the_stub(pristine, play):
    rig = pristine
    if pv_backend(rig):
        pytest.skip('xen-pciback on %s is the PV backend: permissive is valid there' % rig.arch)
    before = rig.files(OPTIONS_FILE, MODULES_LOAD)
    result = play('pciback', pciback_vars(rig, pciback_permissive=True))
    assert result.failed == 1, result
    assert 'pciback_permissive asked for' in result.output and 'CONFIG_XEN_PCIDEV_STUB' in result.output, result
    assert rig.files(OPTIONS_FILE, MODULES_LOAD) == before


def test_pciback_role_softdeps(pristine, play):
    rig = pristine
    result = play('pciback', pciback_vars(rig, pciback_native_drivers=['e1000', 'xhci_pci']))
    assert result.failed == 0, result
    softdep = rig.ssh('cat %s' % SOFTDEP_FILE).stdout
    assert 'softdep e1000 pre: xen-pciback' in softdep and 'softdep xhci_pci pre: xen-pciback' in softdep
    # modprobe itself reads the file as meant
    assert 'xen-pciback' in rig.ssh('modprobe --showconfig | grep "^softdep e1000 "').stdout
    result = play('pciback', pciback_vars(rig))
    assert result.failed == 0, result
    assert rig.ssh('test -e %s' % SOFTDEP_FILE, check=False).returncode != 0


def test_pciback_role_refuses_a_malformed_address_before_writing(pristine, play):
    rig = pristine
    before = rig.files(OPTIONS_FILE, MODULES_LOAD)
    result = play('pciback', pciback_vars(rig, pciback_hide=['0000:82.0.0']))
    assert result.failed == 1 and 'not PCI function addresses' in result.output, result
    assert rig.files(OPTIONS_FILE, MODULES_LOAD) == before


ASSIGN_FACTS = '{"selected": assign_selected, "result": assign_result}'


def assignable(rig):
    return sorted(rig.ssh('xl pci-assignable-list').stdout.split())


def test_assign_role_selects_moves_and_gives_back(pristine, play):
    rig = pristine
    rig.require_pciback()
    nic_a, xhci = rig.nics[0], rig.xhci
    # Every selector must select a device: the class list leaves the bridge out (taken, it would be refused).
    select = {'assign_devices': [nic_a[len('0000:'):], xhci, rig.bridges[0]], 'assign_classes': ['02', '0c03'],
              'assign_persistent': True}
    check = play('assign', select, check=True, facts=ASSIGN_FACTS)
    assert check.failed == 0 and check.changed > 0, check
    assert check.facts['selected'] == [nic_a, xhci]
    assert rig.driver(nic_a) == 'e1000' and rig.driver(xhci) == 'xhci_hcd'
    assert rig.files(OPTIONS_FILE)[OPTIONS_FILE] is None

    real = play('assign', select, facts=ASSIGN_FACTS)
    assert real.failed == 0 and real.changed > 0, real
    assert rig.driver(nic_a) == rig.driver(xhci) == 'pciback'
    assert assignable(rig) == [nic_a, xhci]
    assert sorted(device['action'] for device in real.facts['result']['devices']) == ['assigned', 'assigned']
    assert hide_words(nic_a, xhci) in rig.ssh('cat %s' % OPTIONS_FILE).stdout

    again = play('assign', select)
    assert again.failed == 0 and again.changed == 0, again

    # The query selects the same devices while they are on pciback; state absent gives them back.
    back = play('assign', {'assign_query': "[?driver=='pciback']", 'assign_state': 'absent',
                           'assign_persistent': True}, facts=ASSIGN_FACTS)
    assert back.failed == 0 and back.changed > 0, back
    assert back.facts['selected'] == [nic_a, xhci]
    assert rig.driver(nic_a) == 'e1000' and rig.driver(xhci) == 'xhci_hcd'
    assert assignable(rig) == []
    assert rig.files(OPTIONS_FILE)[OPTIONS_FILE] is None                  # the hide list emptied, the file gone


@pytest.mark.parametrize('variables, message', [
    ({'assign_devices': ['MGMT_NIC', 'NIC_A']}, 'carries the default route'),
    ({'assign_ids': ['abcd:ef01']}, 'select none of the'),
    ({'assign_classes': ['network']}, "'network' is not a PCI class prefix"),
    ({'assign_devices': ['00:1e.0']}, 'no device 0000:00:1e.0'),
    ({'assign_query': "[?driver=='e1000'"}, 'is not a valid JMESPath expression'),
    ({}, 'give at least one of assign_devices'),
])
def test_assign_role_refusals_move_nothing(pristine, play, variables, message):
    rig = pristine
    roles = {'MGMT_NIC': rig.mgmt_nic, 'NIC_A': rig.nics[0]}
    if 'assign_devices' in variables:
        devices = [roles.get(device, device) for device in variables['assign_devices']]
        if None in devices:
            pytest.skip('the %s rig has no PCI management NIC' % rig.arch)
        variables = dict(variables, assign_devices=devices)
    before = rig.drivers()
    result = play('assign', dict(variables, assign_persistent=True))
    assert result.failed == 1 and message in result.output, result
    assert rig.drivers() == before
    assert rig.files(OPTIONS_FILE)[OPTIONS_FILE] is None


def test_assign_and_restore_playbooks(pristine, play):
    rig = pristine
    rig.require_pciback()
    nics = rig.nics[:2]
    variables = {'passthrough_hosts': 'all', 'passthrough_devices': nics}
    assign = play(playbook='xenpci.passthrough.assign', variables=variables)
    assert assign.failed == 0 and assign.changed > 0, assign
    assert assignable(rig) == nics
    restore = play(playbook='xenpci.passthrough.restore', variables=variables)
    assert restore.failed == 0 and restore.changed > 0, restore
    assert rig.driver(nics[0]) == rig.driver(nics[1]) == 'e1000'
    assert assignable(rig) == []


XEN_HOST_FACTS = '{"dom0": xen_host_dom0, "reboot": xen_host_reboot_required}'


def test_xen_host_role_on_a_running_dom0(rig, play):
    """The role that provisioned the image, run again on the booted dom0: it knows it is in Xen, starts
    the toolstack's services, has nothing to reboot for, and changes nothing on a second run."""
    variables = {'xen_host_version': rig.xen_version, 'xen_host_manage_bootloader': False,
                 'xen_host_apt_cache_valid_time': 0}
    rig.ssh('systemctl stop xendomains.service')
    first = play('xen_host', variables, facts=XEN_HOST_FACTS)
    assert first.failed == 0, first
    assert first.facts == {'dom0': True, 'reboot': False}, first
    assert rig.ssh('systemctl is-active xendomains.service').stdout.strip() == 'active'
    assert rig.ssh('pgrep -x "o?xenstored"').returncode == 0
    again = play('xen_host', variables, facts=XEN_HOST_FACTS)
    assert again.failed == 0 and again.changed == 0, again


def test_prepare_playbook(pristine, play):
    rig = pristine
    variables = {'passthrough_hide': [rig.nics[1]], 'passthrough_native_drivers': ['e1000'],
                 'pciback_manage_bootloader': False}
    prepared = play(playbook='xenpci.passthrough.prepare', variables=variables)
    assert prepared.failed == 0 and prepared.changed > 0, prepared
    assert hide_words(rig.nics[1]) in rig.ssh('cat %s' % OPTIONS_FILE).stdout
    assert 'softdep e1000 pre: xen-pciback' in rig.ssh('cat %s' % SOFTDEP_FILE).stdout
    assert 'reboot needed for the boot-time settings' in prepared.stdout
    again = play(playbook='xenpci.passthrough.prepare', variables=variables)
    assert again.failed == 0 and again.changed == 0, again
    assert rig.driver(rig.nics[1]) == 'e1000'          # hiding takes the next boot; nothing moved now


def test_pciback_role_regenerates_the_initramfs_only_where_it_loads_a_softdep_driver(pristine, play):
    """A check run (nothing changes) of a softdep for virtio_blk, which the rig's initramfs holds, has the initramfs
    regenerated; one for e1000, which it does not hold, does not (test_rig_reboot shows the real run and the boot)."""
    rig = pristine
    base = {'pciback_manage_bootloader': False}
    held = play('pciback', dict(base, pciback_native_drivers=['virtio_blk']), check=True)
    assert held.failed == 0 and 'regenerates the initramfs' in held.output, held
    not_held = play('pciback', dict(base, pciback_native_drivers=['e1000']), check=True)
    assert not_held.failed == 0 and 'regenerates the initramfs' not in not_held.output, not_held
