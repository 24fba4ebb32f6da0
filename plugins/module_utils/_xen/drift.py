# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Drift: a recorded address that now names another device, or a recorded device that left the host.

The collection records a device's identity (``_pci.identity``) in two places: the journal of original
drivers (``identity`` of an entry) and the modprobe.d file it owns for xen-pciback (one ``# identity``
comment per hidden device). ``recorded_identities`` reads both; ``find_drift`` compares them with what
is at each address now. ``pci_info`` reports the result; ``pci_assignable`` refuses to hold or give back
a drifted address unless told to follow the identity to where it is now, or forced.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import FileEditError, read_text_file
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.modprobe import owned_file
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import (
    describe,
    identity_differs,
    parse_comment,
    read_identity,
    resolve_identity,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import PCIBACK_MODULE

JOURNAL = 'journal'
HIDE = 'hide'


def hide_identities(paths):
    """{address: identity} from the ``# identity`` comments of the collection's xen-pciback modprobe.d file."""
    path = owned_file(paths, PCIBACK_MODULE)
    try:
        text = read_text_file(path)
    except FileEditError:
        return {}       # module_params refuses such a file; nothing is recorded in it that can be read
    found = {}
    for line in (text or '').splitlines():
        parsed = parse_comment(line)
        if parsed is not None:
            found[parsed[0]] = parsed[1]
    return found


def recorded_identities(paths, journal):
    """{address: [(source, identity)]}: the journal's identities, then the hide file's."""
    records = {}
    for address in sorted(journal):
        identity = (journal[address] or {}).get('identity')
        if identity:
            records.setdefault(address, []).append((JOURNAL, identity))
    for address, identity in sorted(hide_identities(paths).items()):
        records.setdefault(address, []).append((HIDE, identity))
    return records


def source_name(source, paths):
    return 'the journal %s' % paths.journal if source == JOURNAL else 'the hide list of %s' % owned_file(paths, PCIBACK_MODULE)


def find_drift(paths, records, current):
    """``(drift, gone)``: {address: [{'source', 'recorded', 'current'}]} for records naming another device than the one
    at their address now (``current``: {address: identity}), and [(address, source, identity)] for recorded
    addresses where no device is now."""
    drift, gone = {}, []
    for address, entries in sorted(records.items()):
        now = current.get(address)
        for source, identity in entries:
            if now is None:
                gone.append((address, source, identity))
            elif identity_differs(identity, now):
                drift.setdefault(address, []).append({'source': source, 'recorded': identity, 'current': now})
    return drift, gone


def drift_at(paths, journal, devices_dir, addresses):
    """``find_drift``'s drift of ``addresses`` only: their records (``journal``'s entries, the hide list's comments)
    compared with the devices at them now."""
    records = recorded_identities(paths, journal)
    records = dict((address, records[address]) for address in addresses if address in records)
    drift, _gone = find_drift(paths, records, current_identities(devices_dir, records))
    return drift


def drift_message(paths, address, entry):
    return ('%s records %s as %s, but %s is there now' % (
        source_name(entry['source'], paths), address, describe(entry['recorded']), describe(entry['current'])))


def gone_message(paths, address, source, identity):
    return '%s records %s as %s, but no device is at %s now' % (source_name(source, paths), address,
                                                                describe(identity), address)


def current_identities(devices_dir, addresses):
    """{address: identity} of the functions at ``addresses`` now (None where there is none)."""
    return dict((address, read_identity(devices_dir, address)) for address in addresses)


def follow(recorded, devices_dir, addresses):
    """The address where the device ``recorded`` is now, among ``addresses`` (IdentityError: none, or several)."""
    return resolve_identity(recorded, current_identities(devices_dir, addresses))
