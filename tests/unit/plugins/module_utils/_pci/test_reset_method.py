# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""reset_method: the request, the fake kernel's reset_method_store, the plan, and the udev rule file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.reset_method import (
    DEFAULT,
    RULES_HEADER,
    ResetMethodError,
    parse_request,
    parse_rules,
    plan_reset_methods,
    render_rules,
    rules_path,
)
from ansible_collections.xenpci.passthrough.tests.unit.fakes.config_space import ENDPOINT, config_space
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel, KernelSysfs
from ansible_collections.xenpci.passthrough.tests.unit.fakes.snapshot import HostSnapshot, assert_unchanged

NIC = '0000:03:00.0'
GPU = '0000:04:00.0'
OLD = '0000:05:00.0'
RELEASE = '6.1.0-test-amd64'


def rule(address, methods):
    return 'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="%s", ATTR{reset_method}="%s"\n' % (address, methods)


@pytest.fixture
def host(tmp_path):
    kernel = FakeKernel(tmp_path)
    kernel.add_device(NIC, driver='e1000', reset_methods='flr bus')
    kernel.add_device(GPU, vendor='10de', device='1b80', class_code='030000', reset_methods='pm bus')
    return kernel


def plan(host, addresses, value, release=RELEASE):
    return plan_reset_methods(host.paths, KernelSysfs(host), addresses, value, release)


def read_rules(host):
    with open(rules_path(host.paths)) as handle:
        return handle.read()


# ---- the request --------------------------------------------------------------------------------

@pytest.mark.parametrize('value, expected', [
    (['flr'], ('flr',)),
    (['bus', 'flr'], ('bus', 'flr')),
    (['flr bus'], ('flr', 'bus')),
    ('flr', ('flr',)),
    (['default'], DEFAULT),
    ('default', DEFAULT),
    (None, None),
])
def test_a_request_is_the_methods_in_the_order_given_or_default(value, expected):
    assert parse_request(value) == expected


@pytest.mark.parametrize('value, message', [
    (['flr', 'warm'], "'warm' is not a reset method Linux knows"),
    (['FLR'], "'FLR' is not a reset method"),
    (['flr', 'flr'], 'flr named more than once'),
    ([], 'would disable every reset'),
    ([' '], 'would disable every reset'),
    (['default', 'flr'], 'default stands alone'),
    ([3], 'is not a reset method name'),
])
def test_a_bad_request_is_refused_naming_the_value(value, message):
    with pytest.raises(ResetMethodError) as caught:
        parse_request(value)
    assert message in str(caught.value) and 'nothing was changed' in str(caught.value)


# ---- the fake kernel, as reset_method_store --------------------------------------------------------

def test_the_fake_reset_method_behaves_like_the_kernels(host):
    sysfs = KernelSysfs(host)
    assert sysfs.reset_methods(NIC) == ['flr', 'bus']
    sysfs.set_reset_method(NIC, 'bus flr')
    assert sysfs.reset_methods(NIC) == ['bus', 'flr']
    for refused in ('pm', 'flr warm', 'flr\tbus'):
        with pytest.raises(OSError) as caught:
            sysfs.set_reset_method(NIC, refused)
        assert caught.value.errno == errno.EINVAL
        assert sysfs.reset_methods(NIC) == ['bus', 'flr']          # the kernel keeps what it had
    sysfs.set_reset_method(NIC, 'bus')
    sysfs.set_reset_method(NIC, 'flr')                             # supported though not enabled: taken
    assert host.reset_enabled(NIC) == ['flr']
    sysfs.set_reset_method(NIC, '')
    assert sysfs.reset_methods(NIC) == []
    sysfs.set_reset_method(NIC, 'default')
    assert sysfs.reset_methods(NIC) == ['flr', 'bus']


# ---- the plan ------------------------------------------------------------------------------------

def test_a_plan_sets_sysfs_where_it_differs_and_writes_one_rule_line_per_device(host):
    first = plan(host, [NIC, GPU], ['bus'])
    assert first.changed and first.runtime_changed and first.planned.changed
    assert first.methods() == {NIC: ['bus'], GPU: ['bus']}
    assert host.writes == []                                       # planning writes nothing
    first.apply_runtime()
    first.write_file()
    assert host.reset_enabled(NIC) == host.reset_enabled(GPU) == ['bus']
    assert read_rules(host) == RULES_HEADER + rule(NIC, 'bus') + rule(GPU, 'bus')
    assert stat_mode(rules_path(host.paths)) == 0o644
    host.writes[:] = []
    second = plan(host, [NIC, GPU], ['bus'])
    assert not second.changed
    second.apply_runtime()
    assert host.writes == []                                       # nothing to write: nothing written


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


def test_lines_of_other_devices_are_kept_and_default_drops_a_line_then_the_file(host):
    os.makedirs(os.path.dirname(rules_path(host.paths)))
    with open(rules_path(host.paths), 'w') as handle:
        handle.write(RULES_HEADER + rule('0000:09:00.0', 'flr'))
    narrowed = plan(host, [NIC], ['flr'])
    narrowed.apply_runtime()
    narrowed.write_file()
    assert read_rules(host) == RULES_HEADER + rule(NIC, 'flr') + rule('0000:09:00.0', 'flr')
    back = plan(host, [NIC], 'default')
    back.apply_runtime()
    back.write_file()
    assert host.reset_enabled(NIC) == ['flr', 'bus']
    assert back.methods() == {NIC: ['flr', 'bus']}
    assert read_rules(host) == RULES_HEADER + rule('0000:09:00.0', 'flr')
    last = plan(host, ['0000:09:00.0'], 'default')                 # not on this bus: its line is not touched
    assert not last.planned.changed
    os.unlink(rules_path(host.paths))
    with open(rules_path(host.paths), 'w') as handle:
        handle.write(RULES_HEADER + rule(NIC, 'flr'))
    emptied = plan(host, [NIC], ['default'])
    assert emptied.planned.after is None
    emptied.write_file()
    assert not os.path.lexists(rules_path(host.paths))


def test_default_is_written_each_run_and_changes_only_when_the_kernel_shows_other_methods(host):
    sysfs = KernelSysfs(host)
    sysfs.set_reset_method(NIC, 'bus')
    host.writes[:] = []
    first = plan(host, [NIC], 'default')
    first.apply_runtime()
    assert first.runtime_changed and host.reset_enabled(NIC) == ['flr', 'bus']
    again = plan(host, [NIC], 'default')
    again.apply_runtime()
    assert not again.changed                                       # written (the kernel alone knows), not changed
    assert [path for path, text in host.writes] == ['sys/bus/pci/devices/%s/reset_method' % NIC] * 2


def test_a_method_config_space_offers_is_taken_though_disabled_now(tmp_path):
    host = FakeKernel(tmp_path)
    host.add_device(NIC, reset_methods='flr pm bus', reset_enabled='bus',
                    config=config_space(pcie_type=ENDPOINT, flr=True))
    wanted = plan(host, [NIC], ['flr'])
    wanted.apply_runtime()
    assert host.reset_enabled(NIC) == ['flr']
    with pytest.raises(ResetMethodError) as caught:
        plan(host, [NIC], ['acpi'])
    assert 'does not offer acpi' in str(caught.value)
    assert 'the kernel lists flr for it and its config space offers pm' in str(caught.value)


@pytest.mark.parametrize('value, words', [
    (['pm'], ['%s does not offer pm (reset_method [pm])' % NIC, 'the kernel lists flr bus for it']),
    (['flr', 'bus', 'acpi'], ['%s does not offer acpi' % NIC]),
    (['cxl'], ["'cxl' is not a reset method Linux knows"]),
])
def test_a_method_a_device_does_not_offer_is_refused_before_anything_is_written(host, value, words):
    before = HostSnapshot.take(host.root)
    with pytest.raises(ResetMethodError) as caught:
        plan(host, [GPU, NIC], value)
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert 'nothing was changed' in str(caught.value)
    assert host.writes == []
    assert_unchanged(before, host.root)


def test_a_disabled_method_is_named_with_the_way_to_see_it_again(host):
    KernelSysfs(host).set_reset_method(NIC, 'flr')
    with pytest.raises(ResetMethodError) as caught:
        plan(host, [NIC], ['bus'])
    assert 'the kernel lists flr for it' in str(caught.value)
    assert 'shows again after reset_method: default' in str(caught.value)


@pytest.mark.parametrize('release, message', [
    ('5.10.0-28-amd64', '%s: Linux 5.10.0-28-amd64 has no reset_method (it came in 5.15)' % OLD),
    ('6.1.0-test-amd64', '%s has no reset_method file: the kernel offers no reset for it' % OLD),
])
def test_a_kernel_or_device_without_reset_method_is_refused(host, release, message):
    host.add_device(OLD, reset_methods='flr')
    os.unlink(os.path.join(host.paths.pci_devices, OLD, 'reset_method'))
    before = HostSnapshot.take(host.root)
    with pytest.raises(ResetMethodError) as caught:
        plan(host, [NIC, OLD], ['flr'], release=release)
    assert message in str(caught.value) and 'reset_method [flr] cannot be set' in str(caught.value)
    assert host.writes == []
    assert_unchanged(before, host.root)


def test_a_device_not_on_the_bus_is_left_to_the_caller(host):
    assert plan(host, ['0000:0a:00.0'], ['flr']).devices == []


def test_a_write_the_kernel_refuses_puts_back_the_devices_already_written(host):
    host.fail_write('sys/bus/pci/devices/%s/reset_method' % GPU, errno.EINVAL)
    wanted = plan(host, [NIC, GPU], ['bus'])
    with pytest.raises(ResetMethodError) as caught:
        wanted.apply_runtime()
    assert "%s: the kernel refused reset_method 'bus' (EINVAL" % GPU in str(caught.value)
    assert 'nothing was changed' in str(caught.value)
    assert host.reset_enabled(NIC) == ['flr', 'bus'] and host.reset_enabled(GPU) == ['pm', 'bus']
    assert not os.path.exists(rules_path(host.paths))


def test_undo_writes_back_what_the_kernel_showed(host):
    wanted = plan(host, [NIC, GPU], ['bus'])
    wanted.apply_runtime()
    assert wanted.undo_runtime() == ''
    assert host.reset_enabled(NIC) == ['flr', 'bus'] and host.reset_enabled(GPU) == ['pm', 'bus']
    assert wanted.methods() == {NIC: ['flr', 'bus'], GPU: ['pm', 'bus']}


# ---- the rule file -----------------------------------------------------------------------------

def test_rules_render_and_parse_back():
    entries = {GPU: ['bus'], NIC: ['flr', 'bus']}
    text = render_rules(entries)
    assert text == RULES_HEADER + rule(NIC, 'flr bus') + rule(GPU, 'bus')
    assert parse_rules(text, 'r') == entries
    assert render_rules({}) is None


@pytest.mark.parametrize('line', [
    'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="0000:03:00.0", ATTR{reset_method}="warm"',
    'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="03:00.0", ATTR{reset_method}="flr"',
    'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="0000:03:00.0", ATTR{reset_method}=""',
    'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="0000:03:00.0", ATTR{power/control}="on"',
    'SUBSYSTEM=="net", NAME="eth9"',
])
def test_a_line_the_collection_did_not_write_is_refused_and_the_file_kept(host, line):
    path = rules_path(host.paths)
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write(RULES_HEADER + line + '\n')
    before = HostSnapshot.take(host.root)
    with pytest.raises(ResetMethodError) as caught:
        plan(host, [NIC], ['flr'])
    assert '%s line 4 is not a reset_method rule this collection writes' % path in str(caught.value)
    assert_unchanged(before, host.root)


def test_a_symlink_at_the_rule_file_is_refused(host):
    path = rules_path(host.paths)
    os.makedirs(os.path.dirname(path))
    victim = os.path.join(host.root, 'victim')
    with open(victim, 'w') as handle:
        handle.write('keep\n')
    os.symlink(victim, path)
    before = HostSnapshot.take(host.root)
    with pytest.raises(ResetMethodError) as caught:
        plan(host, [NIC], ['flr'])
    assert 'symbolic link' in str(caught.value) and path in str(caught.value)
    assert host.writes == []
    assert_unchanged(before, host.root)
