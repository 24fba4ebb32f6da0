# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: pci_select
short_description: Select PCI devices from pci_info's result by query, address, id, class, interface or identity
version_added: 0.1.0
author:
  - xenpci.passthrough maintainers (@xenpci)
description:
  - Takes the devices that M(xenpci.passthrough.pci_info) returns and gives back the addresses (or, with
    O(records=true), the records) of the devices selected.
  - O(query) is a JMESPath expression evaluated on the list of devices. It may select records
    (V([?passthrough.candidate])), their addresses (V([?vendor_id=='8086'].address)), one record or one address.
    Any other result (a number, a boolean, a record without an address, a string that is not the address of one
    of the devices) is an error, so that a mistyped query cannot select anything but devices.
  - O(addresses), O(ids), O(classes), O(interfaces) and O(identities) select devices without JMESPath. As with the
    filters of M(xenpci.passthrough.pci_info), a device is selected when every selector given selects it (with
    O(query) too), and a selector selects a device when any of its values matches. So
    O(ids=[8086], classes=[02, 0c03]) selects Intel devices that are network or USB controllers.
  - At least one selector must be given. An empty list selects nothing. An address, an interface or an identity
    that no device has is an error; ids, classes and queries that match nothing select nothing.
  - The devices come back in the order of the input (pci_info sorts them by address), each once.
  - Runs on the controller; O(query) needs the Python library C(jmespath) there.
positional: query
options:
  _input:
    description:
      - The devices, RV(xenpci.passthrough.pci_info#module:devices), or the whole registered result of
        M(xenpci.passthrough.pci_info).
    type: raw
    required: true
  query:
    description:
      - A JMESPath expression over the list of devices, see U(https://jmespath.org/specification.html).
      - Literal strings go in single quotes (V([?driver=='e1000'])), other literals in backquotes
        (V([?length(net_interfaces\) > `0`])).
    type: str
  addresses:
    description:
      - Devices by address, V(DDDD:BB:DD.F) or V(BB:DD.F), or an SR-IOV virtual function by its physical
        function and index, V(0000:03:00.0/vf1), resolved through the PF's RV(xenpci.passthrough.pci_info#module:devices[].sriov).
    type: list
    elements: str
  ids:
    description:
      - Devices by id, V(vendor:device) in hex; V(8086) or V(8086:*) select a whole vendor.
    type: list
    elements: str
  classes:
    description:
      - Devices whose PCI class starts with one of these hex prefixes (2, 4 or 6 digits), for example V(02)
        (network), V(0200) (Ethernet), V(0c0330) (USB xHCI).
    type: list
    elements: str
  interfaces:
    description:
      - Devices by the name of one of their network interfaces (V(enp3s0)).
    type: list
    elements: str
  identities:
    description:
      - Devices by what they are and where they sit, as RV(xenpci.passthrough.pci_info#module:devices[].identity)
        gives it, so that a selection recorded once still finds its devices after a card added renumbered the buses.
      - Each item is a dict of some of the fields C(vendor), C(device), C(subsystem_vendor), C(subsystem_device)
        (four hex digits each), C(class) (2, 4 or 6 hex digits, a prefix as in O(classes)) and C(path) (the path
        through the bridges, V(pci0000:00/0000:00:1c.0/0000:03:00.0), or the same without bus numbers,
        V(pci0000:00/1c.0/00.0)). A device matches an item when it has every field the item gives; paths are
        compared without their bus numbers, so a path recorded before the buses were renumbered still matches.
        A field set to null is left out, so a whole RV(xenpci.passthrough.pci_info#module:devices[].identity) is
        an item too.
      - Each item must match a device among the input; one that matches none (the device has left the host, or is
        not among the devices given) is an error naming it. An item without C(path) may match several devices (two
        cards of one model); an item with a C(path) must match exactly one.
      - An item that is not such a dict (a field it does not know, a value that is not hex, an empty dict) is an error.
    type: list
    elements: dict
  follow_identity:
    description:
      - Follow the addresses of O(addresses) whose device is not the one the collection recorded there. An address
        whose RV(xenpci.passthrough.pci_info#module:devices[].drift) is not empty stands for the address where the
        recorded device is now, found among the input by the rules of
        O(xenpci.passthrough.pci_assignable#module:follow_identity) (by ids, and among devices with the same ids the
        one in the recorded slot). The physical function of a V(PF/vfN) reference is followed too.
      - A recorded device that no device of the input is, or several are, is an error naming the address, and so
        are records of one address that name different devices, or two addresses followed to one device.
      - Only the selection follows; the records stay where they are. To act on devices this collection holds, give
        the recorded addresses to M(xenpci.passthrough.pci_assignable) or M(xenpci.passthrough.xen_guest_pci) with
        their option C(follow_identity), which moves the journal entries with the devices.
      - V(false) selects the addresses as given.
    type: bool
    default: false
requirements:
  - jmespath (on the controller, for O(query) only)
seealso:
  - module: xenpci.passthrough.pci_info
  - module: xenpci.passthrough.pci_assignable
  - name: JMESPath tutorial
    description: The query language.
    link: https://jmespath.org/tutorial.html
'''

EXAMPLES = r'''
- name: Read the host's PCI devices
  xenpci.passthrough.pci_info:
    names: false
  register: pci

- name: The Intel Ethernet controllers the host does not need
  ansible.builtin.set_fact:
    nics: "{{ pci.devices | xenpci.passthrough.pci_select(query) }}"
  vars:
    query: "[?vendor_id=='8086' && starts_with(class, '0200') && passthrough.candidate]"
# => ['0000:03:00.0', '0000:04:00.0']

- name: Make the Intel network controllers the host does not need assignable
  xenpci.passthrough.pci_assignable:
    devices: "{{ pci | xenpci.passthrough.pci_select('[?passthrough.candidate]', ids=['8086'], classes=['02']) }}"

- name: The GPUs the host does not need, each with all its functions (VGA, audio, USB)
  ansible.builtin.set_fact:
    gpus: "{{ pci | xenpci.passthrough.pci_select('[?passthrough.candidate]', classes=['03'], functions='all') }}"

- name: The NIC recorded by its identity (ids and slot), wherever a renumbering moved it
  ansible.builtin.set_fact:
    nic: "{{ pci | xenpci.passthrough.pci_select(identities=[recorded]) }}"
  vars:
    recorded: {vendor: '8086', device: '10d3', path: 'pci0000:00/0000:00:1c.0/0000:03:00.0'}

- name: The addresses of the inventory, each followed to its recorded device if the buses were renumbered
  ansible.builtin.set_fact:
    passthrough_devices: "{{ pci | xenpci.passthrough.pci_select(addresses=['0000:03:00.0'], follow_identity=true) }}"

- name: Show the drivers of the devices that have no IOMMU group mates
  ansible.builtin.debug:
    msg: "{{ pci.devices | xenpci.passthrough.pci_select('[?length(iommu_group_devices) == `0`]', records=true)
             | map(attribute='driver') | list }}"
'''

RETURN = r'''
_value:
  description:
    - The addresses of the selected devices, in canonical form (V(0000:03:00.0)).
    - With O(records=true), the selected device records.
  type: list
  elements: raw
'''

import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import (
    PciAddressError,
    parse_pci_address,
    whole_devices,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import (
    IdentityError,
    describe,
    describe_pattern,
    matches_identity,
    partial_identity,
    resolve_identity,
    valid_identity,
)

try:
    import jmespath
    import jmespath.exceptions
except ImportError:
    jmespath = None

_CLASS_RE = re.compile(r'^(?:0x)?([0-9a-fA-F]{2}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6})\Z')
_IDS_RE = re.compile(r'^([0-9a-fA-F]{4})(?::([0-9a-fA-F]{4}|\*))?\Z')
_INTERFACE_RE = re.compile(r'^[^\s/:]{1,15}\Z')
_NO_JMESPATH = ('pci_select: a query needs the Python library jmespath on the controller '
                '(pip install jmespath, or the python3-jmespath package)')


def _fail(message, *args):
    raise AnsibleFilterError('pci_select: ' + (message % args if args else message))


def _plain(value):
    """The same data as plain dicts, lists, str, int, float, bool and None.

    Templating hands filters its own str, list and dict types; JMESPath's type checks (in functions
    such as ``length`` and ``starts_with``) know only the plain ones.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return dict((str(key), _plain(item)) for key, item in value.items())
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [_plain(item) for item in value]
    return str(value)


def _devices(data):
    if isinstance(data, Mapping) and 'devices' in data:
        data = data['devices']
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        _fail('give it the devices of xenpci.passthrough.pci_info (a list), not %s', type(data).__name__)
    devices = _plain(data)
    for index, device in enumerate(devices):
        if not isinstance(device, dict) or not isinstance(device.get('address'), str):
            _fail('item %d of the input is not a device record of xenpci.passthrough.pci_info (no address): %r',
                  index, device)
    return devices


def _selector(name, values):
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        _fail('%s must be a list of strings, not %s %r', name, type(values).__name__, values)
    values = _plain(values)
    for value in values:
        if not isinstance(value, str):
            _fail('%s must be a list of strings; %r is a %s', name, value, type(value).__name__)
    return values


_VF_REFERENCE = re.compile(r'^[^/\s]+/vf\d+\Z')


def _canonical(text):
    try:
        return str(parse_pci_address(text))
    except PciAddressError as exc:
        _fail('%s', exc)


def _followed(devices, address):
    """Where the device the records of ``address`` name is now, by pci_info's ``drift`` of ``address``; the address
    itself when its records name the device there (no drift), or when no device has it (the caller says so)."""
    record = next((device for device in devices if device['address'] == address), None)
    drift = (record or {}).get('drift') or []
    if not isinstance(drift, list):
        _fail('%s: its drift is not the list pci_info gives: %r', address, drift)
    recorded = []
    for entry in drift:
        identity = valid_identity(entry.get('recorded')) if isinstance(entry, dict) else None
        if identity is None:
            _fail('%s: its drift has no recorded identity pci_info would give (vendor, device, subsystem ids, class): '
                  '%r', address, entry)
        if identity not in recorded:
            recorded.append(identity)
    if not recorded:
        return address
    identities = dict((device['address'], device.get('identity')) for device in devices)
    found = []
    for identity in recorded:
        try:
            found.append(resolve_identity(identity, identities))
        except IdentityError as exc:
            _fail('%s (follow_identity): %s (looked for among the %d devices given)', address, exc, len(devices))
    if len(set(found)) > 1:
        _fail('%s (follow_identity): its records name different devices, %s', address,
              '; '.join('%s, now at %s' % (describe(identity), at) for identity, at in zip(recorded, found)))
    return found[0]


def _virtual_function(devices, text, follow=False):
    """The address of the VF ``PF/vfN`` names, from the PF's ``sriov`` in pci_info's records (``follow``: the PF's
    address followed first, see _followed)."""
    pf_text, _sep, index = text.rpartition('/vf')
    pf = _canonical(pf_text)
    if follow:
        pf = _followed(devices, pf)
    record = next((device for device in devices if device['address'] == pf), None)
    if record is None:
        _fail('%s: no device %s among the %d devices given', text, pf, len(devices))
    vfs = (record.get('sriov') or {}).get('vfs')
    if vfs is None:
        _fail('%s: %s has no SR-IOV virtual functions (pci_info reports no sriov for it)', text, pf)
    found = [vf['address'] for vf in vfs if str(vf.get('index')) == index]
    if not found:
        _fail('%s: %s has no VF %s now (it has %d)', text, pf, index, len(vfs))
    return found[0]


def _by_addresses(devices, addresses, follow=False):
    known = set(device['address'] for device in devices)
    selected = set()
    followed = {}
    for text in addresses:
        if _VF_REFERENCE.match(text):
            address = _virtual_function(devices, text, follow)
        else:
            address = _canonical(text)
            if address not in known:
                _fail('no device %s among the %d devices given', address, len(devices))
            if follow:
                given, address = address, _followed(devices, address)
                if address != given:
                    followed.setdefault(address, set()).add(given)
        selected.add(address)
    for address, given in sorted(followed.items()):
        if len(given) > 1:
            _fail('%s are followed to one device, %s (follow_identity): their records name the same device',
                  ' and '.join(sorted(given)), address)
    return selected


def _identity_patterns(values):
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        _fail('identities must be a list of dicts, not %s %r', type(values).__name__, values)
    patterns = []
    for index, value in enumerate(_plain(values)):
        try:
            patterns.append(partial_identity(value))
        except ValueError as exc:
            _fail('identities item %d, %r: %s', index, value, exc)
    return patterns


def _by_identities(devices, patterns):
    selected = set()
    missing = []
    for pattern in patterns:
        found = sorted(set(device['address'] for device in devices
                           if matches_identity(pattern, device.get('identity'))))
        if not found:
            missing.append(describe_pattern(pattern))
        elif 'path' in pattern and len(found) > 1:
            _fail('the identity %s matches %d devices, %s: an identity with a path must match one',
                  describe_pattern(pattern), len(found), ', '.join(found))
        selected.update(found)
    if missing:
        hint = ''
        if not any(isinstance(device.get('identity'), dict) for device in devices):
            hint = ' (the records given have no identity: give it the devices of xenpci.passthrough.pci_info)'
        _fail('no device among the %d devices given has the identity %s: it has left the host or is not among the '
              'devices given%s', len(devices), '; nor '.join(missing), hint)
    return selected


def _by_ids(devices, ids):
    wanted = []
    for value in ids:
        match = _IDS_RE.match(value)
        if match is None:
            _fail('%r is not a vendor id or a vendor:device pair (8086, 8086:10d3, 8086:*)', value)
        wanted.append((match.group(1).lower(), (match.group(2) or '*').lower()))
    return set(device['address'] for device in devices
               if any(str(device.get('vendor_id')).lower() == vendor
                      and product in ('*', str(device.get('device_id')).lower())
                      for vendor, product in wanted))


def _by_classes(devices, classes):
    prefixes = []
    for value in classes:
        match = _CLASS_RE.match(value)
        if match is None:
            _fail('%r is not a PCI class prefix (2, 4 or 6 hex digits: 02, 0200, 0c0330)', value)
        prefixes.append(match.group(1).lower())
    return set(device['address'] for device in devices
               if any(str(device.get('class') or '').lower().startswith(prefix) for prefix in prefixes))


def _by_interfaces(devices, interfaces):
    selected = set()
    for name in interfaces:
        if not _INTERFACE_RE.match(name):
            _fail('%r is not a network interface name', name)
        found = [device['address'] for device in devices if name in (device.get('net_interfaces') or [])]
        if not found:
            _fail('no device has the network interface %r (pci_info lists the interfaces of each device in '
                  'net_interfaces)', name)
        selected.update(found)
    return selected


def _by_query(devices, query):
    if not isinstance(query, str) or not query.strip():
        _fail('the query must be a non-empty JMESPath expression, not %r', query)
    if jmespath is None:
        raise AnsibleFilterError(_NO_JMESPATH)
    query = str(query)
    try:
        compiled = jmespath.compile(query)
    except jmespath.exceptions.JMESPathError as exc:
        _fail('%r is not a valid JMESPath expression: %s', query, exc)
    try:
        result = compiled.search(devices)
    except jmespath.exceptions.JMESPathError as exc:
        _fail('the query %r failed on the devices: %s', query, exc)
    except (TypeError, ValueError, KeyError) as exc:
        _fail('the query %r failed on the devices: %s', query, exc)
    if result is None:
        return set()
    items = result if isinstance(result, list) else [result]
    known = set(device['address'] for device in devices)
    selected = set()
    for item in items:
        if isinstance(item, dict) and isinstance(item.get('address'), str):
            address = item['address']
        elif isinstance(item, str):
            try:
                address = str(parse_pci_address(item))
            except PciAddressError:
                address = None
        else:
            address = None
        if address is None or address not in known:
            _fail('the query %r selected %r, which is neither a device nor the address of one: select devices '
                  '("[?vendor_id==\'8086\']") or their addresses ("[?vendor_id==\'8086\'].address")', query, item)
        selected.add(address)
    return selected


SELECTORS = (('ids', _by_ids), ('classes', _by_classes), ('interfaces', _by_interfaces))


def pci_select(data, query=None, addresses=None, ids=None, classes=None, interfaces=None, records=False,
               functions='given', identities=None, follow_identity=False):
    """The addresses (or records) of the devices that every selector given selects, in the input's order."""
    if not isinstance(records, bool):
        _fail('records must be true or false, not %r', records)
    if not isinstance(follow_identity, bool):
        _fail('follow_identity must be true or false, not %r', follow_identity)
    if functions not in ('given', 'all'):
        _fail('functions must be given or all, not %r', functions)
    devices = _devices(data)
    selections = []
    if addresses is not None:
        selections.append(_by_addresses(devices, _selector('addresses', addresses), follow_identity))
    values = {'ids': ids, 'classes': classes, 'interfaces': interfaces}
    selections.extend(select(devices, _selector(name, values[name])) for name, select in SELECTORS
                      if values[name] is not None)
    if identities is not None:
        selections.append(_by_identities(devices, _identity_patterns(identities)))
    if query is not None:
        selections.append(_by_query(devices, query))
    if not selections:
        _fail('no selector given: name the devices with a query, addresses, ids, classes, interfaces or identities')
    selected = set.intersection(*selections)
    if functions == 'all':
        selected = set(whole_devices(selected, [device['address'] for device in devices]))
    result = []
    seen = set()
    for device in devices:
        address = device['address']
        if address in selected and address not in seen:
            seen.add(address)
            result.append(device if records else address)
    return result


class FilterModule(object):
    """xenpci.passthrough's filters."""

    def filters(self):
        return {'pci_select': pci_select}
