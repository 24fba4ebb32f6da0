# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import parse_pci_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import (
    QuarantineRefused,
    ToolstackError,
    XenToolstack,
    driver_from_path,
)


class RecordedCommands(Commands):
    """Answers with canned outputs of the real tools, keeping the argument lists it was given."""

    def __init__(self, outputs):
        self.outputs = outputs
        self.argv = []
        super(RecordedCommands, self).__init__(lambda name: '/usr/bin/' + name, self._run)

    def _run(self, argv):
        self.argv.append(argv)
        return self.outputs.get(argv[0].rsplit('/', 1)[1], (0, '', ''))


LS_OUTPUT = '''/libxl/pci/0000-00-03-0 = ""
/libxl/pci/0000-00-03-0/driver_path = "/sys/bus/pci/drivers/e1000"
/libxl/pci/0000-00-04-0 = ""
/libxl/pci/0000-00-04-0/domid = "5"
/libxl/pci/0000-00-04-0/name = "a \\"quoted\\" \\\\name\\011"
/libxl/pci/not-an-address/driver_path = "/x"
'''


def test_libxl_records_are_parsed_and_unescaped():
    toolstack = XenToolstack(RecordedCommands({'xenstore-ls': (0, LS_OUTPUT, '')}), (4, 17))
    records = toolstack.libxl_records()
    assert records == {
        '0000:00:03.0': {'driver_path': '/sys/bus/pci/drivers/e1000'},
        '0000:00:04.0': {'domid': '5', 'name': 'a "quoted" \\name\t'},
    }


def test_a_missing_tree_is_empty_and_other_failures_raise():
    missing = RecordedCommands({'xenstore-ls': (1, '', 'xenstore-ls: xs_directory (/libxl/pci): No such file or directory\n')})
    assert XenToolstack(missing).libxl_records() == {}
    broken = RecordedCommands({'xenstore-ls': (1, '', 'xenstore-ls: could not connect\n')})
    with pytest.raises(ToolstackError, match='could not connect'):
        XenToolstack(broken).libxl_records()


BACKEND_OUTPUT = '''/local/domain/0/backend/pci/2 = ""
/local/domain/0/backend/pci/2/0 = ""
/local/domain/0/backend/pci/2/0/state = "6"
/local/domain/0/backend/pci/2/0/num_devs = "1"
/local/domain/0/backend/pci/2/0/dev-0 = "0000:00:03.0"
/local/domain/0/backend/pci/3/0/state = "4"
/local/domain/0/backend/pci/3/0/num_devs = "2"
/local/domain/0/backend/pci/3/0/dev-0 = "0000:00:04.0"
/local/domain/0/backend/pci/3/0/state-0 = "4"
/local/domain/0/backend/pci/3/0/dev-1 = "0000:00:05.0"
'''


def test_backend_devices_are_those_of_live_domains_listed_once_for_all():
    commands = RecordedCommands({'xenstore-ls': (0, BACKEND_OUTPUT, ''), 'xenstore-list': (0, '0\n3\n', '')})
    assert XenToolstack(commands, (4, 17)).backend_devices() == {'0000:00:04.0': '3', '0000:00:05.0': '3'}
    assert commands.argv == [['/usr/bin/xenstore-ls', '-f', '/local/domain/0/backend/pci'],
                             ['/usr/bin/xenstore-list', '/local/domain']]


def test_no_backend_needs_no_domain_list_and_a_failed_list_raises():
    missing = RecordedCommands({'xenstore-ls': (1, '', 'xenstore-ls: xs_directory (/local/domain/0/backend/pci): '
                                                       'No such file or directory\n')})
    assert XenToolstack(missing).backend_devices() == {}
    assert [argv[0] for argv in missing.argv] == ['/usr/bin/xenstore-ls']
    broken = RecordedCommands({'xenstore-ls': (0, BACKEND_OUTPUT, ''),
                               'xenstore-list': (1, '', 'xenstore-list: could not list path /local/domain\n')})
    with pytest.raises(ToolstackError, match='could not list path'):
        XenToolstack(broken).backend_devices()


def test_xen_before_4_15_keeps_records_under_pciback():
    commands = RecordedCommands({})
    XenToolstack(commands, (4, 14)).write_driver_paths({parse_pci_address('00:03.0'): 'e1000'})
    assert commands.argv == [['/usr/bin/xenstore-write', '/libxl/pciback/0000-00-03-0/driver_path', '/sys/bus/pci/drivers/e1000']]


def test_driver_paths_are_written_in_one_command():
    commands = RecordedCommands({})
    XenToolstack(commands, (4, 17)).write_driver_paths({parse_pci_address('00:04.0'): 'igb', parse_pci_address('00:03.0'): 'e1000'})
    assert commands.argv == [['/usr/bin/xenstore-write',
                              '/libxl/pci/0000-00-03-0/driver_path', '/sys/bus/pci/drivers/e1000',
                              '/libxl/pci/0000-00-04-0/driver_path', '/sys/bus/pci/drivers/igb']]


@pytest.mark.parametrize('caps, capable', [
    ('pv hvm hvm_directio pv_directio hap shadow', True),
    ('pv hvm hap shadow', False),
    ('hvm hap', False),
])
def test_quarantine_capability_from_xl_info(caps, capable):
    out = 'host                   : dom0\nvirt_caps              : %s\nxen_major              : 4\n' % caps
    result, note = XenToolstack(RecordedCommands({'xl': (0, out, '')})).quarantine_capable()
    assert result is capable
    assert (note is None) is capable


@pytest.mark.parametrize('arch, version, caps, capable', [
    ('aarch64', (4, 17), 'hvm hap vpmu gnttab-v1', False),                              # the arm64 rig
    ('aarch64', (4, 17), 'hvm hvm_directio hap iommu_hap_pt_share gnttab-v1', False),   # an SMMU, still no PCI
    ('aarch64', (4, 21), 'hvm hvm_directio hap iommu_hap_pt_share gnttab-v1', True),
    ('aarch64', (4, 21), 'hvm hap gnttab-v1', False),
    ('x86_64', (4, 17), 'pv hvm hvm_directio pv_directio hap shadow', True),
])
def test_xen_on_arm_before_4_21_has_no_pci_passthrough(arch, version, caps, capable):
    out = 'virt_caps              : %s\n' % caps
    result, note = XenToolstack(RecordedCommands({'xl': (0, out, '')}), version, arch).quarantine_capable()
    assert result is capable
    if version == (4, 17) and arch == 'aarch64':
        assert note.startswith('Xen 4.17 on aarch64 has no PCI passthrough support (Arm has it from Xen 4.21 on')
        assert 'held by pciback in dom0' in note


XL_NO_PCI = (1, '', 'libxl: error: libxl_pci.c:837:libxl__device_pci_assignable_add: failed to quarantine 0000:00:01.0\n')


@pytest.mark.parametrize('kernel, pciback_holds', [
    ('6.1.0-44-arm64', True),             # Debian 12's arm64 rig: pciback holds devices, Xen does not quarantine
    ('6.12.117+deb13-arm64', False),      # Debian 13's: pciback's bind asks Xen for a PCI reset, ENOSYS
    (None, True),
])
def test_on_arm_without_pci_support_the_note_says_whether_pciback_can_hold_devices(kernel, pciback_holds):
    out = 'virt_caps              : hvm hap vpmu gnttab-v1\n'
    result, note = XenToolstack(RecordedCommands({'xl': (0, out, '')}), (4, 20), 'aarch64', kernel).quarantine_capable()
    assert result is False and note.startswith('Xen 4.20 on aarch64 has no PCI passthrough support')
    assert ('pciback can hold no device on this host' in note) is not pciback_holds
    assert ('the devices are held by pciback in dom0' in note) is pciback_holds


def test_a_refused_quarantine_off_x86_is_the_hypervisor_limit():
    with pytest.raises(QuarantineRefused) as caught:
        XenToolstack(RecordedCommands({'xl': XL_NO_PCI}), (4, 21), 'aarch64').quarantine(parse_pci_address('00:01.0'))
    assert 'Xen 4.21 on aarch64 has no PCI passthrough support' in str(caught.value)
    assert 'failed to quarantine 0000:00:01.0' in str(caught.value)


def test_a_refused_quarantine_on_x86_is_an_error():
    with pytest.raises(ToolstackError) as caught:
        XenToolstack(RecordedCommands({'xl': XL_NO_PCI}), (4, 17), 'x86_64').quarantine(parse_pci_address('00:01.0'))
    assert not isinstance(caught.value, QuarantineRefused)
    assert 'xl pci-assignable-add 0000:00:01.0 failed (rc=1)' in str(caught.value)


def test_driver_from_path_accepts_only_driver_directories():
    assert driver_from_path('/sys/bus/pci/drivers/xhci_hcd') == 'xhci_hcd'
    assert driver_from_path('/sys/bus/pci/drivers/xhci_hcd/') == 'xhci_hcd'
    assert driver_from_path('/sys/bus/pci/drivers/../../../etc') is None
    assert driver_from_path('/sys/bus/pci/drivers/..') is None
    assert driver_from_path('/etc/passwd') is None
    assert driver_from_path(None) is None


# ---- domains and their devices ------------------------------------------------------------------

XL_LIST = '''Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0  2048     2     r-----      25.6
web1                                         3   512     1     -b----       2.1
a name with blanks                          12  1024     2     --ps--       0.4
'''


def test_domains_are_read_from_xl_list_names_with_blanks_included():
    commands = RecordedCommands({'xl': (0, XL_LIST, '')})
    assert XenToolstack(commands, (4, 17)).domains() == [
        {'name': 'Domain-0', 'domid': 0, 'state': 'r-----'},
        {'name': 'web1', 'domid': 3, 'state': '-b----'},
        {'name': 'a name with blanks', 'domid': 12, 'state': '--ps--'},
    ]
    assert commands.argv == [['/usr/bin/xl', 'list']]


def test_pci_list_is_parsed_and_an_empty_one_prints_nothing():
    out = 'Vdev Device\n00.0 0000:00:03.0\n05.1 0000:0A:1c.5\n'
    commands = RecordedCommands({'xl': (0, out, '')})
    assert XenToolstack(commands, (4, 17)).pci_list(3) == [{'address': '0000:00:03.0', 'vslot': '00.0'},
                                                           {'address': '0000:0a:1c.5', 'vslot': '05.1'}]
    assert commands.argv == [['/usr/bin/xl', 'pci-list', '3']]
    assert XenToolstack(RecordedCommands({'xl': (0, '', '')})).pci_list(3) == []
    with pytest.raises(ToolstackError, match='invalid domain identifier'):
        XenToolstack(RecordedCommands({'xl': (1, '', 'x is an invalid domain identifier (rc=-6)\n')})).pci_list('x')


def test_attach_and_detach_pass_the_spec_as_one_argument():
    commands = RecordedCommands({})
    toolstack = XenToolstack(commands, (4, 17))
    toolstack.pci_attach(3, '0000:00:03.0,permissive=1')
    toolstack.pci_detach(3, parse_pci_address('00:03.0'))
    assert commands.argv == [['/usr/bin/xl', 'pci-attach', '3', '0000:00:03.0,permissive=1'],
                             ['/usr/bin/xl', 'pci-detach', '3', '0000:00:03.0']]
    failing = RecordedCommands({'xl': (1, '', 'libxl: error: ... PCI device 0:0:3.0 is not assignable\n')})
    with pytest.raises(ToolstackError, match='xl pci-attach 3 0000:00:03.0 failed .rc=1.: .*is not assignable'):
        XenToolstack(failing).pci_attach(3, '0000:00:03.0')


BACKENDS_WITH_OPTIONS = '''/local/domain/0/backend/pci/3/0/num_devs = "2"
/local/domain/0/backend/pci/3/0/dev-0 = "0000:00:04.0"
/local/domain/0/backend/pci/3/0/dev-1 = "0000:00:03.0"
/local/domain/0/backend/pci/3/0/opts-1 = "msitranslate=1,power_mgmt=0,permissive=1,rdm_policy=relaxed"
/local/domain/0/backend/pci/7/0/state = "6"
/local/domain/0/backend/pci/7/0/num_devs = "1"
/local/domain/0/backend/pci/7/0/dev-0 = "0000:00:03.0"
/local/domain/0/backend/pci/7/0/opts-0 = "msitranslate=0,power_mgmt=0,permissive=0,rdm_policy=strict"
'''


def test_pci_backends_give_the_live_holder_and_its_options():
    # The destroyed guest 7 left 00:03.0 in its closed backend, listed after guest 3's, which has it now: 3 it is
    # (the closed backend must not hide the live one).
    commands = RecordedCommands({'xenstore-ls': (0, BACKENDS_WITH_OPTIONS, ''), 'xenstore-list': (0, '0\n3\n', '')})
    backends = XenToolstack(commands, (4, 17)).pci_backends()
    assert backends == {
        '0000:00:04.0': {'domid': '3', 'options': {}},
        '0000:00:03.0': {'domid': '3', 'options': {'msitranslate': '1', 'power_mgmt': '0', 'permissive': '1',
                                                   'rdm_policy': 'relaxed'}},
    }
    commands = RecordedCommands({'xenstore-ls': (0, BACKENDS_WITH_OPTIONS, ''), 'xenstore-list': (0, '0\n3\n', '')})
    assert XenToolstack(commands, (4, 17)).backend_devices() == {'0000:00:04.0': '3', '0000:00:03.0': '3'}


@pytest.mark.parametrize('arch, version, caps, limit, asks_xl', [
    ('aarch64', (4, 17), 'hvm hap vpmu gnttab-v1', 'Xen 4.17 on aarch64 has no PCI passthrough to guests', False),
    ('aarch64', (4, 20), 'hvm hvm_directio hap', 'Xen 4.20 on aarch64 has no PCI passthrough to guests', False),
    ('aarch64', (4, 21), 'hvm hap gnttab-v1', 'Xen 4.21 on aarch64 reports no PCI passthrough support', True),
    ('aarch64', (4, 21), 'hvm hvm_directio hap iommu_hap_pt_share', None, True),
    ('x86_64', (4, 17), 'pv hvm hap shadow', None, False),       # a PV guest takes a device without an IOMMU
])
def test_guest_passthrough_limit(arch, version, caps, limit, asks_xl):
    commands = RecordedCommands({'xl': (0, 'virt_caps              : %s\n' % caps, '')})
    found = XenToolstack(commands, version, arch).guest_passthrough_limit()
    if limit is None:
        assert found is None
    else:
        assert found.startswith(limit) and found.endswith('no device can be attached to a guest on this host')
    assert (commands.argv == [['/usr/bin/xl', 'info']]) is asks_xl
