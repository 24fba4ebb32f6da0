# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Xen's quarantine through libxenctrl in the module's process, against a fake library acting on the fake Xen."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import parse_pci_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen import xenctrl
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.report import DeviceFilter, build_report
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.binding import PassthroughError, open_binder
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import XenToolstack
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.xenctrl import (
    DOMID_IO,
    XEN_DOMCTL_DEV_RDM_RELAXED,
    encode_sbdf,
    load_xenctrl,
    virt_caps_words,
)
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, XHCI, build_rig_host
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import FakeXen
from ansible_collections.xenpci.passthrough.tests.unit.fakes.xenctrl import FakeLibxenctrl


def binder(kernel, xen, **options):
    return open_binder(kernel.paths, xen.commands, sysfs=xen.sysfs, uname=kernel.uname, **options)


def host_report(kernel, xen):
    return build_report(kernel.paths, xen.commands, DeviceFilter(), names=False, uname=kernel.uname, sysfs=xen.sysfs)['host']


def xl_calls(xen, since=0):
    return [call for call in xen.calls[since:] if call[0] == 'xl']


def xc_calls(library, name):
    return [args for called, args in library.calls if called == name]


@pytest.mark.parametrize('address, sbdf', [
    ('0000:00:03.0', 0x18),
    ('0000:01:00.1', 0x101),
    ('0001:02:1f.7', 0x102ff),
    ('ffff:ff:00.0', 0xffffff00),
])
def test_sbdf_is_libxl_pci_encode_bdf(address, sbdf):
    assert encode_sbdf(parse_pci_address(address)) == sbdf


def test_virt_caps_read_as_xl_info_prints_them(kernel, xen, libxenctrl):
    toolstack = XenToolstack(xen.commands, (4, 17), 'x86_64')
    from_library = toolstack.xenctrl().virt_caps()
    printed = [line for line in xen.commands.run(['xl', 'info'])[1].splitlines() if line.startswith('virt_caps')]
    assert from_library == printed[0].split(':', 1)[1].strip() == 'pv hvm hvm_directio pv_directio hap shadow'
    assert virt_caps_words(0) == ''
    assert virt_caps_words(1 << 2) == ''          # directio alone names no guest type


def test_the_library_loads_by_xens_soname_only(kernel, xen, libxenctrl):
    control, reason = load_xenctrl((4, 17))
    assert control is not None and reason is None
    control, reason = load_xenctrl((4, 20))
    assert control is None and reason.startswith('libxenctrl.so.4.20 cannot be used: ') and 'No such file' in reason
    control, reason = load_xenctrl(None)
    assert control is None and 'soname' in reason


def test_without_the_library_xl_does_it_and_pci_info_says_why(kernel, xen):
    binder(kernel, xen).ensure([E1000_A], 'present')
    assert xl_calls(xen) == [['xl', 'info'], ['xl', 'pci-assignable-add', E1000_A]]
    report = host_report(kernel, xen)
    assert report['xen']['quarantine_through'] == 'xl'
    assert report['xen']['xenctrl_note'].startswith('libxenctrl.so.4.17 cannot be used')


def test_assign_and_give_back_run_no_xl_at_all(kernel, xen, libxenctrl):
    result = binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert result['changed'] is True and result['hypervisor_limit'] is None
    assert xen.owner == {E1000_A: DOMID_IO, E1000_B: DOMID_IO}
    relaxed = XEN_DOMCTL_DEV_RDM_RELAXED
    assert xc_calls(libxenctrl, 'xc_assign_device') == [(DOMID_IO, E1000_A, relaxed), (DOMID_IO, E1000_B, relaxed)]
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'pciback'
    assert all(device['quarantined'] is True for device in result['devices']) and xl_calls(xen) == []
    # what xl sees of it: listed assignable, and de-quarantined (so given back) by xl itself
    assert xen.commands.run(['xl', 'pci-assignable-list'])[1].split() == [E1000_A, E1000_B]
    assert xen.commands.run(['xl', 'pci-assignable-remove', '-r', E1000_B])[0] == 0
    assert kernel.driver(E1000_B) == 'e1000'
    calls = len(xen.calls)
    back = binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')
    assert back['changed'] is True
    assert xen.owner == {} and kernel.driver(E1000_A) == 'e1000' and E1000_A not in kernel.slots()
    assert xc_calls(libxenctrl, 'xc_deassign_device') == [(DOMID_IO, E1000_A)]
    assert xl_calls(xen, calls) == []
    assert [call[0] for call in xen.calls[calls:]] == ['xenstore-ls', 'xenstore-ls', 'xenstore-rm']


def test_a_run_that_changes_nothing_asks_xen_nothing(kernel, xen, libxenctrl):
    binder(kernel, xen).ensure([E1000_A], 'present')
    calls, xc = len(xen.calls), len(libxenctrl.calls)
    assert binder(kernel, xen).ensure([E1000_A], 'present')['changed'] is False
    assert libxenctrl.calls[xc:] == [] and [call[0] for call in xen.calls[calls:]] == ['xenstore-ls', 'xenstore-ls']


def test_a_refused_quarantine_puts_the_batch_back_and_names_the_device(kernel, xen, libxenctrl):
    xen.attach(XHCI, 5)            # a guest holds it in Xen, while dom0's sysfs still shows xhci_hcd
    kernel_drivers = dict((address, kernel.driver(address)) for address in (E1000_A, XHCI))
    with pytest.raises(PassthroughError) as caught:
        binder(kernel, xen, force=True).ensure([E1000_A, XHCI], 'present')
    message = str(caught.value)
    assert message.startswith('%s: failed to quarantine %s (xc_assign_device: %s)' % (XHCI, XHCI, 'Device or resource busy'))
    assert 'every device of this batch was put back as it was' in message
    assert dict((address, kernel.driver(address)) for address in (E1000_A, XHCI)) == kernel_drivers
    assert xen.owner == {XHCI: 5}                       # E1000_A quarantined, then de-quarantined
    assert xc_calls(libxenctrl, 'xc_deassign_device') == [(DOMID_IO, E1000_A)]
    assert kernel.slots() == []


def test_an_injected_errno_is_reported_in_words(kernel, xen, libxenctrl):
    libxenctrl.fail['xc_assign_device'] = errno.ENOMEM
    with pytest.raises(PassthroughError) as caught:
        binder(kernel, xen).ensure([E1000_A], 'present')
    assert 'failed to quarantine %s (xc_assign_device: Cannot allocate memory)' % E1000_A in str(caught.value)
    assert kernel.driver(E1000_A) == 'e1000' and xen.owner == {}


def test_without_an_iommu_physinfo_says_so_and_nothing_is_assigned(tmp_path, monkeypatch):
    kernel = build_rig_host(str(tmp_path))
    xen = FakeXen(kernel, quarantine=False)
    library = FakeLibxenctrl(xen)
    monkeypatch.setattr(xenctrl, '_open_library', library.opener)
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    assert 'virt_caps: pv hvm hap shadow' in result['hypervisor_limit']
    assert kernel.driver(E1000_A) == 'pciback' and xen.owner == {}
    assert xc_calls(library, 'xc_assign_device') == [] and xl_calls(xen) == []


def test_arm_xen_417_is_not_asked_to_quarantine(tmp_path, monkeypatch):
    kernel = build_rig_host(str(tmp_path), arch='aarch64')
    xen = FakeXen(kernel, quarantine=False, directio=True)
    library = FakeLibxenctrl(xen)
    monkeypatch.setattr(xenctrl, '_open_library', library.opener)
    result = binder(kernel, xen).ensure([E1000_A], 'present')
    assert 'PCI passthrough' in result['hypervisor_limit']
    assert kernel.driver(E1000_A) == 'pciback' and xc_calls(library, 'xc_assign_device') == []
    back = binder(kernel, xen).ensure([E1000_A], 'absent')
    assert back['changed'] is True and kernel.driver(E1000_A) == 'e1000'
    assert xc_calls(library, 'xc_deassign_device') == [] and xl_calls(xen) == []


def test_a_handle_that_cannot_be_opened_falls_back_to_xl(kernel, xen, libxenctrl):
    libxenctrl.fail['xc_interface_open'] = errno.EACCES
    binder(kernel, xen).ensure([E1000_A], 'present')
    assert ['xl', 'pci-assignable-add', E1000_A] in xen.calls and xen.owner == {E1000_A: DOMID_IO}
    libxenctrl.fail['xc_interface_open'] = errno.EACCES
    report = host_report(kernel, xen)
    assert report['xen']['quarantine_through'] == 'xl'
    assert report['xen']['xenctrl_note'] == 'libxenctrl: xc_interface_open: Permission denied'


def test_pci_info_says_libxenctrl_and_needs_no_xl_info(kernel, xen, libxenctrl):
    report = host_report(kernel, xen)
    assert report['xen']['quarantine_through'] == 'libxenctrl' and report['xen']['xenctrl_note'] is None
    assert report['xen']['quarantine_capable'] is True
    assert xl_calls(xen) == []


def test_libxls_name_record_goes_as_xl_drops_it(kernel, xen, libxenctrl):
    xen.set('/libxl/pci/0000-00-03-0/name', 'uplink')
    binder(kernel, xen).ensure([E1000_A], 'present')
    assert xen.record(E1000_A, 'name') is None and xen.owner == {E1000_A: DOMID_IO}
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'


def test_a_refused_quarantine_off_x86_is_the_hypervisor_limit(tmp_path, monkeypatch):
    kernel = build_rig_host(str(tmp_path), arch='aarch64', xen_version=(4, 21))
    xen = FakeXen(kernel, quarantine=False, directio=True)      # claims an IOMMU, refuses PCI devices
    library = FakeLibxenctrl(xen)
    monkeypatch.setattr(xenctrl, '_open_library', library.opener)
    result = binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert result['changed'] is True and kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'pciback'
    assert 'Xen 4.21 on aarch64 has no PCI passthrough support' in result['hypervisor_limit']
    assert 'failed to quarantine %s (xc_assign_device: No such device)' % E1000_A in result['hypervisor_limit']
    assert xc_calls(library, 'xc_assign_device') == [(DOMID_IO, E1000_A, XEN_DOMCTL_DEV_RDM_RELAXED)]  # asked once
    assert xl_calls(xen) == []


def test_off_x86_a_real_failure_stays_an_error(tmp_path, monkeypatch):
    kernel = build_rig_host(str(tmp_path), arch='aarch64', xen_version=(4, 21))
    xen = FakeXen(kernel)                     # Arm Xen 4.21 with PCI passthrough
    library = FakeLibxenctrl(xen)
    monkeypatch.setattr(xenctrl, '_open_library', library.opener)
    library.fail['xc_assign_device'] = errno.EBUSY
    with pytest.raises(PassthroughError) as caught:
        binder(kernel, xen).ensure([E1000_A], 'present')
    assert 'failed to quarantine %s (xc_assign_device: Device or resource busy)' % E1000_A in str(caught.value)
    assert 'no PCI passthrough support' not in str(caught.value)
    assert kernel.driver(E1000_A) == 'e1000' and xen.owner == {}
