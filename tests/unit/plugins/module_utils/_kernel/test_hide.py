# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.hide import (
    DISABLE_ON_REBOOT,
    DISABLED,
    ENABLE_ON_REBOOT,
    ENABLED,
    HIDDEN_BUT_CLAIMED,
    HIDE_UNPARSED,
    HideList,
    dom0_access,
    entry_text,
    parse_kernel_hide,
)


@pytest.mark.parametrize('text, entries', [
    ('(0000:03:00.0)', ['0000:03:00.0']),
    ('(03:00.0)(0000:04:00.1)', ['0000:03:00.0', '0000:04:00.1']),
    (' (0000:03:00.*) (0000:05:*.*) ', ['0000:03:00.*', '0000:05:*.*']),
    ('(3:0.0)', ['0000:03:00.0']),
])
def test_reads_the_entries_pcistub_init_reads(text, entries):
    found, error = parse_kernel_hide(text)
    assert error is None and [entry_text(entry) for entry in found] == entries


@pytest.mark.parametrize('text, fragment', [
    ('0000:03:00.0', 'at "0000:03:00.0"'),                     # no parentheses
    ('(0000:03:00.0)(zz)(0000:05:00.0)', 'at "(zz)(0000:05:00.0)"'),
    ('(0000:03:00.0', 'at "(0000:03:00.0"'),
    ('(0000:03:00.8)', 'out of range'),                        # pcistub_device_id_add: EINVAL, no message
    ('(0000:100:00.0)', 'out of range'),
])
def test_a_list_the_kernel_rejects_says_where(text, fragment):
    _entries, error = parse_kernel_hide(text)
    assert error is not None and fragment in error and 'hides nothing' in error


def test_a_rejected_list_still_names_what_it_meant():
    hide = HideList('x', '(0000:03:00.0)(zz)(0000:05:00.0)')
    assert hide.names('0000:05:00.0') and hide.names('0000:03:00.0') and not hide.names('0000:04:00.0')


def test_an_entry_names_the_devices_behind_a_hidden_bridge():
    hide = HideList('x', '(0000:00:1c.0)')
    assert hide.names('0000:03:00.0', 'pci0000:00/0000:00:1c.0/0000:03:00.0')
    assert not hide.names('0000:03:00.0', 'pci0000:00/0000:00:1d.0/0000:03:00.0')


def test_each_status():
    boot = HideList('modprobe.d', '(0000:03:00.0)(0000:04:00.0)')
    running = HideList('parameters/hide', '(0000:03:00.0)(0000:05:00.0)')
    slots = {'0000:03:00.0', '0000:05:00.0'}
    assert dom0_access('e1000e', '0000:06:00.0', None, boot, running, slots) == ENABLED
    assert dom0_access('e1000e', '0000:04:00.0', None, boot, running, slots) == DISABLE_ON_REBOOT
    assert dom0_access('pciback', '0000:03:00.0', None, boot, running, slots) == DISABLED
    assert dom0_access('pciback', '0000:05:00.0', None, boot, running, slots) == ENABLE_ON_REBOOT
    assert dom0_access('e1000e', '0000:03:00.0', None, boot, running, slots) == HIDDEN_BUT_CLAIMED
    # Given back on purpose (its slot removed): hidden again at the next boot, not a race.
    assert dom0_access('e1000e', '0000:03:00.0', None, boot, running, set()) == DISABLE_ON_REBOOT
    broken = HideList('modprobe.d', '(0000:03:00.0)(0000:04:00.9)')
    assert dom0_access('pciback', '0000:03:00.0', None, broken, running, slots) == HIDE_UNPARSED
    assert dom0_access('e1000e', '0000:06:00.0', None, broken, running, slots) == ENABLED
    assert dom0_access('e1000e', '0000:06:00.0', None, None, None, set()) == ENABLED
