# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pci_select filter on the records pci_info returns for the fake dom0, with the real jmespath."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
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
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.modprobe import owned_file
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import format_comment
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.report import DeviceFilter, build_report
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import PCIBACK_MODULE
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


# ---- identities and follow_identity --------------------------------------------------------------

PORT_A = '0000:00:1c.0'
PORT_B = '0000:00:1d.0'
NIC = '0000:03:00.0'          # where the hide list recorded the e1000e, behind PORT_A
MOVED = '0000:04:00.0'        # where it is since a card added behind PORT_B took bus 3
RECORDED = {'vendor': '8086', 'device': '10d3', 'subsystem_vendor': '8086', 'subsystem_device': '0001',
            'class': '020000', 'path': 'pci0000:00/0000:00:1c.0/0000:03:00.0'}


@pytest.fixture
def renumbered(kernel):
    """pci_info's records of a host whose hide list records the e1000e at 03:00.0, where a GPU is now."""
    for port in (PORT_A, PORT_B):
        kernel.add_device(port, vendor='8086', device='2948', class_code='060400', reset_methods=None)
    kernel.add_device(NIC, vendor='10de', device='1b80', class_code='030000', driver='nouveau', parent=PORT_B)
    kernel.add_device(MOVED, vendor='8086', device='10d3', driver='e1000e', parent=PORT_A)
    hide = owned_file(kernel.paths, PCIBACK_MODULE)
    if not os.path.isdir(os.path.dirname(hide)):
        os.makedirs(os.path.dirname(hide))
    with open(hide, 'w') as handle:
        handle.write('%s\noptions xen-pciback hide=(%s)\n' % (format_comment(NIC, RECORDED), NIC))
    xen = FakeXen(kernel)
    devices = build_report(kernel.paths, xen.commands, DeviceFilter(), names=False, uname=kernel.uname,
                           sysfs=xen.sysfs)['devices']
    drift = dict((device['address'], device['drift']) for device in devices if device['drift'])
    assert list(drift) == [NIC] and drift[NIC][0]['recorded'] == RECORDED
    return devices


def _records(devices, **changes):
    """Copies of the records, with ``changes`` ({address: {key: value}}) made to them."""
    records = [dict(device) for device in devices]
    for record in records:
        record.update(changes.get(record['address'], {}))
    return records


def test_identities_select_by_some_of_the_fields_any_item_matching(devices):
    assert pci_select(devices, identities=[{'vendor': '8086', 'device': '100e'}]) == [E1000_A, E1000_B]
    assert pci_select(devices, identities=[{'class': '0c03'}, {'vendor': '1AF4', 'class': '01'}]) == [XHCI, ROOT_DISK]
    assert pci_select(devices, identities=[{'path': 'pci0000:00/0000:00:04.0'}]) == [E1000_B]
    assert pci_select(devices, identities=[{'subsystem_vendor': '8086', 'subsystem_device': '0001',
                                            'class': '0200'}]) == [E1000_A, E1000_B, MULTI_0, MULTI_1]
    whole = dict(pci_select(devices, addresses=[XHCI], records=True)[0]['identity'], path=None)
    assert pci_select(devices, identities=[whole]) == [XHCI]
    assert pci_select(devices, identities=[]) == []


def test_identities_narrow_the_other_selectors(devices):
    assert pci_select(devices, ids=['8086'], identities=[{'class': '02'}]) == [E1000_A, E1000_B, MULTI_0, MULTI_1]
    assert pci_select(devices, "[?driver=='e1000']", identities=[{'device': '100e'}, {'class': '0c'}],
                      addresses=[E1000_B, XHCI]) == [E1000_B]
    assert pci_select(devices, identities=[{'vendor': '8086', 'device': '10c9'}], functions='all',
                      interfaces=['ens3']) == []


def test_a_path_recorded_before_the_buses_were_renumbered_still_matches(renumbered):
    assert pci_select(renumbered, identities=[{'path': RECORDED['path']}]) == [MOVED]
    assert pci_select(renumbered, identities=[RECORDED]) == [MOVED]
    assert pci_select(renumbered, identities=[{'path': 'pci0000:00/1d.0/00.0'}]) == [NIC]


def test_an_identity_no_device_has_is_an_error_naming_each(devices):
    message = fails('no device among the 9 devices given has the identity', devices,
                    identities=[{'vendor': '8086'}, {'vendor': '8086', 'device': '10d3'},
                                {'path': 'pci0000:00/0000:00:1c.0/0000:03:00.0', 'class': '02'}])
    assert 'identity vendor=8086 device=10d3; nor class=02 path=pci0000:00/0000:00:1c.0/0000:03:00.0' in message
    assert 'it has left the host' in message and 'have no identity' not in message
    without = [dict((key, value) for key, value in device.items() if key != 'identity') for device in devices]
    fails('the records given have no identity: give it the devices of xenpci.passthrough.pci_info', without,
          identities=[{'vendor': '8086'}])


def test_an_identity_with_a_path_must_match_one_device(devices):
    twin = _records(devices, **{E1000_B: {'identity': dict(devices[ALL.index(E1000_A)]['identity'])}})
    assert pci_select(twin, identities=[{'vendor': '8086', 'device': '100e'}]) == [E1000_A, E1000_B]
    fails('the identity device=100e path=pci0000:00/03.0 matches 2 devices, 0000:00:03.0, 0000:00:04.0: '
          'an identity with a path must match one', twin, identities=[{'device': '100e', 'path': 'pci0000:00/03.0'}])


@pytest.mark.parametrize('identities, match', [
    ('8086:10d3', 'identities must be a list of dicts, not str'),
    ({'vendor': '8086'}, 'identities must be a list of dicts, not dict'),
    (['8086:10d3'], "identities item 0, '8086:10d3': an identity is a dict of some of vendor, device"),
    ([{'vendor': '8086'}, {}], 'identities item 1, {}: an identity needs at least one of'),
    ([{'vendor_id': '8086'}], 'vendor_id: not a field of an identity'),
    ([{'vendor': 8086}], 'vendor=8086 is a number, not a string'),
    ([{'device': '10d'}], "device='10d' is not 4 hex digits"),
    ([{'class': 'network'}], 'is not 2, 4 or 6 hex digits'),
    ([{'path': '03:00.0'}], 'is not a path through the bridges'),
])
def test_malformed_identities_fail(devices, identities, match):
    fails(match, devices, identities=identities)


def test_follow_identity_replaces_a_drifted_address_by_where_its_device_is_now(renumbered):
    assert pci_select(renumbered, addresses=[NIC]) == [NIC]
    assert pci_select(renumbered, addresses=[NIC, E1000_A], follow_identity=True) == [E1000_A, MOVED]
    [record] = pci_select(renumbered, addresses=['03:00.0'], follow_identity=True, records=True)
    assert record['address'] == MOVED and record['driver'] == 'e1000e'
    # The other selectors apply to the device followed to.
    assert pci_select(renumbered, addresses=[NIC], classes=['02'], follow_identity=True) == [MOVED]
    assert pci_select(renumbered, addresses=[NIC], classes=['03'], follow_identity=True) == []
    assert pci_select(renumbered, addresses=[NIC, MOVED], follow_identity=True) == [MOVED]
    fails("follow_identity must be true or false, not 'yes'", renumbered, addresses=[NIC], follow_identity='yes')


def test_a_followed_device_that_left_or_cannot_be_told_apart_is_an_error_naming_the_address(renumbered):
    gone = [device for device in renumbered if device['address'] != MOVED]
    fails('0000:03:00.0 \\(follow_identity\\): no device on the host is 8086:10d3 .* it has left the host \\(looked for '
          'among the 12 devices given\\)', gone, addresses=[NIC], follow_identity=True)
    twin_identity = dict(RECORDED, path='pci0000:00/0000:00:1d.0/0000:05:00.0')
    twins = _records(renumbered, **{E1000_A: {'identity': twin_identity}})
    elsewhere = dict(RECORDED, path='pci0000:00/0000:00:1e.0/0000:03:00.0')
    recorded_elsewhere = _records(twins, **{NIC: {'drift': [{'source': 'hide', 'recorded': elsewhere}]}})
    fails('0000:03:00.0 \\(follow_identity\\): .* matches 2 devices, 0000:00:03.0, 0000:04:00.0',
          recorded_elsewhere, addresses=[NIC], follow_identity=True)
    # Where the recorded slot tells them apart, the one in it.
    assert pci_select(twins, addresses=[NIC], follow_identity=True) == [MOVED]


def test_records_that_disagree_or_two_addresses_followed_to_one_device_are_errors(renumbered):
    other = dict(RECORDED, device='1533', path=None)
    renumbered = _records(renumbered, **{'0000:00:04.0': {'identity': dict(other, path='pci0000:00/0000:00:04.0')}})
    drift = [{'source': 'journal', 'recorded': other, 'message': '...'},
             {'source': 'hide', 'recorded': RECORDED, 'message': '...'}]
    disagree = _records(renumbered, **{NIC: {'drift': drift}})
    fails('0000:03:00.0 \\(follow_identity\\): its records name different devices, 8086:1533 .* now at '
          '0000:00:04.0; 8086:10d3 .* now at 0000:04:00.0', disagree, addresses=[NIC], follow_identity=True)
    same_twice = _records(renumbered, **{E1000_A: {'drift': [{'source': 'hide', 'recorded': RECORDED}]}})
    fails('0000:00:03.0 and 0000:03:00.0 are followed to one device, 0000:04:00.0', same_twice,
          addresses=[NIC, E1000_A], follow_identity=True)
    fails('0000:03:00.0: its drift has no recorded identity', _records(renumbered, **{NIC: {'drift': [{}]}}),
          addresses=[NIC], follow_identity=True)


def test_the_pf_of_a_vf_reference_is_followed(renumbered):
    vfs = ['0000:04:00.2', '0000:04:00.4']
    records = _with_vfs(renumbered, MOVED, vfs)
    for record in records:
        record.setdefault('drift', [])
    assert pci_select(records, addresses=['%s/vf1' % NIC], follow_identity=True) == [vfs[1]]
    fails('has no SR-IOV virtual functions', records, addresses=['%s/vf1' % NIC])
