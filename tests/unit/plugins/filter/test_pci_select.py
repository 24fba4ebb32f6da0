# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pci_select filter on the records pci_info returns for the fake dom0, with the real jmespath."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping, Sequence

import pytest

try:
    from ansible.module_utils import _internal as module_utils_internal
except ImportError:     # ansible-core before 2.19 has no controller mark
    module_utils_internal = None

WAS_CONTROLLER = getattr(module_utils_internal, 'is_controller', None)

from ansible.errors import AnsibleFilterError  # noqa: E402 pylint: disable=wrong-import-position

from ansible_collections.xenpci.passthrough.plugins.filter import pci_select as plugin  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.xenpci.passthrough.plugins.filter.pci_select import FilterModule, pci_select  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.report import DeviceFilter, build_report
from ansible_collections.xenpci.passthrough.tests.unit.conftest import (
    E1000_A,
    E1000_B,
    HOST_BRIDGE,
    MGMT_NIC,
    MULTI_0,
    MULTI_1,
    ROOT_DISK,
    VGA,
    XHCI,
)
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import FakeXen

# Importing controller code marks the whole process as the controller, and module_utils' warn() then goes to
# the controller's display instead of a module's result: the module tests that run in this process after these
# need the mark as it was. These tests run as the controller.
if module_utils_internal is not None:
    setattr(module_utils_internal, "is_controller", WAS_CONTROLLER)

jmespath = pytest.importorskip('jmespath')

ALL = sorted([HOST_BRIDGE, VGA, MGMT_NIC, E1000_A, E1000_B, XHCI, MULTI_0, MULTI_1, ROOT_DISK])


@pytest.fixture(autouse=True)
def controller(monkeypatch):
    if module_utils_internal is not None:
        monkeypatch.setattr(module_utils_internal, 'is_controller', True)


@pytest.fixture
def report(kernel):
    """What pci_info returns for the fake dom0 (the rig's devices)."""
    xen = FakeXen(kernel)
    return build_report(kernel.paths, xen.commands, DeviceFilter(), names=False, uname=kernel.uname, sysfs=xen.sysfs)


@pytest.fixture
def devices(report):
    return report['devices']


def fails(match, *args, **kwargs):
    with pytest.raises(AnsibleFilterError, match=match) as info:
        pci_select(*args, **kwargs)
    assert str(info.value).startswith('pci_select: ')
    return str(info.value)


def test_the_filter_is_registered():
    assert FilterModule().filters() == {'pci_select': pci_select}


def test_the_fake_host_gives_real_records(devices):
    assert [device['address'] for device in devices] == ALL


# ---- JMESPath --------------------------------------------------------------------------------

@pytest.mark.parametrize('query, expected', [
    ("[?driver=='e1000']", [E1000_A, E1000_B]),
    ("[?driver=='e1000'].address", [E1000_A, E1000_B]),
    ("[?vendor_id=='8086' && starts_with(class, '0200')]", [E1000_A, E1000_B, MULTI_0, MULTI_1]),
    ("[?passthrough.candidate && starts_with(class, '02')].address",
     [E1000_A, E1000_B, MULTI_0, MULTI_1]),
    ("[?length(host_needs) > `0`]", [MGMT_NIC, ROOT_DISK, VGA]),
    ("[?contains(net_interfaces, 'ens4')]", [E1000_B]),
    ("[?multifunction]", [MULTI_0, MULTI_1]),
    ("[?driver=='nothing-has-this']", []),
    ("[0]", [HOST_BRIDGE]),
    ("[1].address", [VGA]),
    ("[?bridge] | [0]", [HOST_BRIDGE]),
    ("[?driver=='e1000'].address | reverse(@)", [E1000_A, E1000_B]),     # input order, always
    ("nothing_here", []),
])
def test_a_query_selects_records_or_addresses(devices, query, expected):
    assert pci_select(devices, query) == sorted(expected)


def test_records_come_back_whole(devices):
    records = pci_select(devices, "[?driver=='e1000'].address", records=True)
    assert [record['address'] for record in records] == [E1000_A, E1000_B]
    assert records[0]['driver'] == 'e1000' and records[0]['net_interfaces'] == ['ens3']


def test_the_whole_pci_info_result_is_accepted(report):
    assert pci_select(report, "[?driver=='xhci_hcd']") == [XHCI]


@pytest.mark.parametrize('query', [
    "[?driver=='e1000'",
    "[?driver==e1000]]",
    "devices[?",
    "[?driver=`e1000`]",
])
def test_a_bad_expression_is_named(devices, query):
    message = fails('is not a valid JMESPath expression', devices, query)
    assert repr(query) in message


def test_a_query_that_fails_at_run_time_is_named(devices):
    fails(r"the query .* failed on the devices: .*starts_with", devices, "[?starts_with(bridge, '0')]")


@pytest.mark.parametrize('query, what', [
    ("length(@)", '9'),
    ("[?driver=='e1000'].driver", "'e1000'"),
    ("[].{a: vendor_id}", "{'a': '8086'}"),
    ("[?driver=='e1000'].[address]", "['0000:00:03.0']"),
    ("`\"0000:00:1f.0\"`", "'0000:00:1f.0'"),
    ("[?bridge].bridge", 'True'),
])
def test_a_query_must_select_devices_or_their_addresses(devices, query, what):
    message = fails('neither a device nor the address of one', devices, query)
    assert what in message


@pytest.mark.parametrize('query', ['', '   ', 42, ['[0]']])
def test_a_query_must_be_a_non_empty_string(devices, query):
    fails('the query must be a non-empty JMESPath expression', devices, query)


def test_without_jmespath_a_query_fails_saying_what_to_install(devices, monkeypatch):
    monkeypatch.setattr(plugin, 'jmespath', None)
    with pytest.raises(AnsibleFilterError, match='needs the Python library jmespath on the controller'):
        pci_select(devices, '[0]')
    # the other selectors do not need it
    assert pci_select(devices, addresses=[XHCI]) == [XHCI]


# ---- other selectors ---------------------------------------------------------------------------

def test_addresses_short_long_and_repeated(devices):
    assert pci_select(devices, addresses=['00:04.0', E1000_A, '0000:00:04.0']) == [E1000_A, E1000_B]


@pytest.mark.parametrize('address, match', [
    ('0000:00:03', 'is not a PCI function address'),
    ('00:03.8', 'is not a PCI function address'),
    ('00:20.0', 'out of range'),
    ('0000:00:1e.0', 'no device 0000:00:1e.0 among the 9 devices given'),
])
def test_a_bad_or_unknown_address_fails(devices, address, match):
    fails(match, devices, addresses=[E1000_A, address])


def _with_vfs(devices, pf, vfs):
    """pci_info's records as a host with SR-IOV shows them: the PF's sriov, a record per VF."""
    records = [dict(device) for device in devices]
    for record in records:
        record['sriov'] = None
        if record['address'] == pf:
            record['sriov'] = {'totalvfs': 4, 'numvfs': len(vfs), 'drivers_autoprobe': False,
                               'vfs': [{'index': index, 'address': vf, 'driver': None} for index, vf in enumerate(vfs)]}
    return records + [{'address': vf, 'physfn': pf, 'sriov': None} for vf in vfs]


def test_a_vf_is_selected_by_its_pf_and_index(devices):
    vfs = ['0000:00:10.2', '0000:00:10.4']
    records = _with_vfs(devices, E1000_A, vfs)
    assert pci_select(records, addresses=['%s/vf1' % E1000_A, '00:03.0/vf0']) == vfs


@pytest.mark.parametrize('reference, match', [
    ('%s/vf2' % E1000_A, 'has no VF 2 now'),
    ('%s/vf0' % E1000_B, 'has no SR-IOV virtual functions'),
    ('0000:00:1e.0/vf0', 'no device 0000:00:1e.0'),
    ('00:03/vf0', 'is not a PCI function address'),
])
def test_a_bad_vf_reference_fails_naming_it(devices, reference, match):
    fails(match, _with_vfs(devices, E1000_A, ['0000:00:10.2', '0000:00:10.4']), addresses=[reference])


def test_ids_select_a_device_or_a_whole_vendor(devices):
    assert pci_select(devices, ids=['1b36:000d']) == [XHCI]
    assert pci_select(devices, ids=['1AF4']) == [MGMT_NIC, ROOT_DISK]
    assert pci_select(devices, ids=['1af4:*', '1b36:000D']) == [MGMT_NIC, XHCI, ROOT_DISK]
    assert pci_select(devices, ids=['abcd:ef01']) == []


@pytest.mark.parametrize('value', ['intel', '8086:', '8086:10d', '808610d3', '8086:*:*'])
def test_malformed_ids_fail(devices, value):
    fails('is not a vendor id or a vendor:device pair', devices, ids=[value])


def test_classes_are_prefixes(devices):
    assert pci_select(devices, classes=['0c0330']) == [XHCI]
    assert pci_select(devices, classes=['0x01']) == [ROOT_DISK]
    assert pci_select(devices, classes=['0200']) == [MGMT_NIC, E1000_A, E1000_B, MULTI_0, MULTI_1]
    assert pci_select(devices, classes=['0401']) == []


@pytest.mark.parametrize('value', ['network', '020', '0x', '02000000', ''])
def test_malformed_classes_fail(devices, value):
    fails('is not a PCI class prefix', devices, classes=[value])


def test_interfaces(devices):
    assert pci_select(devices, interfaces=['ens4', 'enp0s2']) == [MGMT_NIC, E1000_B]


@pytest.mark.parametrize('name, match', [
    ('ens9', "no device has the network interface 'ens9'"),
    ('', 'is not a network interface name'),
    ('a/b', 'is not a network interface name'),
    ('x' * 16, 'is not a network interface name'),
])
def test_unknown_or_malformed_interfaces_fail(devices, name, match):
    fails(match, devices, interfaces=[name])


def test_every_selector_given_must_select_a_device(devices):
    # Each selector narrows the selection, as pci_info's filters do; within one, any value matches.
    assert pci_select(devices, ids=['8086']) == [HOST_BRIDGE, E1000_A, E1000_B, MULTI_0, MULTI_1]
    assert pci_select(devices, ids=['8086'], classes=['0200', '0c03']) == [E1000_A, E1000_B, MULTI_0, MULTI_1]
    assert pci_select(devices, ids=['8086', '1b36'], classes=['0c03']) == [XHCI]
    assert pci_select(devices, "[?driver=='igb']", ids=['8086'], addresses=[MULTI_1, E1000_A]) == [MULTI_1]
    assert pci_select(devices, ids=['8086'], interfaces=['ens4']) == [E1000_B]
    # The root disk is a 1af4 device but not a network controller: classes and ids together leave it out.
    assert ROOT_DISK in pci_select(devices, ids=['1af4'])
    assert pci_select(devices, ids=['1af4'], classes=['02']) == [MGMT_NIC]


def test_no_selector_is_an_error_and_an_empty_one_selects_nothing(devices):
    fails('no selector given', devices)
    fails('no selector given', devices, addresses=None, ids=None, classes=None, interfaces=None)
    assert pci_select(devices, addresses=[]) == []
    assert pci_select(devices, ids=['8086'], classes=[]) == []


@pytest.mark.parametrize('kwargs, match', [
    ({'addresses': E1000_A}, 'addresses must be a list of strings, not str'),
    ({'ids': [8086]}, "ids must be a list of strings; 8086 is a int"),
    ({'classes': {'a': 1}}, 'classes must be a list of strings, not dict'),
    ({'records': 'yes'}, 'records must be true or false'),
])
def test_selector_types(devices, kwargs, match):
    fails(match, devices, **kwargs)


@pytest.mark.parametrize('data, match', [
    ('0000:00:03.0', 'not str'),
    ({'changed': False}, 'not dict'),
    (None, 'not NoneType'),
    ([{'driver': 'e1000'}], 'item 0 of the input is not a device record'),
    (['0000:00:03.0'], 'item 0 of the input is not a device record'),
])
def test_the_input_must_be_devices(data, match):
    fails(match, data, addresses=[E1000_A])


# ---- templating's own types ----------------------------------------------------------------------

class _AnsibleTaggedStr(str):
    """Stands for the str subclass templating hands a filter (JMESPath type checks go by class name)."""


class _AnsibleLazyTemplateDict(Mapping):
    def __init__(self, data):
        self._data = data

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


class _AnsibleLazyTemplateList(Sequence):
    def __init__(self, data):
        self._data = data

    def __getitem__(self, index):
        return self._data[index]

    def __len__(self):
        return len(self._data)


def _wrap(value):
    if isinstance(value, dict):
        return _AnsibleLazyTemplateDict(dict((_AnsibleTaggedStr(k), _wrap(v)) for k, v in value.items()))
    if isinstance(value, list):
        return _AnsibleLazyTemplateList([_wrap(item) for item in value])
    if isinstance(value, str):
        return _AnsibleTaggedStr(value)
    return value


def test_templating_types_work_with_jmespath_functions(devices):
    wrapped = _wrap(devices)
    query = "[?starts_with(class, '0c') && length(reset_methods) >= `0` && contains(keys(@), 'address')]"
    # What a filter that hands them to jmespath as they are runs into: silence, or a type error.
    assert jmespath.search(query, wrapped) is None
    with pytest.raises(jmespath.exceptions.JMESPathTypeError):
        jmespath.search("starts_with(class, '0c')", wrapped[ALL.index(XHCI)])
    assert pci_select(wrapped, _AnsibleTaggedStr(query)) == [XHCI]
    records = pci_select(wrapped, addresses=_wrap([XHCI]), records=True)
    # What comes back is plain data again: JMESPath (in a later filter) sees an object and a string.
    assert jmespath.search('[type(@), type(address)]', records[0]) == ['object', 'string']


def test_functions_all_brings_every_function_of_the_devices_selected(devices):
    assert pci_select(devices, addresses=[MULTI_1]) == [MULTI_1]
    assert pci_select(devices, addresses=[MULTI_1], functions='all') == [MULTI_0, MULTI_1]
    assert pci_select(devices, addresses=[E1000_A, MULTI_0], functions='all') == [E1000_A, MULTI_0, MULTI_1]
    assert [record['address'] for record in pci_select(devices, ids=['8086:10c9'], functions='all', records=True)] \
        == [MULTI_0, MULTI_1]
    fails("functions must be given or all, not 'some'", devices, addresses=[MULTI_0], functions='some')
