# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection against a real Xen dom0: real xen-pciback, real xl and xenstored, emulated PCI devices.

The same tests run on the x86_64 rig (xen-pciback as PV backend, Xen with an IOMMU) and on the
arm64 rigs (xen-pciback as stub, Xen without PCI support; on trixie, Linux 6.12's pciback cannot
even hold a device there); the devices come from the rig by role.
Each test leaves the rig as it found it (devices on their own drivers), so they can run in any order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

import pytest

pytestmark = pytest.mark.rig

COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

PCIBACK = {
    'x86_64': dict(variant='pv_backend', kconfig_symbol='CONFIG_XEN_PCIDEV_BACKEND'),
    'aarch64': dict(variant='stub', kconfig_symbol='CONFIG_XEN_PCIDEV_STUB'),
}
OTHER_SYMBOL = {'x86_64': 'CONFIG_XEN_PCIDEV_STUB', 'aarch64': 'CONFIG_XEN_PCIDEV_BACKEND'}


def assignable(rig):
    return sorted(rig.ssh('xl pci-assignable-list').stdout.split())


def by_address(result):
    return dict((device['address'], device) for device in result['devices'])


def interface_of(rig, address):
    return rig.ssh('ls /sys/bus/pci/devices/%s/net' % address).stdout.split()[0]


def xen_owners(rig, addresses):
    """{address: owner} from Xen's own table of PCI devices (debug key Q, the last dump in ``xl dmesg``): ``d0`` for
    dom0, ``DomIO:<pseudo domid>`` (x86) or ``d[IO]`` for Xen's quarantine."""
    out = rig.ssh('xl debug-keys Q && xl dmesg').stdout
    dump = out[out.rindex('==== PCI devices ===='):]
    owners = dict(re.findall(r'(\S+:\S+\.\d) - (\S+) - node', dump))
    return dict((address, owners.get(address)) for address in addresses)


def quarantined(owner):
    return owner is not None and (owner.startswith('DomIO') or owner == 'd[IO]')


@pytest.fixture
def clean(rig):
    """Devices back on their drivers after the test, whatever it did."""
    yield rig
    rig.give_back(rig.nics + [rig.xhci])


@pytest.mark.smoke
def test_pci_info_sees_the_rig(rig):
    result = rig.module('pci_info', {})
    assert result['changed'] is False
    devices = by_address(result)
    nic_a = rig.nics[0]
    assert devices[nic_a]['driver'] == 'e1000' and devices[nic_a]['vendor_id'] == '8086'
    assert devices[rig.xhci]['driver'] == 'xhci_hcd'
    assert devices[rig.multifunction[0]]['multifunction'] is True
    for address in rig.candidates:
        assert devices[address]['driver'] is not None, devices[address]
        assert devices[address]['host_needs'] == [], devices[address]
    if rig.mgmt_nic:
        assert any('default route' in reason for reason in devices[rig.mgmt_nic]['host_needs'])
    else:   # a virtio-mmio NIC: not a PCI device, nothing on the PCI bus carries the route
        assert not any('default route' in reason for device in devices.values() for reason in device['host_needs'])
    if rig.root_disk:
        assert devices[rig.root_disk]['host_needs'] == ['holds the root file system']
    for bridge in rig.bridges:
        assert devices[bridge]['bridge'] is True
    host = result['host']
    assert host['arch'] == rig.arch
    assert host['xen']['dom0'] is True
    assert re.match(r'\d+\.\d+', host['xen']['version']).group() == rig.xen_version, host['xen']['version']
    assert host['pciback'] == dict(host['pciback'], build='module', loaded=True, **PCIBACK[rig.arch])
    assert host['xen']['quarantine_capable'] is rig.xen_passthrough
    # Xen and xenstore are asked in the module's process (libxenctrl, libxenstore), on every rig's Debian
    assert host['xen']['quarantine_through'] == 'libxenctrl', host['xen']['xenctrl_note']
    assert host['xen']['xenstore_through'] == 'libxenstore', host['xen']['xenstore_note']
    if rig.xen_passthrough:
        assert host['problems'] == []
    else:
        assert 'PCI passthrough' in host['xen']['quarantine_note']
        assert host['problems'] == [host['xen']['quarantine_note']]


def test_libxenctrl_reads_virt_caps_as_xl_info_prints_them(rig):
    """The collection's libxenctrl binding, run on dom0 as its modules run it: the same virt_caps as xl info."""
    check = '/tmp/xenctrl-check'
    for relative in ('_host/c_library.py', '_xen/xenctrl.py'):
        with open(os.path.join(COLLECTION, 'plugins', 'module_utils', relative)) as handle:
            target = '%s/ansible_collections/xenpci/passthrough/plugins/module_utils/%s' % (check, relative)
            rig.ssh("mkdir -p %s && cat > %s <<'EOF'\n%sEOF" % (os.path.dirname(target), target, handle.read()))
    try:
        ours = rig.ssh('cd %s && python3 -c "from ansible_collections.xenpci.passthrough.plugins.module_utils._xen import '
                       'xenctrl; control, why = xenctrl.load_xenctrl((%s)); '
                       'print(why) if why else print(control.virt_caps())"'
                       % (check, rig.xen_version.replace('.', ', '))).stdout.strip()
    finally:
        rig.ssh('rm -rf %s' % check)
    printed = rig.ssh('xl info').stdout
    assert ours == re.search(r'^virt_caps\s*:\s*(.*)$', printed, re.M).group(1).strip()


@pytest.mark.smoke
def test_pciback_is_the_module_this_arch_builds(rig):
    """xen-pciback is loaded from the module the arch's Kconfig symbol builds (the stub on arm64)."""
    config = rig.ssh('grep -E "^CONFIG_XEN_PCI(DEV)?_(BACKEND|STUB)=" /boot/config-$(uname -r)').stdout.split()
    assert '%s=m' % PCIBACK[rig.arch]['kconfig_symbol'] in config
    assert not [line for line in config if line.startswith(OTHER_SYMBOL[rig.arch] + '=')]
    assert rig.ssh('test -d /sys/module/xen_pciback && test -d /sys/bus/pci/drivers/pciback').returncode == 0


def test_kernel_config_check_mode_knows_the_symbol_of_the_arch(rig):
    found = rig.module('kernel_config', {'mode': 'check_running'}, check=True)
    symbol = PCIBACK[rig.arch]['kconfig_symbol']
    assert found['failed'] is False and found['changed'] is False
    assert found['present'] == {symbol: 'm'} and found['missing'] == []
    wrong = rig.module('kernel_config', {'mode': 'check_running', 'options': [OTHER_SYMBOL[rig.arch]]}, check=True)
    assert wrong['failed'] is True
    assert OTHER_SYMBOL[rig.arch] in wrong['msg'] and symbol in wrong['msg'], wrong['msg']


@pytest.mark.smoke
def test_assign_two_nics_in_one_task_then_give_them_back(clean):
    rig = clean
    nic_a, nic_b = rig.nics[:2]
    short_b = nic_b[len('0000:'):]
    check = rig.module('pci_assignable', {'devices': [nic_a, short_b]}, check=True)
    assert check['changed'] is True and rig.driver(nic_a) == 'e1000'
    if not rig.pciback_holds:
        # pciback's bind fails (ENOSYS): the task fails, says why, and puts the batch back.
        before = rig.drivers()
        failed = rig.module('pci_assignable', {'devices': [nic_a, short_b]})
        assert failed['failed'] is True, failed
        assert failed['msg'].startswith(nic_a + ': xen-pciback cannot take the device: '), failed
        assert 'ENOSYS' in failed['hypervisor_limit'] and failed['hypervisor_limit'] in failed['msg'], failed
        assert 'every device of this batch was put back' in failed['msg'], failed
        assert rig.drivers() == before and assignable(rig) == []
        for address in (nic_a, nic_b):
            key = '/libxl/pci/%s/driver_path' % address.replace(':', '-').replace('.', '-')
            assert rig.ssh('xenstore-read %s' % key, check=False).returncode != 0
        assert rig.module('pci_assignable', {'devices': [nic_a, nic_b], 'state': 'absent'})['changed'] is False
        return
    result = rig.module('pci_assignable', {'devices': [nic_a, short_b]}, diff=True)
    assert result['changed'] is True, result
    devices = by_address(result)
    for address in (nic_a, nic_b):
        assert devices[address]['original_driver'] == 'e1000'
        assert devices[address]['quarantined'] is rig.xen_passthrough
    if rig.xen_passthrough:
        assert result['hypervisor_limit'] is None
    else:   # dom0's part is done; the result says what Xen lacks
        assert 'PCI passthrough' in result['hypervisor_limit'], result
    assert assignable(rig) == [nic_a, nic_b]
    assert rig.driver(nic_a) == rig.driver(nic_b) == 'pciback'
    if rig.xen_passthrough:     # Xen's own table: both belong to its quarantine now
        owners = xen_owners(rig, [nic_a, nic_b])
        assert all(quarantined(owner) for owner in owners.values()), owners
    driver_path = rig.ssh('xenstore-read /libxl/pci/%s/driver_path' % nic_a.replace(':', '-').replace('.', '-'))
    assert driver_path.stdout.strip() == '/sys/bus/pci/drivers/e1000'
    again = rig.module('pci_assignable', {'devices': [nic_a, nic_b]})
    assert again['changed'] is False
    back = rig.module('pci_assignable', {'devices': [nic_a, nic_b], 'state': 'absent'})
    assert back['changed'] is True
    assert rig.driver(nic_a) == rig.driver(nic_b) == 'e1000'
    assert assignable(rig) == []
    assert interface_of(rig, nic_a)     # its interface is back
    if rig.xen_passthrough:
        assert xen_owners(rig, [nic_a, nic_b]) == {nic_a: 'd0', nic_b: 'd0'}
    assert rig.module('pci_assignable', {'devices': [nic_a, nic_b], 'state': 'absent'})['changed'] is False


def test_xl_gives_back_what_the_module_assigned(clean):
    rig = clean
    if not rig.xen_passthrough:
        pytest.skip('xl pci-assignable-remove fails where Xen has no PCI support (test_what_xl_does records it)')
    nic_a = rig.nics[0]
    rig.module('pci_assignable', {'devices': [nic_a]})
    # remove -r succeeds only if the device is quarantined, and rebinds only with driver_path recorded
    out = rig.ssh('xl pci-assignable-remove -r %s 2>&1' % nic_a).stdout
    assert 'not rebinding' not in out
    assert rig.driver(nic_a) == 'e1000'


def test_the_module_gives_back_what_xl_assigned(clean):
    rig = clean
    # On a Xen without PCI support xl moves the device and records its driver, then fails to quarantine.
    rig.ssh('xl pci-assignable-add %s' % rig.xhci, check=rig.xen_passthrough)
    # Where pciback cannot hold it, xl leaves the device driverless (in pciback's slots, its driver recorded).
    assert rig.driver(rig.xhci) == ('pciback' if rig.pciback_holds else None)
    result = rig.module('pci_assignable', {'devices': [rig.xhci], 'state': 'absent'})
    device = by_address(result)[rig.xhci]
    assert device['original_driver'] == 'xhci_hcd' and device['original_driver_source'] == 'xenstore'
    assert rig.driver(rig.xhci) == 'xhci_hcd'
    assert assignable(rig) == []


def test_what_xl_does(clean):
    """What ``xl pci-assignable-add``, ``-list`` and ``-remove -r`` do on this rig's Xen, for the record."""
    rig = clean
    nic_a = rig.nics[0]
    key = '/libxl/pci/%s' % nic_a.replace(':', '-').replace('.', '-')
    add = rig.ssh('xl pci-assignable-add %s' % nic_a, check=False)
    if not rig.pciback_holds:
        # Linux 6.12's pciback asks Xen to reset the device, Xen without PCI support answers ENOSYS: xl
        # fails at the bind, after it unbound e1000, added the slot and recorded the driver.
        assert add.returncode == 1 and "Couldn't bind device to pciback" in add.stderr, add
        assert 'Function not implemented' in add.stderr, add
        assert rig.driver(nic_a) is None and assignable(rig) == []
        assert nic_a in rig.ssh('cat /sys/bus/pci/drivers/pciback/slots').stdout.split()
        assert rig.ssh('xenstore-read %s/driver_path' % key).stdout.strip() == '/sys/bus/pci/drivers/e1000'
        remove = rig.ssh('xl pci-assignable-remove -r %s' % nic_a, check=False)
        assert remove.returncode == 1 and 'failed to de-quarantine' in remove.stderr, remove
        assert rig.driver(nic_a) is None
        assert rig.ssh('xenstore-read %s/driver_path' % key).stdout.strip() == '/sys/bus/pci/drivers/e1000'
        back = rig.module('pci_assignable', {'devices': [nic_a], 'state': 'absent'})
        assert by_address(back)[nic_a]['original_driver_source'] == 'xenstore', back
        assert rig.driver(nic_a) == 'e1000' and assignable(rig) == []
        assert nic_a not in rig.ssh('cat /sys/bus/pci/drivers/pciback/slots').stdout.split()
        return
    # Either way dom0's part is done: the device is on pciback, its driver recorded, xl lists it.
    assert rig.driver(nic_a) == 'pciback'
    assert rig.ssh('xenstore-read %s/driver_path' % key).stdout.strip() == '/sys/bus/pci/drivers/e1000'
    assert assignable(rig) == [nic_a]
    remove = rig.ssh('xl pci-assignable-remove -r %s' % nic_a, check=False)
    if rig.xen_passthrough:
        assert (add.returncode, remove.returncode) == (0, 0), (add, remove)
        assert rig.driver(nic_a) == 'e1000' and assignable(rig) == []
        assert rig.ssh('xenstore-read %s/driver_path' % key, check=False).returncode != 0   # record dropped
    else:
        # Xen built without PCI support: add fails at the quarantine step after moving the device;
        # remove -r fails at de-quarantine, before anything else, and changes nothing.
        assert add.returncode == 1 and 'failed to quarantine' in add.stderr, add
        assert remove.returncode == 1 and 'failed to de-quarantine' in remove.stderr, remove
        assert rig.driver(nic_a) == 'pciback' and assignable(rig) == [nic_a]
        assert rig.ssh('xenstore-read %s/driver_path' % key).stdout.strip() == '/sys/bus/pci/drivers/e1000'
        back = rig.module('pci_assignable', {'devices': [nic_a], 'state': 'absent'})
        assert by_address(back)[nic_a]['original_driver_source'] == 'xenstore'
        assert rig.driver(nic_a) == 'e1000' and assignable(rig) == []


@pytest.fixture
def routed_nic(rig):
    """The second e1000 carries a default route too (a higher metric than the management NIC's).

    On the arm64 rig the management NIC is not a PCI device, so this is the NIC the host needs there.
    """
    nic_b = rig.nics[1]
    interface = interface_of(rig, nic_b)
    rig.ssh('ip link set %s up && ip address add 192.0.2.1/24 dev %s && '
            'ip route add default via 192.0.2.2 dev %s metric 4000 onlink' % (interface, interface, interface))
    try:
        yield nic_b, interface
    finally:
        rig.ssh('ip route del default via 192.0.2.2 dev %s; ip address flush dev %s; ip link set %s down'
                % (interface, interface, interface), check=False)


def test_a_nic_the_host_needs_is_reported_and_kept(rig, routed_nic):
    nic_b, interface = routed_nic
    info = by_address(rig.module('pci_info', {}))
    assert info[nic_b]['host_needs'] == ['carries the default route (%s)' % interface]
    before = rig.drivers()
    refused = rig.module('pci_assignable', {'devices': [rig.nics[0], nic_b]})
    assert refused['failed'] is True and '%s carries the default route' % nic_b in refused['msg'], refused
    assert rig.drivers() == before


@pytest.mark.parametrize('role, message', [
    ('mgmt_nic', 'carries the default route'),
    ('root_disk', 'holds the root file system'),
    ('bridge', 'is a bridge'),
    ('malformed', 'invalid device address'),
    ('missing', 'no such PCI device'),
])
def test_refusals_on_the_real_host_move_nothing(rig, role, message):
    other = {
        'mgmt_nic': rig.mgmt_nic,
        'root_disk': rig.root_disk,
        'bridge': rig.bridges[0] if rig.bridges else None,
        'malformed': '0000:00:03',
        'missing': '0000:00:1e.0',
    }[role]
    if other is None:
        pytest.skip('the %s rig has no PCI %s' % (rig.arch, role.replace('_', ' ')))
    before = rig.drivers()
    result = rig.module('pci_assignable', {'devices': [rig.nics[0], other]})
    assert result.get('failed') is True and message in result['msg'], result
    assert rig.drivers() == before


@pytest.fixture
def multifunction(rig):
    """The two functions of the rig's multi-function e1000, back on e1000 after the test."""
    yield rig.multifunction
    rig.give_back(rig.multifunction)


def test_one_function_of_a_multi_function_device_is_refused_and_the_device_moves_whole(rig, multifunction):
    """The set from the topology (pci_info), the refusal with nothing moved, functions: all, and force."""
    first, second = multifunction
    info = by_address(rig.module('pci_info', {}))
    # Xen drives the IOMMU, Linux has no groups: the sets come from config space. The conventional PCI e1000's
    # functions have no ACS; the PCIe NICs sit below QEMU's root ports, which have ACS (Xen enables it).
    assert info[first]['iommu_group'] is None
    assert info[first]['coassignment'] == {
        'devices': [second], 'source': 'topology',
        'reasons': ['%s, %s are functions of one multi-function device without ACS isolation' % (first, second)]}
    for address in rig.nics + rig.msi_nics:
        assert info[address]['coassignment']['devices'] == [], info[address]
    before = rig.drivers()
    refused = rig.module('pci_assignable', {'devices': [first]})
    assert refused['failed'] is True and '%s cannot be isolated from %s' % (first, second) in refused['msg'], refused
    assert rig.drivers() == before

    rig.require_pciback()
    whole = rig.module('pci_assignable', {'devices': [first], 'functions': 'all'})     # one named, the device moves
    assert not whole['failed'] and whole['changed'] is True, whole
    assert [device['address'] for device in whole['devices']] == [first, second], whole
    assert [rig.driver(address) for address in multifunction] == ['pciback'] * 2
    if rig.xen_passthrough:
        assert set(multifunction) <= set(assignable(rig))
    again = rig.module('pci_assignable', {'devices': [first, second]})
    assert not again['failed'] and again['changed'] is False, again
    back = rig.module('pci_assignable', {'devices': [second], 'functions': 'all', 'state': 'absent'})
    assert not back['failed'] and [rig.driver(address) for address in multifunction] == ['e1000'] * 2, back

    forced = rig.module('pci_assignable', {'devices': [second], 'force': True})
    assert not forced['failed'] and [rig.driver(address) for address in multifunction] == ['e1000', 'pciback'], forced


def test_the_sets_worked_out_in_dom0_are_the_iommu_groups_linux_forms_without_xen(rig):
    """Linux is the judge: on the same machine booted without Xen it drives the emulated VT-d and forms IOMMU groups
    (tests/rig/linux-iommu-groups records them); in the Xen dom0 it has none, and pci_info works the sets out from the
    topology. Device by device they are equal, over a root port with ACS off, a switch, a conventional PCI bridge and
    multi-function devices."""
    if rig.arch != 'x86_64':
        pytest.skip('Linux drives an emulated IOMMU on the x86_64 machine only (VT-d)')
    assert rig.linux_iommu_groups, 'no Linux IOMMU groups: run the rig tests through tests/rig/run-tests'
    linux = dict((address, group) for group in rig.linux_iommu_groups for address in group)
    info = by_address(rig.module('pci_info', {}))
    assert sorted(info) == sorted(linux)
    assert set(device['coassignment']['source'] for device in info.values()) == {'topology'}
    computed = dict((address, sorted([address] + device['coassignment']['devices'])) for address, device in info.items())
    assert dict((address, (computed[address], linux[address])) for address in info if computed[address] != linux[address]) == {}
    below_port, below_switch, other_switch_port, behind_a, behind_b = rig.isolation
    found = [computed[address] for address in (below_port, below_switch, other_switch_port, behind_a)]
    assert [len(members) for members in found] == [2, 2, 2, 3], found       # something to find, in each place
    assert [computed[address] for address in rig.msi_nics] == [[address] for address in rig.msi_nics]


@pytest.fixture
def isolation(rig):
    """The devices of the rig's isolation topology, back on their drivers after the test."""
    if not rig.isolation:
        pytest.skip('the %s rig has no isolation topology (the x86_64 rig has one)' % rig.arch)
    rig.require_pciback()
    yield rig.isolation
    rig.give_back(rig.isolation)


def test_a_set_moves_whole_its_bridges_stay_and_force_takes_one_member(rig, isolation):
    below_port, below_switch, _other, behind_a, behind_b = isolation
    before = rig.drivers()
    refused = rig.module('pci_assignable', {'devices': [behind_a]})
    assert refused['failed'] is True and '%s cannot be isolated from %s,' % (behind_a, behind_b) in refused['msg'], refused
    assert 'issues the DMA of everything behind it' in refused['msg']
    assert rig.drivers() == before

    # A set whose other member is a bridge (the port without ACS above, the switch's port): the device goes alone.
    alone = rig.module('pci_assignable', {'devices': [below_port, below_switch]})
    assert not alone['failed'] and alone['changed'] is True, alone
    whole = rig.module('pci_assignable', {'devices': [behind_a, behind_b]})
    assert not whole['failed'] and whole['changed'] is True, whole
    moved = [below_port, below_switch, behind_a, behind_b]
    assert [rig.driver(address) for address in moved] == ['pciback'] * 4
    after = rig.drivers()
    assert [address for address in before if before[address] != after.get(address)] == moved     # no bridge moved
    if rig.xen_passthrough:
        assert set(moved) <= set(assignable(rig))
    back = rig.module('pci_assignable', {'devices': moved, 'state': 'absent'})
    assert not back['failed'] and rig.drivers() == before, back

    forced = rig.module('pci_assignable', {'devices': [behind_a], 'force': True})
    assert not forced['failed'] and [rig.driver(address) for address in (behind_a, behind_b)] == ['pciback', 'e1000']


RESET_RULES = '/etc/udev/rules.d/70-xenpci-passthrough-reset.rules'


@pytest.fixture
def reset_nic(rig):
    """A NIC whose kernel offers more than one reset method; its methods and drivers as they were afterwards."""
    rig.require_pciback()
    nic = (rig.msi_nics or rig.nics)[0]
    path = '/sys/bus/pci/devices/%s/reset_method' % nic
    methods = (rig.files(path)[path] or '').split()        # no file: the kernel offers no reset (arm64's e1000)
    if len(methods) < 2:
        pytest.skip('%s offers %s: nothing to choose from' % (nic, methods or 'no reset'))
    yield nic, methods
    rig.give_back([nic])
    rig.ssh('echo default > /sys/bus/pci/devices/%s/reset_method; rm -f %s' % (nic, RESET_RULES))


def test_a_reset_method_is_set_now_kept_for_boot_and_given_back(rig, reset_nic):
    nic, methods = reset_nic
    chosen = methods[-1:]
    held = rig.module('pci_assignable', {'devices': [nic], 'reset_method': chosen})
    assert not held.get('failed') and held['changed'] is True, held
    assert held['devices'][0]['reset_method'] == chosen and rig.driver(nic) == 'pciback'
    assert rig.ssh('cat /sys/bus/pci/devices/%s/reset_method' % nic).stdout.split() == chosen
    assert 'KERNEL=="%s", ATTR{reset_method}="%s"' % (nic, chosen[0]) in rig.files(RESET_RULES)[RESET_RULES]
    again = rig.module('pci_assignable', {'devices': [nic], 'reset_method': chosen})
    assert not again.get('failed') and again['changed'] is False, again
    refused = rig.module('pci_assignable', {'devices': [nic], 'reset_method': ['cxl_bus']})
    assert refused.get('failed') is True and 'cxl_bus' in refused['msg'] and nic in refused['msg'], refused
    back = rig.module('pci_assignable', {'devices': [nic], 'state': 'absent', 'reset_method': 'default'})
    assert not back.get('failed') and rig.driver(nic) != 'pciback', back
    assert rig.ssh('cat /sys/bus/pci/devices/%s/reset_method' % nic).stdout.split() == methods
    assert rig.files(RESET_RULES)[RESET_RULES] is None
