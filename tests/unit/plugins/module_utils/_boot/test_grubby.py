# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.cmdline import parse_params
from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.grubby import Grubby, GrubbyError, parse_info
from ansible_collections.xenpci.passthrough.tests.unit.fakes.grubby import FakeEntry, FakeGrubby


def _host(**options):
    return FakeGrubby([
        FakeEntry('/boot/vmlinuz-5.14.0-427', 'ro crashkernel=auto rhgb quiet', root='/dev/mapper/rhel-root'),
        FakeEntry('/boot/vmlinuz-5.14.0-362', 'ro crashkernel=auto rhgb quiet iommu=soft', root='/dev/mapper/rhel-root'),
    ], **options)


def _ensure(host, params, state='present'):
    grubby = Grubby(host.commands)
    wanted = parse_params(params, state)
    plan = grubby.plan(wanted)
    if plan.changed:
        return plan, grubby.apply(plan, wanted)
    return plan, plan.cmdline_after


def test_parse_info_reads_every_entry_and_root_apart():
    entries = parse_info('index=0\nkernel="/boot/vmlinuz-a"\nargs="ro quiet"\nroot="UUID=1"\ntitle=A\n'
                         'index=1\nnon linux entry\nindex=2\nkernel=/boot/vmlinuz-b\nargs="ro"\n')
    assert [(entry.index, entry.kernel, entry.cmdline) for entry in entries] == [
        (0, '/boot/vmlinuz-a', 'root=UUID=1 ro quiet'), (2, '/boot/vmlinuz-b', 'ro')]


def test_set_on_every_entry_then_nothing_to_do():
    host = _host()
    plan, after = _ensure(host, {'iommu': 'pt', 'intel_iommu': 'on'})
    assert plan.changed is True
    assert plan.cmdline_before == 'root=/dev/mapper/rhel-root ro crashkernel=auto rhgb quiet'
    assert after == 'root=/dev/mapper/rhel-root ro crashkernel=auto rhgb quiet iommu=pt intel_iommu=on'
    assert plan.cmdline_after == after
    assert [entry.args for entry in host.entries] == [
        ['ro', 'crashkernel=auto', 'rhgb', 'quiet', 'iommu=pt', 'intel_iommu=on'],
        ['ro', 'crashkernel=auto', 'rhgb', 'quiet', 'iommu=pt', 'intel_iommu=on']]
    again, _after = _ensure(host, {'iommu': 'pt', 'intel_iommu': 'on'})
    assert again.changed is False and again.diff()['before'] == ''
    assert [call[1:] for call in host.calls if any(arg.startswith('--update') for arg in call)] == [
        ['--update-kernel=ALL', '--remove-args=iommu=soft'],
        ['--update-kernel=ALL', '--args=iommu=pt intel_iommu=on']]


def test_absent_and_a_bare_key():
    host = _host(show_root_apart=False)
    _ensure(host, {'rhgb': None, 'quiet': None, 'iommu': 'soft'}, 'absent')
    assert [entry.args for entry in host.entries] == [['ro', 'crashkernel=auto'], ['ro', 'crashkernel=auto']]
    _plan, after = _ensure(host, {'nomodeset': None})
    assert after == 'root=/dev/mapper/rhel-root ro crashkernel=auto nomodeset'


def test_check_mode_plan_predicts_and_changes_nothing():
    host = _host()
    plan = Grubby(host.commands).plan(parse_params({'quiet': None}, 'absent'))
    assert plan.cmdline_after == 'root=/dev/mapper/rhel-root ro crashkernel=auto rhgb'
    assert plan.diff()['after'] == ('/boot/vmlinuz-5.14.0-427: root=/dev/mapper/rhel-root ro crashkernel=auto rhgb\n'
                                    '/boot/vmlinuz-5.14.0-362: root=/dev/mapper/rhel-root ro crashkernel=auto rhgb iommu=soft\n')
    assert all('quiet' in entry.args for entry in host.entries)


@pytest.mark.parametrize('params, message', [
    ({'console': ['tty0', 'ttyS0']}, 'more than once'),
    ({'acpi_osi': 'Windows 2012'}, 'blanks'),
    ({'root': '/dev/sda1'}, 'root='),
])
def test_what_grubby_cannot_do_is_refused_before_running_it(params, message):
    host = _host()
    with pytest.raises(GrubbyError, match=message):
        Grubby(host.commands).plan(parse_params(params, 'present'))
    assert host.calls == []


def test_a_result_other_than_planned_is_an_error():
    host = _host()
    grubby = Grubby(host.commands)
    wanted = parse_params({'iommu': 'pt'}, 'present')
    plan = grubby.plan(wanted)
    host.entries[0].args.extend(['iommu=a', 'iommu=b'])    # changed behind the plan's back
    with pytest.raises(GrubbyError, match='did not leave the entries as planned'):
        grubby.apply(plan, wanted)


def test_grubby_failures_and_absence_are_reported():
    host = _host()
    host.fail_next = (1, 'grubby: error reading /boot/loader/entries\n')
    with pytest.raises(GrubbyError, match='error reading'):
        Grubby(host.commands).plan(parse_params({'quiet': None}, 'present'))
    with pytest.raises(GrubbyError, match='not installed'):
        Grubby(_host(installed=()).commands).plan(parse_params({'quiet': None}, 'present'))


def test_the_fake_refuses_multiboot_arguments_like_bls_grubby():
    assert _host().run(['/usr/sbin/grubby', '--update-kernel=ALL', '--mbargs=iommu=1'])[0] == 1
