# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.modprobe import (
    ModprobeError,
    cmdline_params,
    find_conflicts,
    logical_lines,
    merge_params,
    modprobe_files,
    owned_file,
    param_value,
    parse_hide,
    parse_modprobe_text,
    parse_owned,
    render_owned,
    split_params,
)


def _write(paths, relative, text):
    path = paths.join(*relative.split('/'))
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    with open(path, 'w') as handle:
        handle.write(text)
    return path


def test_the_owned_file_has_one_name_for_both_spellings(tmp_path):
    paths = HostPaths(str(tmp_path))
    assert owned_file(paths, 'xen-pciback') == owned_file(paths, 'xen_pciback') == \
        str(tmp_path / 'etc' / 'modprobe.d' / 'xenpci-xen-pciback.conf')


def test_continuation_lines_join():
    assert list(logical_lines('a \\\n  b\nc\n')) == [(1, 'a   b'), (3, 'c'), (4, '')]


def test_parameters_split_with_quotes():
    assert split_params('hide=(0000:03:00.0) p2="a b"  flag x-y=1') == [
        ('hide', '(0000:03:00.0)'), ('p2', 'a b'), ('flag', None), ('x_y', '1')]
    with pytest.raises(ValueError, match='not closed'):
        split_params('p="open')


def test_modprobe_files_are_read_in_kmod_order_with_etc_hiding_lib(tmp_path):
    paths = HostPaths(str(tmp_path))
    _write(paths, 'lib/modprobe.d/b.conf', '')
    _write(paths, 'etc/modprobe.d/b.conf', '')
    _write(paths, 'usr/lib/modprobe.d/a.conf', '')
    _write(paths, 'run/modprobe.d/c.conf', '')
    _write(paths, 'etc/modprobe.d/README', '')
    assert modprobe_files(paths) == [paths.join('usr', 'lib', 'modprobe.d', 'a.conf'),
                                     paths.join('etc', 'modprobe.d', 'b.conf'), paths.join('run', 'modprobe.d', 'c.conf')]


def test_malformed_lines_of_other_files_are_problems_not_errors():
    lines, problems = parse_modprobe_text('# c\noptions\noptions m p="x\nblacklist m\n  options  m-x  a=1 \\\n b=2\n', 'f')
    assert [(line.module, line.line, line.params) for line in lines] == [('m-x', 5, [('a', '1'), ('b', '2')])]
    assert problems == ['f line 2: "options" without a module name', 'f line 3: a double quote is not closed']


@pytest.mark.parametrize('value, addresses', [
    ('(0000:03:00.0)(04:00.1)', ['0000:03:00.0', '0000:04:00.1']),
    (['0000:03:00.0', '(0000:04:00.0)', '03:00.0'], ['0000:03:00.0', '0000:04:00.0']),
    ('0000:03:00.0', ['0000:03:00.0']),
    ('', []),
])
def test_hide_lists(value, addresses):
    assert parse_hide(value) == addresses


@pytest.mark.parametrize('value', ['(0000:82.0.0)', '(0000:03:00.0', '0000:03:00.*', ['(0000:03:00.0)x'], [3], '(03:00.0)(zz)'])
def test_bad_hide_lists_are_refused(value):
    with pytest.raises(ModprobeError, match='hide'):
        parse_hide(value)


@pytest.mark.parametrize('value, text', [
    (True, '1'), (False, '0'), (3, '3'), ('a b', 'a b'), ([1, 'x'], '1,x'),
])
def test_param_values(value, text):
    assert param_value('m', 'p', value) == text


@pytest.mark.parametrize('value, message', [
    ('a"b', 'double quote'), ('a\nb', 'line break'), (u'\u00e9', 'non-ASCII'), (None, 'no value'), (1.5, 'give a string'),
    ('', 'is empty'), ({'a': 1}, 'give a string'),
])
def test_bad_param_values(value, message):
    with pytest.raises(ModprobeError, match=message):
        param_value('m', 'p', value)


def test_hide_merges_and_removes_only_what_is_named():
    current = [('hide', '(0000:04:00.0)'), ('permissive', '1')]
    added = merge_params('xen-pciback', current, [('hide', ['0000:03:00.0', '04:00.0'])], 'present')
    assert added == [('hide', '(0000:04:00.0)(0000:03:00.0)'), ('permissive', '1')]
    removed = merge_params('xen-pciback', added, [('hide', '(0000:04:00.0)')], 'absent')
    assert removed == [('hide', '(0000:03:00.0)'), ('permissive', '1')]
    assert merge_params('xen-pciback', removed, [('hide', ['0000:03:00.0']), ('permissive', None)], 'absent') == []
    assert merge_params('xen-pciback', added, [('hide', None)], 'absent') == [('permissive', '1')]


def test_other_parameters_are_replaced():
    assert merge_params('m', [('a', '1')], [('a', 2), ('b', 'x y')], 'present') == [('a', '2'), ('b', 'x y')]


def test_the_owned_file_round_trips():
    text = render_owned('xen-pciback', [('hide', '(0000:03:00.0)'), ('label', 'a b')])
    assert text.endswith('\noptions xen-pciback hide=(0000:03:00.0) label="a b"\n') and text.startswith('# Managed by')
    assert parse_owned(text, 'f', 'xen_pciback') == ([('hide', '(0000:03:00.0)'), ('label', 'a b')], 'xen-pciback')
    assert render_owned('m', []) is None


@pytest.mark.parametrize('text, message', [
    ('options xen-pciback hide="(0000:03:00.0)\n', 'line 1: a double quote is not closed'),
    ('# mine\nblacklist e1000e\n', 'line 2 is not an "options xen-pciback" line'),
    ('options e1000e x=1\n', 'not an "options xen-pciback" line'),
    ('options xen-pciback hide=(0000:82.0.0)\n', 'fail to load'),
    ('options xen-pciback permissive\n', 'has no value'),
])
def test_a_hand_edited_owned_file_is_refused(text, message):
    with pytest.raises(ModprobeError, match=message):
        parse_owned(text, 'f', 'xen-pciback')


def test_kernel_command_line_parameters():
    line = 'BOOT_IMAGE=/vmlinuz root=UUID=x ro quiet xen-pciback.hide=(0000:03:00.0) xen_pciback.permissive=1 other.x=2'
    assert cmdline_params(line, 'xen_pciback') == [('hide', '(0000:03:00.0)'), ('permissive', '1')]
    assert cmdline_params('a="open', 'm') == []


def test_conflicts_are_other_places_with_other_values(tmp_path):
    paths = HostPaths(str(tmp_path))
    owned = _write(paths, 'etc/modprobe.d/xenpci-xen-pciback.conf', 'options xen-pciback hide=(0000:03:00.0)\n')
    _write(paths, 'lib/modprobe.d/xenpci-xen-pciback.conf', 'options xen-pciback hide=(0000:09:00.0)\n')
    _write(paths, 'etc/modprobe.d/local.conf', 'options xen_pciback hide=(03:00.0)\noptions xen-pciback permissive=1\n'
                                               'options xen-pciback hide=(0000:05:00.0) passthrough=1\noptions e1000e hide=1\n'
                                               'options xen-pciback p="open\n')
    after = [('hide', '(0000:03:00.0)')]
    conflicts, notes = find_conflicts(paths, 'xen-pciback', {'hide'}, after, owned,
                                      cmdline=('/proc/cmdline', 'ro xen-pciback.hide=(0000:07:00.0)'))
    assert conflicts == [
        {'file': paths.join('etc', 'modprobe.d', 'local.conf'), 'line': 3,
         'options': 'options xen-pciback hide=(0000:05:00.0) passthrough=1', 'params': ['hide']},
        {'file': '/proc/cmdline', 'line': 1, 'options': 'xen-pciback.hide=(0000:07:00.0)', 'params': ['hide']},
    ]
    assert notes == ['%s line 5: a double quote is not closed' % paths.join('etc', 'modprobe.d', 'local.conf')]
