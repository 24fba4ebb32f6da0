# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import (
    PciAddressError,
    is_canonical_address,
    parse_address_list,
    parse_pci_address,
    parse_xenstore_key,
)


@pytest.mark.parametrize('text, canonical', [
    ('0000:03:00.0', '0000:03:00.0'),
    ('03:00.0', '0000:03:00.0'),
    ('3:0.1', '0000:03:00.1'),
    ('0000:0A:1F.7', '0000:0a:1f.7'),
    ('ffff:ff:1f.7', 'ffff:ff:1f.7'),
    ('1:00:02.0', '0001:00:02.0'),
])
def test_parse_gives_the_canonical_form(text, canonical):
    assert str(parse_pci_address(text)) == canonical


@pytest.mark.parametrize('text', [
    '', '0000:03:00', '0000:03:00.8', '0000:03:20.0', '00000:03:00.0', '0000:003:00.0',
    '0000:03:00.*', '03:*.*', '*', '0000:82.0.0', '../0000:03:00.0', '/sys/bus/pci/devices/0000:03:00.0',
    '0000:03:00.0\n', '0000:03:00.0\x00', ' 0000:03:00.0', '0000:03:00.0 ', '0000-03-00-0', 'g000:03:00.0',
])
def test_parse_refuses_what_is_not_one_function(text):
    with pytest.raises(PciAddressError):
        parse_pci_address(text)


@pytest.mark.parametrize('value', [None, 3, ['03:00.0'], b'03:00.0'])
def test_parse_refuses_non_strings(value):
    with pytest.raises(PciAddressError, match='must be a string'):
        parse_pci_address(value)


def test_xenstore_key_round_trip():
    address = parse_pci_address('0000:0a:1f.3')
    assert address.xenstore_key == '0000-0a-1f-3'
    assert parse_xenstore_key('0000-0a-1f-3') == address
    assert parse_xenstore_key('0000-0a-1f-3\n') is None
    assert parse_xenstore_key('driver_path') is None


def test_address_list_merges_short_and_long_forms_and_reports_every_error():
    addresses, errors = parse_address_list(['03:00.0', '0000:03:00.0', '0000:03:00.1', '../x', '00:20.0'])
    assert addresses == ['0000:03:00.0', '0000:03:00.1']
    assert len(errors) == 2
    assert "'../x'" in errors[0] and 'out of range' in errors[1]


def test_canonical_check_is_strict():
    assert is_canonical_address('0000:03:00.0')
    assert not is_canonical_address('0000:03:00.0a')
    assert not is_canonical_address('0000:0A:00.0')
    assert not is_canonical_address('pci0000:00')
