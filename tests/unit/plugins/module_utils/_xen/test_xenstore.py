# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""xenstore through libxenstore in the module's process, against a fake library on the fake Xen's store."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import parse_pci_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.report import DeviceFilter, build_report
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.binding import PassthroughError, open_binder
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import ToolstackError, XenToolstack
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.xenctrl import DOMID_IO
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.xenstore import load_xenstore
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, XHCI


def binder(kernel, xen, **options):
    return open_binder(kernel.paths, xen.commands, sysfs=xen.sysfs, uname=kernel.uname, **options)


def a_busy_store(xen):
    """libxl's records of two devices, a guest with one of them, a destroyed guest's closed backend."""
    xen.set('/libxl/pci/0000-00-03-0/driver_path', '/sys/bus/pci/drivers/e1000')
    xen.set('/libxl/pci/0000-00-04-0/driver_path', '/sys/bus/pci/drivers/e1000')
    xen.set('/libxl/pci/0000-00-04-0/name', 'with "quotes" and \\ backslash')
    xen.attach(E1000_B, 3)
    xen.attach(XHCI, 4)
    xen.destroy(4)


def test_the_tree_is_what_xenstore_ls_lists(kernel, xen, libxenstore):
    a_busy_store(xen)
    store, reason = load_xenstore()
    assert reason is None
    by_commands = XenToolstack(xen.commands, (4, 17), 'x86_64', xenstore_loader=lambda: (None, 'not here'))
    for path in ('/libxl/pci', '/local/domain/0/backend/pci', '/local/domain', '/nothing/here'):
        assert store.tree(path) == by_commands.list_tree(path), path
    assert store.tree('/nothing/here') == {} and store.directory('/nothing') is None and store.read('/nothing') is None
    assert libxenstore.leaked == []


def test_records_backends_and_live_domains_read_in_process(kernel, xen, libxenstore):
    a_busy_store(xen)
    toolstack = XenToolstack(xen.commands, (4, 17), 'x86_64')
    by_commands = XenToolstack(xen.commands, (4, 17), 'x86_64', xenstore_loader=lambda: (None, 'not here'))
    calls = len(xen.calls)
    assert toolstack.libxl_records() == by_commands.libxl_records()
    assert toolstack.pci_backends() == by_commands.pci_backends()
    assert toolstack.backend_devices() == {E1000_B: '3'}       # the destroyed guest's closed backend does not count
    assert toolstack.live_domains() == by_commands.live_domains() == {'0', '3'}
    # only the command-path toolstack ran commands
    assert [call[0] for call in xen.calls[calls:]] == ['xenstore-ls', 'xenstore-ls', 'xenstore-list', 'xenstore-list']
    assert toolstack.xenstore_through() == 'libxenstore' and by_commands.xenstore_through() == 'commands'


def test_a_whole_run_spawns_nothing_where_both_libraries_load(kernel, xen, libxenstore, libxenctrl):
    calls = len(xen.calls)
    made = binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert made['changed'] is True and xen.owner == {E1000_A: DOMID_IO, E1000_B: DOMID_IO}
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'
    again = binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert again['changed'] is False
    back = binder(kernel, xen).ensure([E1000_A, E1000_B], 'absent')
    assert back['changed'] is True and kernel.driver(E1000_A) == 'e1000' and xen.owner == {}
    assert xen.record(E1000_A, 'driver_path') is None and xen.record(E1000_B, 'driver_path') is None
    assert xen.calls[calls:] == []                 # no xl, no xenstore-*, no process at all
    assert libxenstore.leaked == []
    changes = [call[0] for call in libxenstore.calls if call[0] in ('xs_write', 'xs_rm', 'xs_transaction_start')]
    assert changes == ['xs_transaction_start', 'xs_write', 'xs_write', 'xs_transaction_start', 'xs_rm', 'xs_rm']


def test_a_conflicting_transaction_is_tried_again(kernel, xen, libxenstore):
    libxenstore.conflicts = 2
    toolstack = XenToolstack(xen.commands, (4, 17), 'x86_64')
    toolstack.write_driver_paths({parse_pci_address(E1000_A): 'e1000'})
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'
    assert [call[1] for call in libxenstore.calls if call[0] == 'xs_transaction_end'] == [None, None, None]


def test_a_refused_write_changes_nothing_and_names_the_path(kernel, xen, libxenstore):
    path = '/libxl/pci/0000-00-04-0/driver_path'
    libxenstore.fail_paths[path] = errno.EACCES
    store_before = dict(xen.store)
    with pytest.raises(PassthroughError) as caught:
        binder(kernel, xen).ensure([E1000_A, E1000_B], 'present')
    assert str(caught.value) == ('cannot write libxl records to xenstore: xenstore: xs_write %s: Permission denied; '
                                 'nothing was moved' % path)
    assert xen.store == store_before                 # the transaction was aborted: E1000_A's record is not there either
    assert kernel.driver(E1000_A) == kernel.driver(E1000_B) == 'e1000'


def test_records_that_cannot_go_together_go_one_by_one(kernel, xen, libxenstore):
    for address in (E1000_A, E1000_B):
        xen.set('/libxl/pci/%s/driver_path' % address.replace(':', '-').replace('.', '-'), '/sys/bus/pci/drivers/e1000')
    stuck = '/libxl/pci/0000-00-03-0/driver_path'
    libxenstore.fail_paths[stuck] = errno.EACCES
    toolstack = XenToolstack(xen.commands, (4, 17), 'x86_64')
    with pytest.raises(ToolstackError) as caught:
        toolstack.remove_driver_paths([parse_pci_address(E1000_A), parse_pci_address(E1000_B), parse_pci_address(XHCI)])
    assert str(caught.value) == 'xenstore: xs_rm %s: Permission denied' % stuck
    assert xen.record(E1000_A, 'driver_path') == '/sys/bus/pci/drivers/e1000'
    assert xen.record(E1000_B, 'driver_path') is None       # removed on its own, XHCI's missing one passed over


def test_no_connection_falls_back_to_the_commands_and_pci_info_says_why(kernel, xen, libxenstore):
    libxenstore.fail_open = errno.ECONNREFUSED
    binder(kernel, xen).ensure([E1000_A], 'present')
    assert ['xenstore-write', '/libxl/pci/0000-00-03-0/driver_path', '/sys/bus/pci/drivers/e1000'] in xen.calls
    report = build_report(kernel.paths, xen.commands, DeviceFilter(), names=False, uname=kernel.uname, sysfs=xen.sysfs)
    assert report['host']['xen']['xenstore_through'] == 'commands'
    assert report['host']['xen']['xenstore_note'] == 'libxenstore: xs_open : Connection refused'


def test_a_connection_through_the_xenbus_device_is_not_kept(kernel, xen, libxenstore):
    libxenstore.device = os.devnull                   # the socket did not answer: libxenstore opened the device
    descriptors = set(os.listdir('/proc/self/fd'))
    store, reason = load_xenstore()
    assert store is None and 'would wait for it without a time limit' in reason and os.devnull in reason
    assert set(os.listdir('/proc/self/fd')) == descriptors        # closed again
    binder(kernel, xen).ensure([E1000_A], 'present')
    assert ['xenstore-write', '/libxl/pci/0000-00-03-0/driver_path', '/sys/bus/pci/drivers/e1000'] in xen.calls
