# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""A PCI function's identity, kept beside its address wherever the collection records a device.

An address names a position on the bus, and the position moves: a card added in front of another
renumbers the buses behind it, so a recorded ``0000:03:00.0`` may name another device after a reboot.
The identity is what the device is (vendor, device, subsystem ids, class) and where it sits (its
``path`` through the bridges, as the kernel's ``/sys/devices`` tree shows it:
``pci0000:00/0000:00:1c.0/0000:03:00.0``). Bus numbers are left out when two paths are compared
(``slot_path``: ``pci0000:00/1c.0/00.0``), because they are what shifts when a card is added.

``identity_differs`` says whether what is at an address now is another device than the one recorded
there; ``resolve_identity`` finds where a recorded device is now. Both take the records of
``inventory.read_devices``, which read every field but the path in one ``modalias`` read, so an
identity costs one ``readlink`` more per function. ``partial_identity`` and ``matches_identity``
select devices by some of the fields (the ``identities`` of the ``pci_select`` filter).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.inventory import read_ids

ID_FIELDS = ('vendor', 'device', 'subsystem_vendor', 'subsystem_device', 'class')
FIELDS = ID_FIELDS + ('path',)
_RECORD_KEYS = dict(zip(ID_FIELDS, ('vendor_id', 'device_id', 'subsystem_vendor_id', 'subsystem_device_id', 'class')))
_HEX_RE = re.compile(r'^[0-9a-f]{4}\Z')
_CLASS_RE = re.compile(r'^[0-9a-f]{6}\Z')
_PATH_RE = re.compile(r'^pci[0-9a-f]{4}:[0-9a-f]{2}(?:/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])+\Z')
_SLOT_PATH_RE = re.compile(r'^pci[0-9a-f]{4}:[0-9a-f]{2}(?:/[0-9a-f]{2}\.[0-7])+\Z')
_CLASS_PREFIX_RE = re.compile(r'^(?:[0-9a-f]{2}){1,3}\Z')
_COMMENT_RE = re.compile(r'^#\s*identity\s+(\S+)\s+(.*)$')


class IdentityError(ValueError):
    """A recorded identity that cannot be resolved to one device (none, or more than one)."""


def device_path(devices_dir, address):
    """The function's path through the bridges, from its ``/sys/bus/pci/devices`` link (one readlink), or None.

    The link points to ``../../../devices/pci0000:00/0000:00:1c.0/0000:03:00.0``; the part from the
    root bus on is kept.
    """
    try:
        target = os.readlink(os.path.join(devices_dir, address))
    except OSError:
        return None
    parts = target.split('/')
    for index, part in enumerate(parts):
        if part.startswith('pci') and ':' in part:
            path = '/'.join(parts[index:])
            return path if _PATH_RE.match(path) else None
    return None


def identity_of(record, path):
    """The identity of a ``read_devices`` record, with its ``path`` (None when unknown)."""
    identity = dict((field, record.get(key)) for field, key in _RECORD_KEYS.items())
    identity['path'] = path
    return identity


def read_identity(devices_dir, address):
    """The identity of the function at ``address`` now (its ``modalias`` and its link), or None when it is not there."""
    path = device_path(devices_dir, address)
    if path is None:
        return None
    ids = read_ids(os.path.join(devices_dir, address))
    if ids[0] is None:
        return None
    identity = dict(zip(ID_FIELDS, ids))
    identity['path'] = path
    return identity


def valid_identity(value):
    """A recorded identity as stored (a dict of the fields, lower-case hex), or None when malformed."""
    if not isinstance(value, dict):
        return None
    identity = {}
    for field in ID_FIELDS:
        text = value.get(field)
        pattern = _CLASS_RE if field == 'class' else _HEX_RE
        if not isinstance(text, str) or not pattern.match(text):
            return None
        identity[field] = text
    path = value.get('path')
    identity['path'] = path if isinstance(path, str) and _PATH_RE.match(path) else None
    return identity


def slot_path(path):
    """``pci0000:00/0000:00:1c.0/0000:03:00.0`` -> ``pci0000:00/1c.0/00.0``: bus numbers left out."""
    if not path:
        return None
    parts = path.split('/')
    return '/'.join([parts[0]] + [part.split(':')[-1] for part in parts[1:]])


def same_ids(recorded, current):
    return all(recorded.get(field) == current.get(field) for field in ID_FIELDS)


def identity_differs(recorded, current):
    """True when ``current`` (what is at the address now) is another device than ``recorded``.

    The ids must be equal; where both paths are known, so must their slots (two cards of one model
    are told apart by where they sit). A record without a path is compared by its ids alone.
    """
    if recorded is None or current is None:
        return False
    if not same_ids(recorded, current):
        return True
    return bool(recorded.get('path') and current.get('path')
                and slot_path(recorded['path']) != slot_path(current['path']))


def partial_identity(value):
    """``value``, a dict of some of the fields, as a pattern for ``matches_identity`` (ValueError saying what is wrong).

    The ids are four hex digits, ``class`` two, four or six (a prefix), ``path`` a path through the
    bridges with its bus numbers (``pci0000:00/0000:00:1c.0/0000:03:00.0``) or without them
    (``pci0000:00/1c.0/00.0``, as ``slot_path`` gives it). Upper-case hex is taken as lower-case; a
    field that is None is left out (so an identity whose path is unknown is a pattern too), but at
    least one field must be given.
    """
    if not isinstance(value, dict):
        raise ValueError('an identity is a dict of some of %s, not a %s' % (', '.join(FIELDS), type(value).__name__))
    unknown = sorted(str(key) for key in value if key not in FIELDS)
    if unknown:
        raise ValueError('%s: not a field of an identity (%s)' % (', '.join(unknown), ', '.join(FIELDS)))
    pattern = {}
    for field in FIELDS:
        text = value.get(field)
        if text is None:
            continue
        if not isinstance(text, str):
            kind = 'number' if isinstance(text, (int, float)) else type(text).__name__
            raise ValueError('%s=%r is a %s, not a string (quote hex in YAML)' % (field, text, kind))
        text = text.strip().lower()
        if field == 'path':
            valid = _PATH_RE.match(text) or _SLOT_PATH_RE.match(text)
            form = 'a path through the bridges (pci0000:00/0000:00:1c.0/0000:03:00.0 or pci0000:00/1c.0/00.0)'
        elif field == 'class':
            valid = _CLASS_PREFIX_RE.match(text)
            form = '2, 4 or 6 hex digits'
        else:
            valid = _HEX_RE.match(text)
            form = '4 hex digits'
        if not valid:
            raise ValueError('%s=%r is not %s' % (field, value[field], form))
        pattern[field] = text
    if not pattern:
        raise ValueError('an identity needs at least one of %s' % ', '.join(FIELDS))
    return pattern


def matches_identity(pattern, identity):
    """True when ``identity`` (identity_of's, or pci_info's) has every field of ``pattern`` (partial_identity's).

    Ids are equal, the class starts with the pattern's, and the paths are in the same slots (``slot_path``:
    bus numbers left out, so a device whose bus was renumbered still matches).
    """
    if not isinstance(identity, dict):
        return False
    for field, wanted in pattern.items():
        have = identity.get(field)
        if not isinstance(have, str):
            return False
        have = have.lower()
        if field == 'class':
            same = have.startswith(wanted)
        elif field == 'path':
            same = slot_path(have) == slot_path(wanted)
        else:
            same = have == wanted
        if not same:
            return False
    return True


def describe_pattern(pattern):
    """``vendor=8086 device=10d3 path=pci0000:00/1c.0/00.0``: a pattern of partial_identity, its fields in order."""
    return ' '.join('%s=%s' % (field, pattern[field]) for field in FIELDS if field in pattern)


def describe(identity):
    """``8086:10d3 (subsystem 8086:0001, class 020000) at pci0000:00/0000:00:1c.0/0000:03:00.0``."""
    if identity is None:
        return 'nothing'
    text = '%s:%s (subsystem %s:%s, class %s)' % tuple(identity.get(field) or '?' for field in ID_FIELDS)
    if identity.get('path'):
        text += ' at %s' % identity['path']
    return text


def resolve_identity(recorded, identities):
    """The one address whose identity is ``recorded`` among ``identities`` ({address: identity}).

    By ids; where several share them, the one in the recorded slot. IdentityError when no device
    has it (it left the host) or when it cannot be told which one (naming them).
    """
    matches = sorted(address for address, identity in identities.items() if identity and same_ids(recorded, identity))
    if len(matches) > 1 and recorded.get('path'):
        in_slot = [address for address in matches
                   if slot_path(identities[address].get('path')) == slot_path(recorded['path'])]
        if len(in_slot) == 1:
            return in_slot[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise IdentityError('no device on the host is %s: it has left the host' % describe(recorded))
    raise IdentityError('%s matches %d devices, %s: the identity cannot tell which one'
                        % (describe(recorded), len(matches), ', '.join(matches)))


# ---- the identity comments of the modprobe.d file ---------------------------------------------

def format_comment(address, identity):
    """``# identity 0000:03:00.0 vendor=8086 device=10d3 ... path=pci0000:00/...``: one hidden device's identity."""
    words = ['%s=%s' % (field, identity[field]) for field in FIELDS if identity.get(field)]
    return '# identity %s %s' % (address, ' '.join(words))


def parse_comment(line):
    """(address, identity) from a line written by format_comment, or None for any other line."""
    match = _COMMENT_RE.match(line.strip())
    if match is None:
        return None
    values = {}
    for word in match.group(2).split():
        name, sep, value = word.partition('=')
        if sep:
            values[name] = value
    identity = valid_identity(values)
    return (match.group(1), identity) if identity is not None else None
