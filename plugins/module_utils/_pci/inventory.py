# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""The host's PCI devices as the kernel shows them, and which of them the host itself needs.

``read_devices`` reads each function with a handful of small reads (no config space, no
subprocess), so a host with thousands of functions is read in a fraction of a second.
``find_host_needs`` says why the host needs a device: the NIC carrying the default route or
the route back to the controller, the controller of the root or boot file system, the boot VGA.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import socket
import struct

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import is_canonical_address, slot_of
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.config_space import ConfigSpace
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import link_name, read_text

BRIDGE_CLASS = '06'
_HOST_MOUNTS = ('/', '/boot', '/boot/efi', '/usr')
_MODALIAS_RE = re.compile(
    r'^pci:v([0-9A-Fa-f]{8})d([0-9A-Fa-f]{8})sv([0-9A-Fa-f]{8})sd([0-9A-Fa-f]{8})bc([0-9A-Fa-f]{2})sc([0-9A-Fa-f]{2})i([0-9A-Fa-f]{2})$')


def _hex_id(value):
    if not value:
        return None
    return value[2:].lower() if value.startswith('0x') else value.lower()


def pci_owner(path):
    """The nearest PCI function in a sysfs device path (``.../0000:03:00.0/net/eth0`` -> that address)."""
    for part in reversed(path.split('/')):
        if is_canonical_address(part):
            return part
    return None


def is_bridge(class_code):
    return bool(class_code) and class_code.startswith(BRIDGE_CLASS)


def _ids_from_modalias(modalias):
    """(vendor, device, subsystem vendor, subsystem device, class) from one ``modalias`` read, or None.

    The kernel writes ``pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X``: five attributes in one file.
    """
    match = _MODALIAS_RE.match(modalias or '')
    if match is None:
        return None
    vendor, device, sub_vendor, sub_device, base, sub, interface = match.groups()
    return (vendor[4:].lower(), device[4:].lower(), sub_vendor[4:].lower(), sub_device[4:].lower(),
            (base + sub + interface).lower())


def read_ids(base):
    """(vendor, device, subsystem vendor, subsystem device, class) of the function whose sysfs directory is ``base``:
    one ``modalias`` read, or the five files where it has none."""
    ids = _ids_from_modalias(read_text(base + '/modalias'))
    if ids is None:
        ids = tuple(_hex_id(read_text(base + '/' + name))
                    for name in ('vendor', 'device', 'subsystem_vendor', 'subsystem_device', 'class'))
    return ids


def sriov_state(base, entries):
    """The SR-IOV state of the PF whose sysfs directory is ``base`` (``entries``: its names), for a function that
    has ``sriov_totalvfs`` (only a PF shows it): read only for those, each VF's driver through its ``virtfnN`` link."""
    vfs = []
    for name in entries:
        if name.startswith('virtfn') and name[6:].isdigit():
            vfs.append({'index': int(name[6:]), 'address': link_name(base + '/' + name),
                        'driver': link_name(base + '/' + name + '/driver')})
    vfs.sort(key=lambda vf: vf['index'])
    counts = [read_text(base + '/' + name) for name in ('sriov_totalvfs', 'sriov_numvfs')]
    autoprobe = read_text(base + '/sriov_drivers_autoprobe') if 'sriov_drivers_autoprobe' in entries else None
    return {
        'totalvfs': int(counts[0]) if counts[0] and counts[0].isdigit() else None,
        'numvfs': int(counts[1]) if counts[1] and counts[1].isdigit() else None,
        'drivers_autoprobe': None if autoprobe is None else autoprobe == '1',
        'vfs': vfs,
    }


def read_devices(sysfs, addresses=None):
    """{address: device record} for ``addresses`` (default: all), read from sysfs only."""
    all_addresses = sysfs.addresses()
    if addresses is None:
        addresses = all_addresses
    slot_counts = {}
    for address in all_addresses:
        slot_counts[slot_of(address)] = slot_counts.get(slot_of(address), 0) + 1
    devices = {}
    devices_dir = sysfs.devices_dir
    for address in addresses:
        base = os.path.join(devices_dir, address)
        try:
            entries = set(os.listdir(base))
        except OSError:
            continue
        ids = read_ids(base)
        class_code = ids[4]
        record = {
            'address': address,
            'vendor_id': ids[0],
            'device_id': ids[1],
            'subsystem_vendor_id': ids[2],
            'subsystem_device_id': ids[3],
            'class': class_code,
            'driver': link_name(base + '/driver') if 'driver' in entries else None,
            'driver_override': None,
            'iommu_group': link_name(base + '/iommu_group') if 'iommu_group' in entries else None,
            'physfn': link_name(base + '/physfn') if 'physfn' in entries else None,
            'virtfns': sorted(link_name(base + '/' + name) for name in entries if name.startswith('virtfn')),
            'bridge': is_bridge(class_code),
            'multifunction': slot_counts.get(slot_of(address), 0) > 1,
            'boot_vga': read_text(base + '/boot_vga') == '1' if 'boot_vga' in entries else False,
            'reset_methods': [],
            'sriov': None,
        }
        if 'driver_override' in entries:
            override = read_text(base + '/driver_override')
            record['driver_override'] = None if override in (None, '', '(null)') else override
        if 'sriov_totalvfs' in entries:
            record['sriov'] = sriov_state(base, entries)
        if 'reset_method' in entries:
            record['reset_methods'] = (read_text(base + '/reset_method') or '').split()
        elif 'reset' in entries:
            # A kernel before 5.15 has a reset file when it can reset the device somehow: config space says
            # which function-level resets there are; with none, what it has is a bus (or slot) reset.
            record['reset_methods'] = ConfigSpace.read(base + '/config').resets or ['bus']
        devices[address] = record
    return devices


def iommu_groups(devices):
    """{group: [addresses]} from the records of every device (none where Linux does not manage the IOMMU)."""
    members = {}
    for address in sorted(devices):
        group = devices[address]['iommu_group']
        if group is not None:
            members.setdefault(group, []).append(address)
    return members


def _class_owner_map(paths, class_dir):
    """{entry name: owning PCI address} for /sys/class/net or /sys/block entries."""
    owners = {}
    base = os.path.join(paths.sys, class_dir)
    try:
        names = os.listdir(base)
    except OSError:
        return owners
    for name in names:
        owner = pci_owner(os.path.realpath(os.path.join(base, name)))
        if owner is not None:
            owners[name] = owner
    return owners


def interface_owners(paths):
    """{network interface: PCI address}, following bridges, bonds and VLANs down to the NIC."""
    direct = _class_owner_map(paths, 'class/net')
    base = os.path.join(paths.sys, 'class', 'net')
    owners = {}

    def resolve(name, seen):
        found = set([direct[name]]) if name in direct else set()
        try:
            entries = os.listdir(os.path.join(base, name))
        except OSError:
            return found
        for entry in entries:
            if entry.startswith('lower_') and entry[6:] not in seen:
                found.update(resolve(entry[6:], seen | set([entry[6:]])))
        return found

    try:
        names = os.listdir(base)
    except OSError:
        names = []
    for name in names:
        addresses = resolve(name, set([name]))
        if addresses:
            owners[name] = sorted(addresses)
    return owners


def _read_lines(path):
    text = read_text(path)
    return text.splitlines() if text else []


def _ipv4_routes(paths):
    """[(interface, destination, mask)] from /proc/net/route.

    The kernel prints each address as the hex of its network-order bytes read as a native
    integer, so ``int(field, 16)`` compares directly with ``struct.unpack('=I', packed)``.
    """
    routes = []
    for line in _read_lines(os.path.join(paths.proc, 'net', 'route'))[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = int(fields[1], 16)
            mask = int(fields[7], 16)
        except ValueError:
            continue
        routes.append((fields[0], destination, mask))
    return routes


def _ipv6_routes(paths):
    """[(interface, destination int, prefix length)] from /proc/net/ipv6_route."""
    routes = []
    for line in _read_lines(os.path.join(paths.proc, 'net', 'ipv6_route')):
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            routes.append((fields[9], int(fields[0], 16), int(fields[1], 16)))
        except ValueError:
            continue
    return routes


def default_route_interfaces(paths):
    interfaces = set()
    for interface, destination, mask in _ipv4_routes(paths):
        if destination == 0 and mask == 0 and interface != 'lo':
            interfaces.add(interface)
    for interface, destination, prefix in _ipv6_routes(paths):
        if destination == 0 and prefix == 0 and interface != 'lo':
            interfaces.add(interface)
    return interfaces


def route_interface(paths, address):
    """The interface the kernel's main table routes ``address`` (the controller) through, or None."""
    try:
        packed = socket.inet_pton(socket.AF_INET, address)
        value = struct.unpack('=I', packed)[0]
        candidates = [(bin(mask).count('1'), interface) for interface, destination, mask in _ipv4_routes(paths)
                      if value & mask == destination and interface != 'lo']
    except (OSError, ValueError):
        try:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, address), 'big')
        except (OSError, ValueError):
            return None
        candidates = [(prefix, interface) for interface, destination, prefix in _ipv6_routes(paths)
                      if interface != 'lo' and (prefix == 0 or value >> (128 - prefix) == destination >> (128 - prefix))]
    if not candidates:
        return None
    return max(candidates)[1]


def _mounted_devices(paths):
    """{mount point: 'major:minor'} for the host's own file systems, from /proc/self/mountinfo."""
    found = {}
    for line in _read_lines(os.path.join(paths.proc, 'self', 'mountinfo')):
        fields = line.split()
        if len(fields) > 4 and fields[4] in _HOST_MOUNTS:
            found[fields[4]] = fields[2]
    return found


def _block_owners(paths, dev_number, seen=None):
    """PCI addresses under the block device ``major:minor``, through dm/md/LVM ``slaves``."""
    seen = seen or set()
    path = os.path.realpath(os.path.join(paths.sys, 'dev', 'block', dev_number))
    if path in seen:
        return set()
    seen.add(path)
    owners = set()
    owner = pci_owner(path)
    if owner:
        owners.add(owner)
    slaves_dir = os.path.join(path, 'slaves')
    try:
        slaves = os.listdir(slaves_dir)
    except OSError:
        slaves = []
    for slave in slaves:
        number = read_text(os.path.join(slaves_dir, slave, 'dev'))
        if number:
            owners.update(_block_owners(paths, number, seen))
    return owners


def controller_address(environ=None):
    """The controller's address as the managed host sees it (``SSH_CONNECTION``), or None."""
    fields = (environ if environ is not None else os.environ).get('SSH_CONNECTION', '').split()
    return fields[0] if fields else None


def find_host_needs(paths, devices, controller_address=None):
    """{address: [reasons]} for devices the host itself relies on."""
    needs = {}

    def add(address, reason):
        if address is not None:
            needs.setdefault(address, []).append(reason)

    owners = interface_owners(paths)
    for interface in sorted(default_route_interfaces(paths)):
        for address in owners.get(interface, []):
            add(address, 'carries the default route (%s)' % interface)
    if controller_address:
        interface = route_interface(paths, controller_address)
        for address in owners.get(interface, []):
            add(address, 'carries the connection to the controller %s (%s)' % (controller_address, interface))
    for mount_point, number in sorted(_mounted_devices(paths).items()):
        for address in sorted(_block_owners(paths, number)):
            add(address, 'holds the %s file system' % ('root' if mount_point == '/' else mount_point))
    for address, record in devices.items():
        if record.get('boot_vga'):
            add(address, 'is the boot VGA device')
    return needs


def network_and_block_names(paths):
    """({address: [interfaces]}, {address: [block devices]}) for the devices' own interfaces and disks."""
    interfaces, disks = {}, {}
    for name, address in _class_owner_map(paths, 'class/net').items():
        interfaces.setdefault(address, []).append(name)
    for name, address in _class_owner_map(paths, 'block').items():
        disks.setdefault(address, []).append(name)
    return interfaces, disks
