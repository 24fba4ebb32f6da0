# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A snapshot of a fake host: every entry under its root, and the fake toolstack's state.

``HostSnapshot.take(root, xen)`` records, without following any symbolic link, each directory
(mode, owner), regular file (mode, owner, SHA-256 of its bytes) and symbolic link (its target)
under ``root`` -- on a FakeKernel tree that is sysfs (which driver holds which device, pciback's
slots, ``driver_override``), the journal and its lock, modprobe.d, the GRUB files, and any
configuration a test put there -- plus, with a FakeXen, every xenstore node that has a value
and the Xen owner of each device. Two snapshots compare equal when nothing changed; ``changes()`` names what did.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import stat


def _describe(path):
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return ['link', os.readlink(path)]
    owner = [stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid]
    if stat.S_ISDIR(info.st_mode):
        return ['dir'] + owner
    if stat.S_ISREG(info.st_mode):
        with open(path, 'rb') as handle:
            return ['file'] + owner + [hashlib.sha256(handle.read()).hexdigest()]
    return ['other', stat.S_IFMT(info.st_mode)] + owner


class HostSnapshot:
    """What a fake host holds at one moment; ``digest`` is one hash over all of it."""

    def __init__(self, entries):
        self.entries = entries

    @classmethod
    def take(cls, root, xen=None):
        entries = {}
        for directory, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(directory, name)
                entries[os.path.relpath(path, root)] = _describe(path)
        if xen is not None:
            # Nodes with a value: the records libxl and this collection read. Empty nodes are the
            # directories xenstored makes for a path written below them, and stay like xl leaves them.
            entries['<xenstore>'] = sorted((path, value) for path, value in xen.store.items() if value != '')
            entries['<xen owners>'] = sorted(xen.owner.items())
        return cls(entries)

    @property
    def digest(self):
        return hashlib.sha256(json.dumps(self.entries, sort_keys=True).encode('utf-8')).hexdigest()

    def changes(self, other):
        """``{path: (before, after)}`` for every entry added, removed or changed between self and ``other``."""
        names = set(self.entries) | set(other.entries)
        return dict((name, (self.entries.get(name), other.entries.get(name))) for name in sorted(names)
                    if self.entries.get(name) != other.entries.get(name))

    def __eq__(self, other):
        return isinstance(other, HostSnapshot) and self.digest == other.digest

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return 'HostSnapshot(%s, %d entries)' % (self.digest[:12], len(self.entries))


def assert_unchanged(before, root, xen=None, what='the host'):
    """Fail naming every entry that differs from ``before`` (a HostSnapshot taken earlier)."""
    after = HostSnapshot.take(root, xen)
    changes = before.changes(after)
    assert not changes, '%s changed: %s' % (what, json.dumps(changes, indent=1, sort_keys=True)[:4000])
    assert after.digest == before.digest
