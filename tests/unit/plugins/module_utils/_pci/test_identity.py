# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import (
    IdentityError,
    describe_pattern,
    device_path,
    format_comment,
    identity_differs,
    matches_identity,
    parse_comment,
    partial_identity,
    read_identity,
    resolve_identity,
    slot_path,
    valid_identity,
)
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, build_rig_host

PORT_A = '0000:00:1c.0'
PORT_B = '0000:00:1d.0'


def nic(path, device='10d3'):
    return {'vendor': '8086', 'device': device, 'subsystem_vendor': '8086', 'subsystem_device': '0001',
            'class': '020000', 'path': path}


def test_reads_ids_and_the_path_through_the_bridges(tmp_path):
    kernel = build_rig_host(str(tmp_path))
    kernel.add_device(PORT_A, vendor='8086', device='2948', class_code='060400', reset_methods=None)
    kernel.add_device('0000:03:00.0', vendor='8086', device='10d3', driver='e1000e', parent=PORT_A)
    assert read_identity(kernel.paths.pci_devices, '0000:03:00.0') == nic('pci0000:00/0000:00:1c.0/0000:03:00.0')
    assert device_path(kernel.paths.pci_devices, E1000_A) == 'pci0000:00/0000:00:03.0'
    assert read_identity(kernel.paths.pci_devices, '0000:09:00.0') is None


def test_another_device_at_the_address_differs_the_same_one_renumbered_does_not():
    recorded = nic('pci0000:00/0000:00:1c.0/0000:03:00.0')
    assert not identity_differs(recorded, nic('pci0000:00/0000:00:1c.0/0000:04:00.0'))    # buses renumbered
    assert identity_differs(recorded, nic('pci0000:00/0000:00:1c.0/0000:03:00.0', device='1533'))
    assert identity_differs(recorded, nic('pci0000:00/0000:00:1d.0/0000:03:00.0'))        # a twin in another slot
    assert not identity_differs(dict(recorded, path=None), nic('pci0000:00/0000:00:1d.0/0000:03:00.0'))
    assert slot_path('pci0000:00/0000:00:1c.0/0000:03:00.0') == 'pci0000:00/1c.0/00.0'


def test_resolves_by_ids_then_by_slot_and_names_every_match_it_cannot_tell_apart():
    recorded = nic('pci0000:00/0000:00:1c.0/0000:03:00.0')
    current = {'0000:04:00.0': nic('pci0000:00/0000:00:1c.0/0000:04:00.0'),
               '0000:05:00.0': nic('pci0000:00/0000:00:1d.0/0000:05:00.0'),
               '0000:06:00.0': nic('pci0000:00/0000:00:1e.0/0000:06:00.0', device='1533')}
    assert resolve_identity(recorded, current) == '0000:04:00.0'
    with pytest.raises(IdentityError, match='matches 2 devices, 0000:04:00.0, 0000:05:00.0'):
        resolve_identity(dict(recorded, path='pci0000:00/0000:00:1f.0/0000:03:00.0'), current)
    with pytest.raises(IdentityError, match='has left the host'):
        resolve_identity(nic(None, device='abcd'), current)


def test_comment_round_trip_and_malformed_identities():
    identity = nic('pci0000:00/0000:00:1c.0/0000:03:00.0')
    line = format_comment('0000:03:00.0', identity)
    assert line == ('# identity 0000:03:00.0 vendor=8086 device=10d3 subsystem_vendor=8086 subsystem_device=0001 '
                    'class=020000 path=pci0000:00/0000:00:1c.0/0000:03:00.0')
    assert parse_comment(line) == ('0000:03:00.0', identity)
    assert parse_comment('# identity 0000:03:00.0 vendor=80 device=10d3') is None
    assert parse_comment('# a comment') is None
    assert valid_identity(dict(identity, path='../etc')) == dict(identity, path=None)
    assert valid_identity({'vendor': 8086}) is None


def test_a_partial_identity_matches_by_ids_class_prefix_and_slots():
    here = nic('pci0000:00/0000:00:1c.0/0000:04:00.0')
    for value in ({'vendor': '8086'}, {'vendor': '8086', 'device': '10D3'}, {'class': '02'}, {'class': '0200'},
                  {'class': '020000', 'subsystem_vendor': '8086', 'subsystem_device': '0001'},
                  {'path': 'pci0000:00/0000:00:1c.0/0000:03:00.0'},     # recorded before the buses were renumbered
                  {'path': 'pci0000:00/1c.0/00.0'}, dict(here), dict(here, path=None)):
        assert matches_identity(partial_identity(value), here), value
    for value in ({'vendor': '10de'}, {'device': '10d4'}, {'class': '03'}, {'class': '020001'},
                  {'subsystem_device': '0002'}, {'path': 'pci0000:00/0000:00:1d.0/0000:04:00.0'},
                  {'path': 'pci0000:00/1c.0/00.1'}, {'path': 'pci0000:01/1c.0/00.0'}):
        assert not matches_identity(partial_identity(value), here), value
    assert not matches_identity(partial_identity({'path': 'pci0000:00/1c.0/00.0'}), dict(here, path=None))
    assert not matches_identity(partial_identity({'vendor': '8086'}), None)


def test_a_partial_identity_is_normalised_and_described_in_field_order():
    pattern = partial_identity({'path': ' PCI0000:00/1C.0/00.0 ', 'vendor': '8086', 'class': '0C03'})
    assert pattern == {'vendor': '8086', 'class': '0c03', 'path': 'pci0000:00/1c.0/00.0'}
    assert describe_pattern(pattern) == 'vendor=8086 class=0c03 path=pci0000:00/1c.0/00.0'


@pytest.mark.parametrize('value, match', [
    ('8086:10d3', 'an identity is a dict of some of vendor, device'),
    ({}, 'an identity needs at least one of'),
    ({'path': None}, 'an identity needs at least one of'),
    ({'vendor_id': '8086'}, 'vendor_id: not a field of an identity'),
    ({'vendor': 8086}, 'vendor=8086 is a number, not a string'),
    ({'device': ['10d3']}, 'is a list, not a string'),
    ({'vendor': '808'}, "vendor='808' is not 4 hex digits"),
    ({'device': '10dg'}, "device='10dg' is not 4 hex digits"),
    ({'class': '020'}, "class='020' is not 2, 4 or 6 hex digits"),
    ({'class': '02000000'}, 'is not 2, 4 or 6 hex digits'),
    ({'path': '0000:03:00.0'}, 'is not a path through the bridges'),
    ({'path': 'pci0000:00/../0000:03:00.0'}, 'is not a path through the bridges'),
])
def test_a_malformed_partial_identity_says_what_is_wrong(value, match):
    with pytest.raises(ValueError, match=match):
        partial_identity(value)
