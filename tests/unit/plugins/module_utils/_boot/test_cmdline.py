# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.cmdline import (
    Cmdline,
    CmdlineError,
    parse_params,
    render,
    tokenize,
)


def _apply(line, params, state='present'):
    cmdline = Cmdline(line)
    for param in parse_params(params, state):
        cmdline.apply(param)
    return cmdline.text


@pytest.mark.parametrize('raw, key, value', [
    ('quiet', 'quiet', None),
    ('iommu=1', 'iommu', '1'),
    ('k=', 'k', ''),
    ('acpi_osi="!Windows 2012"', 'acpi_osi', '!Windows 2012'),
    ('"dyndbg=file x.c +p"', 'dyndbg', 'file x.c +p'),
    ('"quiet"', 'quiet', None),
    ('a=b=c', 'a', 'b=c'),
])
def test_tokens_split_like_the_kernel(raw, key, value):
    tokens = tokenize('  %s  ' % raw)
    assert len(tokens) == 1
    assert (tokens[0].raw, tokens[0].key, tokens[0].value) == (raw, key, value)


def test_blanks_inside_quotes_do_not_split():
    assert [token.raw for token in tokenize('a k="x y"\tz "m=1 2" --')] == ['a', 'k="x y"', 'z', '"m=1 2"', '--']


def test_render_quotes_values_with_blanks():
    assert render('quiet', None) == 'quiet'
    assert render('k', 'v') == 'k=v'
    assert render('k', 'a b') == 'k="a b"'


def test_set_replaces_in_place_and_leaves_everything_else_alone():
    assert _apply('ro  quiet iommu=0 splash', {'iommu': '1'}) == 'ro quiet iommu=1 splash'


def test_nothing_to_do_returns_the_line_byte_for_byte():
    line = 'ro   quiet  k="a b"\t'
    assert _apply(line, {'k': 'a b', 'quiet': None}) == line


def test_dash_and_underscore_name_the_same_parameter():
    assert _apply('xen_pciback.hide=(00:01.0)', {'xen-pciback.hide': '(0000:03:00.0)'}) == 'xen-pciback.hide=(0000:03:00.0)'


def test_a_key_given_twice_is_replaced_by_the_values_given_in_order():
    assert _apply('console=tty0 quiet console=ttyS0', {'console': ['ttyS0,115200', 'tty0']}) == \
        'console=ttyS0,115200 console=tty0 quiet'
    assert _apply('console=ttyS0,115200 console=tty0 quiet', {'console': ['ttyS0,115200', 'tty0']}) == \
        'console=ttyS0,115200 console=tty0 quiet'


def test_absent_by_value_or_every_occurrence():
    assert _apply('console=tty0 console=ttyS0 quiet', {'console': 'tty0'}, 'absent') == 'console=ttyS0 quiet'
    assert _apply('console=tty0 console=ttyS0 quiet', {'console': None}, 'absent') == 'quiet'
    assert _apply('quiet', {'console': None}, 'absent') == 'quiet'


def test_new_parameters_go_before_the_init_arguments():
    assert _apply('ro quiet -- single', {'iommu': '1'}) == 'ro quiet iommu=1 -- single'
    assert _apply('ro -- iommu=0', {'iommu': None}, 'absent') == 'ro -- iommu=0'


@pytest.mark.parametrize('params, message', [
    ({'k': True}, 'boolean'),
    ({'k': 'a"b'}, 'double quote'),
    ({'k': 'a\nb'}, 'control character'),
    ({'k': 'a\tb'}, 'control character'),
    ({'bad key': '1'}, 'not a parameter name'),
    ({'k=v': '1'}, 'not a parameter name'),
    ({'k': []}, 'empty list'),
    ({'k': {'a': 1}}, 'must be a string'),
    ({'a-b': '1', 'a_b': '2'}, 'same parameter'),
    ({}, 'non-empty mapping'),
])
def test_unusable_params_are_refused(params, message):
    with pytest.raises(CmdlineError, match=message):
        parse_params(params, 'present')


def test_numbers_become_strings():
    assert _apply('', {'loglvl': 4}) == 'loglvl=4'
