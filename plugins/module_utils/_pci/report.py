# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""What ``pci_info`` returns: the devices (filtered), why the host needs some, and the host's readiness."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.hide import boot_hide, dom0_access, running_hide
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import parse_address_list
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import describe, device_path, identity_of
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.ids import PciNames
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import (
    find_host_needs,
    iommu_groups,
    network_and_block_names,
    read_devices,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.isolation import coassignment_sets
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import PCIBACK, PciSysfs
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.drift import (
    find_drift,
    gone_message,
    recorded_identities,
    source_name,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost, is_x86, pciback_symbol
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import DriverJournal, JournalError
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.toolstack import (
    ToolstackError,
    XenToolstack,
    driver_from_path,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.xl_config import CONFIG_DIR, read_guest_configs

_CLASS_RE = re.compile(r'^(?:0x)?([0-9a-fA-F]{2}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6})\Z')
_IDS_RE = re.compile(r'^([0-9a-fA-F]{4})(?::([0-9a-fA-F]{4}|\*))?\Z')


class ReportError(ValueError):
    """A filter that cannot be understood."""


class DeviceFilter:
    """Which devices to report: every kind of filter given must match (any of its values)."""

    def __init__(self, addresses=None, classes=None, ids=None, drivers=None):
        errors = []
        self.addresses = None
        if addresses:
            canonical, address_errors = parse_address_list(addresses)
            errors.extend(address_errors)
            self.addresses = set(canonical)
        self.classes = None
        if classes:
            self.classes = []
            for value in classes:
                match = _CLASS_RE.match(str(value))
                if match is None:
                    errors.append('%r is not a PCI class (2, 4 or 6 hex digits: 02, 0200, 0c0330)' % (value,))
                else:
                    self.classes.append(match.group(1).lower())
        self.ids = None
        if ids:
            self.ids = []
            for value in ids:
                match = _IDS_RE.match(str(value))
                if match is None:
                    errors.append('%r is not a vendor id or vendor:device pair (8086, 8086:10d3, 8086:*)' % (value,))
                else:
                    self.ids.append((match.group(1).lower(), (match.group(2) or '*').lower()))
        self.drivers = set(drivers) if drivers else None
        if errors:
            raise ReportError('; '.join(errors))

    def matches(self, record):
        if self.addresses is not None and record['address'] not in self.addresses:
            return False
        if self.classes is not None and not any((record['class'] or '').startswith(prefix) for prefix in self.classes):
            return False
        if self.ids is not None and not any(record['vendor_id'] == vendor and device in ('*', record['device_id'])
                                            for vendor, device in self.ids):
            return False
        if self.drivers is not None and (record['driver'] or 'none') not in self.drivers:
            return False
        return True


def build_report(paths, commands, device_filter, names=True, controller_address=None, uname=None, sysfs=None):
    """{'devices': [...], 'host': {...}} for the host at ``paths``."""
    host = XenHost(paths, uname=uname)
    sysfs = sysfs or PciSysfs(paths)
    all_devices = read_devices(sysfs)
    selected = [all_devices[address] for address in sorted(all_devices) if device_filter.matches(all_devices[address])]
    needs = find_host_needs(paths, all_devices, controller_address)
    groups = iommu_groups(all_devices)
    sets = coassignment_sets(sysfs, all_devices)
    interfaces, disks = network_and_block_names(paths)
    host_report, toolstack = _host_report(paths, host, sysfs, commands)
    records, journal = _passthrough_records(paths, toolstack, host_report)
    slots = sysfs.pciback_slots()
    configs = read_guest_configs(paths.join(*CONFIG_DIR))
    pci_names = None
    if names:
        pci_names = PciNames.load(paths.pci_ids_candidates,
                                  set((record['vendor_id'], record['device_id']) for record in selected),
                                  set(record['class'] or '' for record in selected))
        host_report['pci_ids'] = pci_names.source
        if pci_names.source is None:
            host_report['notes'].append(
                'no pci.ids on the host (looked for %s): vendor_name, device_name and class_name are null; the '
                'pci.ids package (Debian) or hwdata (Red Hat) provides it' % ', '.join(paths.pci_ids_candidates))
    identities, drift = _identities_and_drift(paths, sysfs, all_devices, selected, journal, host_report)
    boot, running = _hide_lists(paths, host_report)
    for record in selected:
        address = record['address']
        record['identity'] = identities[address]
        record['drift'] = drift.get(address, [])
        record['dom0_access'] = dom0_access(record['driver'], address, identities[address]['path'], boot, running, slots)
        group = record['iommu_group']
        record['iommu_group_devices'] = [member for member in groups.get(group, []) if member != address] if group else []
        record['coassignment'] = sets[address]
        record['net_interfaces'] = sorted(interfaces.get(address, []))
        record['block_devices'] = sorted(disks.get(address, []))
        record['host_needs'] = needs.get(address, [])
        if pci_names is not None:
            record['vendor_name'] = pci_names.vendor_name(record['vendor_id'])
            record['device_name'] = pci_names.device_name(record['vendor_id'], record['device_id'])
            record['class_name'] = pci_names.class_name(record['class'] or '')
        xl_record = records.get(address, {})
        entry = journal.get(address) or {}
        original = entry.get('original_driver') if entry else driver_from_path(xl_record.get('driver_path'))
        record['passthrough'] = {
            'pciback_bound': record['driver'] == PCIBACK,
            'pciback_slot': address in slots,
            'original_driver': original,
            'original_driver_source': 'journal' if entry else ('xenstore' if original else None),
            'journal_phase': entry.get('phase'),
            'assigned_domain': _int_or_none(xl_record.get('domid')),
            'assignable': record['driver'] == PCIBACK and xl_record.get('domid') in (None, ''),
            'candidate': not record['host_needs'] and not record['bridge'],
            'guest_configs': configs.files_naming(address),
        }
    return {'devices': selected, 'host': host_report}


def _identities_and_drift(paths, sysfs, all_devices, selected, journal, host_report):
    """({address: identity} of the selected and recorded devices, {address: [drift]}); the notes say what drifted
    and which recorded devices left the host."""
    records = recorded_identities(paths, journal)
    identities = {}
    for address in set(record['address'] for record in selected) | set(records):
        if address in all_devices:
            identities[address] = identity_of(all_devices[address], device_path(sysfs.devices_dir, address))
    drift, gone = find_drift(paths, records, identities)
    report = {}
    for address, entries in drift.items():
        for entry in entries:
            message = '%s records %s as another device than the one there now: %s' % (
                source_name(entry['source'], paths), address, _drift_text(entry))
            report.setdefault(address, []).append({'source': entry['source'], 'recorded': entry['recorded'],
                                                   'message': message})
            host_report['notes'].append(message)
    for address, source, identity in gone:
        host_report['notes'].append(gone_message(paths, address, source, identity))
    return identities, report


def _drift_text(entry):
    return 'recorded %s, now %s' % (describe(entry['recorded']), describe(entry['current']))


def _hide_lists(paths, host_report):
    """(the hide list of the next boot, the running xen-pciback's), in the host report; a list the kernel rejects
    is a problem."""
    boot = boot_hide(paths, host_report['pciback']['build'])
    running = running_hide(paths)
    host_report['pciback']['hide'] = {'boot': boot.as_dict() if boot else None,
                                      'running': running.as_dict() if running else None}
    for when, hide in (('the next boot', boot), ('the running kernel', running)):
        if hide is not None and hide.error:
            host_report['problems'].append('the hide list %s gives xen-pciback (%s) is one the kernel rejects: %s'
                                           % (when, hide.source, hide.error))
    return boot, running


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _host_report(paths, host, sysfs, commands):
    arch = host.arch
    dom0 = host.is_dom0()
    build = host.pciback_build()
    report = {
        'arch': arch,
        'kernel': host.kernel_release,
        'xen': {
            'hypervisor': host.hypervisor() == 'xen',
            'dom0': dom0,
            'version': host.xen_version(),
            'xenstored_running': False,
            'quarantine_capable': None,
            'quarantine_note': None,
            'quarantine_through': None,
            'xenctrl_note': None,
            'xenstore_through': None,
            'xenstore_note': None,
        },
        'pciback': {
            'kconfig_symbol': pciback_symbol(arch),
            'variant': 'pv_backend' if is_x86(arch) else 'stub',
            'build': build,
            'loaded': sysfs.pciback_loaded(),
            'parameters': host.pciback_parameters(),
            'slots': sorted(sysfs.pciback_slots()),
            'bound': sorted(sysfs.pciback_bound()),
        },
        'iommu': {'linux_groups': bool(_list_dir(paths, 'kernel/iommu_groups'))},
        'journal': {'path': paths.journal, 'error': None, 'devices': 0},
        'pci_ids': None,
        'problems': [],
        'notes': [],
    }
    toolstack = None
    if dom0 and host.xenstored_running():
        report['xen']['xenstored_running'] = True
        candidate = XenToolstack.for_host(commands, host)
        if candidate.available():
            toolstack = candidate
            try:
                capable, note = toolstack.quarantine_capable()
                report['xen']['quarantine_capable'] = capable
                report['xen']['quarantine_note'] = note
            except ToolstackError as exc:
                report['xen']['quarantine_note'] = str(exc)
            report['xen']['quarantine_through'] = toolstack.quarantine_through()
            report['xen']['xenctrl_note'] = toolstack.xenctrl_note
            report['xen']['xenstore_through'] = toolstack.xenstore_through()
            report['xen']['xenstore_note'] = toolstack.xenstore_note
    report['problems'] = _readiness_problems(report)
    return report, toolstack


def _readiness_problems(report):
    problems = []
    xen, pciback = report['xen'], report['pciback']
    if not xen['hypervisor']:
        problems.append('not running on Xen: boot the Xen hypervisor with this kernel as dom0')
    elif not xen['dom0']:
        problems.append('a Xen guest, not dom0')
    if pciback['build'] == 'absent':
        problems.append('the kernel lacks %s' % pciback['kconfig_symbol'])
    elif not pciback['loaded'] and xen['dom0']:
        problems.append('xen-pciback is not loaded')
    if xen['dom0'] and not xen['xenstored_running']:
        problems.append('xenstored is not running (the xl toolstack cannot work)')
    if xen['quarantine_capable'] is False:
        problems.append(xen['quarantine_note'])
    return problems


def _list_dir(paths, relative):
    try:
        return os.listdir(paths.join('sys', *relative.split('/')))
    except OSError:
        return []


def _passthrough_records(paths, toolstack, host_report):
    records = {}
    if toolstack is not None:
        try:
            records = toolstack.libxl_records()
            for address, domid in toolstack.backend_devices().items():
                records.setdefault(address, {}).setdefault('domid', domid)
        except ToolstackError as exc:
            host_report['problems'].append('cannot read libxl records: %s' % exc)
    try:
        journal = DriverJournal(paths).load()
    except JournalError as exc:
        journal = {}
        host_report['journal']['error'] = str(exc)
        host_report['problems'].append(str(exc))
    host_report['journal']['devices'] = len(journal)
    return records, journal
