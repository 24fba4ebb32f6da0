# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""PCI addresses, property-based: every spelling of a valid address, every kind of bad one."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import (
    PciAddressError,
    is_canonical_address,
    parse_address_list,
    parse_pci_address,
)
from ansible_collections.xenpci.passthrough.tests.unit.strategies import (
    bad_addresses,
    canonical,
    is_valid_address,
    out_of_range_addresses,
    path_climbing_addresses,
    spellings,
    valid_fields,
)

_CANONICAL = re.compile(r'[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]')


@settings(max_examples=200, deadline=None)
@given(st.data(), valid_fields)
def test_every_spelling_of_a_valid_address_gives_its_canonical_form(data, fields):
    text = data.draw(spellings(*fields))
    address = parse_pci_address(text)
    assert tuple(address) == fields
    assert str(address) == canonical(*fields)
    assert is_canonical_address(str(address))


@settings(max_examples=300, deadline=None)
@given(bad_addresses)
def test_a_bad_address_is_refused_naming_it(text):
    with pytest.raises(PciAddressError) as caught:
        parse_pci_address(text)
    assert repr(text) in str(caught.value)


@settings(max_examples=100, deadline=None)
@given(st.one_of(out_of_range_addresses(), path_climbing_addresses()))
def test_out_of_range_and_path_like_addresses_are_bad_by_the_rule_too(text):
    # The strategies themselves must produce what the specification calls bad.
    assert not is_valid_address(text)
    with pytest.raises(PciAddressError):
        parse_pci_address(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_whatever_is_accepted_is_a_safe_sysfs_name(text):
    try:
        address = parse_pci_address(text)
    except PciAddressError:
        assert not is_valid_address(text)
        return
    assert is_valid_address(text)
    name = str(address)
    assert _CANONICAL.fullmatch(name) and '/' not in name and name not in ('.', '..')


@settings(max_examples=100, deadline=None)
@given(st.data(), st.lists(valid_fields, min_size=1, max_size=4, unique=True))
def test_a_list_keeps_one_entry_per_function_in_first_seen_order(data, devices):
    spelled = []
    for fields in devices:
        spelled.extend((data.draw(spellings(*fields)), canonical(*fields))
                       for dummy in range(data.draw(st.integers(1, 3))))
    order = data.draw(st.permutations(spelled))
    addresses, errors = parse_address_list([text for text, dummy in order])
    assert errors == []
    expected = []
    for dummy, name in order:
        if name not in expected:
            expected.append(name)
    assert addresses == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(valid_fields.map(lambda fields: canonical(*fields)), max_size=3), st.lists(bad_addresses, min_size=1, max_size=3))
def test_a_list_with_bad_entries_reports_each_of_them(good, bad):
    addresses, errors = parse_address_list(good + bad)
    assert len(errors) == len(bad)
    for text, message in zip(bad, errors):
        assert repr(text) in message


# The pciback role checks its hide list with a regular expression of its own (Jinja's match test: Python's re.match)
# before any module runs: it must accept exactly what parse_pci_address accepts.
_COLLECTION = os.path.join(os.path.dirname(os.path.abspath(__file__)), *(['..'] * 5))
_ROLE_VARS = os.path.join(_COLLECTION, 'roles', 'pciback', 'vars', 'main.yml')


def role_address_re():
    with open(_ROLE_VARS) as handle:
        return re.compile(yaml.safe_load(handle)['__pciback_address_re'])


def parses(text):
    try:
        parse_pci_address(text)
    except PciAddressError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.builds(lambda fields, suffix: (fields, suffix), valid_fields, st.sampled_from(['', '\n', ' ', '\n\n', 'x'])),
    bad_addresses,
), st.data())
def test_the_pciback_role_and_the_modules_accept_the_same_addresses(value, data):
    if isinstance(value, tuple):
        fields, suffix = value
        value = data.draw(spellings(*fields)) + suffix
    assert bool(role_address_re().match(value)) == parses(value) == is_valid_address(value), value
