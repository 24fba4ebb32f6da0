# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pci_assignable's reset_method: sysfs, the udev rule file, check mode, diff, and refusals that change nothing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
from ansible_collections.xenpci.passthrough.plugins.modules import pci_assignable
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, MGMT_NIC
from ansible_collections.xenpci.passthrough.tests.unit.fakes.snapshot import HostSnapshot, assert_unchanged

RULES = 'etc/udev/rules.d/70-xenpci-passthrough-reset.rules'
HEADER = ('# Managed by the xenpci.passthrough collection (xenpci.passthrough.pci_assignable, option reset_method):\n'
          '# change the values through it. A line added here by hand makes its next run fail and leave this file\n'
          '# as it is.\n')


def rule(address, methods):
    return 'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="%s", ATTR{reset_method}="%s"\n' % (address, methods)


def rules_text(run):
    path = os.path.join(run.kernel.root, RULES)
    if not os.path.lexists(path):
        return None
    with open(path) as handle:
        return handle.read()


def reset_writes(run):
    return [(path, text) for path, text in run.kernel.writes if path.endswith('/reset_method')]


def test_reset_method_is_set_before_the_move_kept_in_a_rule_and_reported_then_idempotent(run):
    result = run(pci_assignable, devices=[E1000_A], reset_method=['bus'], _ansible_diff=True)
    assert result['changed'] is True and not result.get('failed'), result
    assert run.kernel.driver(E1000_A) == 'pciback'
    assert run.kernel.reset_enabled(E1000_A) == ['bus']
    assert result['devices'][0]['reset_method'] == ['bus']
    assert rules_text(run) == HEADER + rule(E1000_A, 'bus')
    drivers, rules = result['diff']
    assert drivers['before'] == '%s: e1000\n%s reset_method: flr bus\n' % (E1000_A, E1000_A)
    assert drivers['after'] == '%s: pciback\n%s reset_method: bus\n' % (E1000_A, E1000_A)
    assert rules['before'] == '' and rules['after'] == HEADER + rule(E1000_A, 'bus')
    assert rules['before_header'].endswith(RULES + ' (absent)')
    # pciback resets the device as it takes it: the method is set first.
    paths = [path for path, text in run.kernel.writes]
    assert paths.index('sys/bus/pci/devices/%s/reset_method' % E1000_A) < paths.index('sys/bus/pci/drivers/pciback/bind')
    run.kernel.writes[:] = []
    again = run(pci_assignable, devices=[E1000_A], reset_method=['bus'], _ansible_diff=True)
    assert again['changed'] is False, again
    assert again['devices'][0]['reset_method'] == ['bus']
    assert run.kernel.writes == []
    assert again['diff'][0] == {'before': '', 'after': ''}
    assert again['diff'][1]['before'] == again['diff'][1]['after']


def test_a_device_already_held_changes_only_its_reset_method(run):
    run(pci_assignable, devices=[E1000_A])
    result = run(pci_assignable, devices=[E1000_A], reset_method='flr')
    assert result['changed'] is True and result['devices'][0]['action'] == 'unchanged'
    assert run.kernel.reset_enabled(E1000_A) == ['flr'] and rules_text(run) == HEADER + rule(E1000_A, 'flr')


def test_check_mode_writes_nothing_and_says_what_would_change(run):
    before = HostSnapshot.take(run.kernel.root, run.xen)
    result = run(pci_assignable, devices=[E1000_A, E1000_B], reset_method=['bus', 'flr'],
                 _ansible_check_mode=True, _ansible_diff=True)
    assert result['changed'] is True
    assert [device['reset_method'] for device in result['devices']] == [['bus', 'flr'], ['bus', 'flr']]
    assert result['diff'][1]['after'] == HEADER + rule(E1000_A, 'bus flr') + rule(E1000_B, 'bus flr')
    assert run.kernel.writes == []
    assert_unchanged(before, run.kernel.root, run.xen)
    # A reset method alone is a change too.
    run(pci_assignable, devices=[E1000_A])
    again = run(pci_assignable, devices=[E1000_A], reset_method=['bus'], _ansible_check_mode=True)
    assert again['changed'] is True and run.kernel.reset_enabled(E1000_A) == ['flr', 'bus']


def test_other_devices_lines_are_kept_and_default_removes_a_line_then_the_file(run):
    run(pci_assignable, devices=[E1000_B], reset_method=['flr'])
    run(pci_assignable, devices=[E1000_A], reset_method=['bus'])
    assert rules_text(run) == HEADER + rule(E1000_A, 'bus') + rule(E1000_B, 'flr')
    result = run(pci_assignable, devices=[E1000_A], reset_method='default', _ansible_diff=True)
    assert result['changed'] is True
    assert result['devices'][0]['reset_method'] == ['flr', 'bus'] and run.kernel.reset_enabled(E1000_A) == ['flr', 'bus']
    assert rules_text(run) == HEADER + rule(E1000_B, 'flr')
    assert result['diff'][1]['after'] == HEADER + rule(E1000_B, 'flr')
    again = run(pci_assignable, devices=[E1000_A], reset_method='default')
    assert again['changed'] is False, again
    last = run(pci_assignable, devices=[E1000_B], reset_method=['default'], _ansible_diff=True)
    assert last['changed'] is True and rules_text(run) is None
    assert last['diff'][1]['after_header'].endswith(RULES + ' (absent)')
    assert run.kernel.reset_enabled(E1000_B) == ['flr', 'bus']


def test_a_device_given_back_keeps_its_reset_method_unless_default_is_given(run):
    run(pci_assignable, devices=[E1000_A, E1000_B], reset_method=['bus'])
    back = run(pci_assignable, devices=[E1000_A], state='absent')
    assert back['changed'] is True and 'reset_method' not in back['devices'][0]
    assert run.kernel.driver(E1000_A) == 'e1000' and run.kernel.reset_enabled(E1000_A) == ['bus']
    assert rules_text(run) == HEADER + rule(E1000_A, 'bus') + rule(E1000_B, 'bus')
    dropped = run(pci_assignable, devices=[E1000_B], state='absent', reset_method='default')
    assert dropped['changed'] is True and dropped['devices'][0]['reset_method'] == ['flr', 'bus']
    assert run.kernel.driver(E1000_B) == 'e1000' and run.kernel.reset_enabled(E1000_B) == ['flr', 'bus']
    assert rules_text(run) == HEADER + rule(E1000_A, 'bus')


@pytest.mark.parametrize('value, message', [
    (['flr', 'warm'], "'warm' is not a reset method Linux knows"),
    (['pm'], '%s does not offer pm (reset_method [pm])' % E1000_B),
    (['bus', 'bus'], 'bus named more than once'),
    ([], 'would disable every reset'),
])
def test_a_bad_reset_method_is_refused_with_nothing_changed(run, value, message):
    with open(os.path.join(run.kernel.root, 'existing'), 'w') as handle:     # the tree is not empty of files
        handle.write('x\n')
    os.makedirs(os.path.dirname(os.path.join(run.kernel.root, RULES)))
    with open(os.path.join(run.kernel.root, RULES), 'w') as handle:
        handle.write(HEADER + rule('0000:00:09.0', 'flr'))
    before = HostSnapshot.take(run.kernel.root, run.xen)
    result = run(pci_assignable, devices=[E1000_A, E1000_B], reset_method=value)
    assert result['failed'] is True and message in result['msg'], result['msg']
    assert 'nothing was changed' in result['msg']
    assert run.kernel.writes == []
    assert run.kernel.driver(E1000_A) == run.kernel.driver(E1000_B) == 'e1000'
    assert_unchanged(before, run.kernel.root, run.xen)


def test_a_kernel_without_reset_method_is_refused_with_nothing_changed(run, monkeypatch):
    monkeypatch.setattr(XenHost, 'kernel_release', property(lambda host: '5.10.0-28-amd64'))
    for address in (E1000_A, E1000_B):
        os.unlink(os.path.join(run.kernel.paths.pci_devices, address, 'reset_method'))
    before = HostSnapshot.take(run.kernel.root, run.xen)
    result = run(pci_assignable, devices=[E1000_A, E1000_B], reset_method=['flr'])
    assert result['failed'] is True
    assert '%s: Linux 5.10.0-28-amd64 has no reset_method (it came in 5.15), so reset_method [flr] cannot be set' \
        % E1000_A in result['msg'], result['msg']
    assert E1000_B in result['msg'] and 'nothing was changed' in result['msg']
    assert run.kernel.writes == []
    assert_unchanged(before, run.kernel.root, run.xen)


def test_a_refused_move_puts_the_reset_methods_back_and_writes_no_rule(run):
    result = run(pci_assignable, devices=[E1000_A, MGMT_NIC], reset_method=['bus'])
    assert result['failed'] is True and 'carries the default route' in result['msg']
    assert run.kernel.driver(E1000_A) == 'e1000'
    assert run.kernel.reset_enabled(E1000_A) == ['flr', 'bus'] and run.kernel.reset_enabled(MGMT_NIC) == ['flr', 'bus']
    assert [text for path, text in reset_writes(run)] == ['bus\n', 'bus\n', 'flr bus\n', 'flr bus\n']
    assert rules_text(run) is None


def test_a_move_that_fails_puts_the_reset_methods_back(run):
    run.kernel.fail_write('sys/bus/pci/drivers/pciback/bind', errno.EIO)
    result = run(pci_assignable, devices=[E1000_A], reset_method=['bus'])
    assert result['failed'] is True and 'put back' in result['msg']
    assert run.kernel.driver(E1000_A) == 'e1000' and run.kernel.reset_enabled(E1000_A) == ['flr', 'bus']
    assert rules_text(run) is None


def test_a_write_the_kernel_refuses_changes_nothing_and_moves_nothing(run):
    run.kernel.fail_write('sys/bus/pci/devices/%s/reset_method' % E1000_B, errno.EINVAL)
    result = run(pci_assignable, devices=[E1000_A, E1000_B], reset_method=['flr'])
    assert result['failed'] is True, result
    assert "%s: the kernel refused reset_method 'flr' (EINVAL" % E1000_B in result['msg']
    assert run.kernel.reset_enabled(E1000_A) == ['flr', 'bus']
    assert run.kernel.driver(E1000_A) == run.kernel.driver(E1000_B) == 'e1000'
    assert rules_text(run) is None
