# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.ids import PciNames

# The shapes of the real file: a header, vendors with devices and subsystems (two tabs), a comment inside a
# vendor's block, a vendor whose device id is another vendor's device too, then the classes.
PCI_IDS = b"""#
#\tList of PCI ID's
#
0001  SafeNet (wrong ID)
1234  Technical Corp.
\t100e  Not the Intel one
8086  Intel Corporation
\t1000  82542 Gigabit Ethernet Controller (Fiber)
# a comment inside the block
\t100e  82540EM Gigabit Ethernet Controller
\t\t8086 001e  PRO/1000 MT Desktop Adapter
\t\t1234 5678  A subsystem named like a device
ffff  Illegal Vendor ID
# List of known device classes, subclasses and programming interfaces
C 02  Network controller
\t00  Ethernet controller
\t80  Network controller
C 0c  Serial bus controller
\t03  USB controller
\t\t30  XHCI
C ff  Unassigned class
"""


def test_names_of_the_ids_asked_for_and_no_others():
    names = PciNames.load_text(PCI_IDS, {('8086', '100e'), ('1234', '5678'), ('abcd', '0001')}, {'020000', '0c0330'})
    assert names.vendors == {'8086': 'Intel Corporation', '1234': 'Technical Corp.'}
    # 1234:5678 is only a subsystem line below 8086:100e; abcd is not in the file
    assert names.devices == {('8086', '100e'): '82540EM Gigabit Ethernet Controller'}
    assert names.class_name('020000') == 'Ethernet controller' and names.class_name('0c0330') == 'USB controller'
    assert names.classes == {'02': 'Network controller', '0200': 'Ethernet controller',
                             '0c': 'Serial bus controller', '0c03': 'USB controller'}


def test_a_device_is_found_in_its_own_vendors_block_only():
    names = PciNames.load_text(PCI_IDS, {('1234', '1000'), ('0001', '100e')}, set())
    assert names.devices == {}
    assert names.vendors == {'1234': 'Technical Corp.', '0001': 'SafeNet (wrong ID)'}


def test_a_base_class_without_its_subclass_names_the_base_class():
    names = PciNames.load_text(PCI_IDS, set(), {'ff0000', '0c8000', '02'})
    assert names.class_name('ff0000') == 'Unassigned class'
    assert names.class_name('0c8000') == 'Serial bus controller'
    assert names.class_name('02') == 'Network controller'
    assert names.vendors == {}


def test_ids_in_upper_case_and_a_last_line_without_a_newline():
    text = b'1b36  Red Hat, Inc.\n\t0001  QEMU PCI-PCI bridge\n\t000d  QEMU XHCI Host Controller'
    names = PciNames.load_text(text, {('1B36', '000D'), ('1b36', '0001')}, set())
    assert names.vendors == {'1B36': 'Red Hat, Inc.', '1b36': 'Red Hat, Inc.'}
    assert names.devices == {('1B36', '000D'): 'QEMU XHCI Host Controller', ('1b36', '0001'): 'QEMU PCI-PCI bridge'}


def test_a_vendor_line_is_never_taken_from_the_classes():
    names = PciNames.load_text(PCI_IDS, {('0c03', '0000')}, set())
    assert names.vendors == {}


def test_no_file_gives_no_names(tmp_path):
    names = PciNames.load([str(tmp_path / 'missing'), str(tmp_path / 'also-missing')], {('8086', '100e')}, {'02'})
    assert names.source is None and names.vendor_name('8086') is None
