# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""The journal of original drivers, and the lock that serialises runs on one host.

The journal (``/var/lib/xenpci_passthrough/drivers.json``) remembers, per device this
collection moved, the driver it had before, whether a move is half-done, and whether the
hypervisor quarantined it during the current boot. It is written atomically before and after
every batch, so an interrupted run (kill -9, power cut) leaves a journal that parses and says
which devices to finish.

Entry fields:
  original_driver  sysfs name of the driver before the move (None: the device had none)
  original_override  a ``driver_override`` that had to be cleared to bind pciback
  phase            ``binding`` or ``releasing`` while a move runs, ``held`` once on pciback,
                   ``released`` when given up from pciback without a driver (restore: false)
  quarantined_boot the boot_id during which Xen quarantined the device, else None
  identity         what the device is and where it sits (``_pci.identity``: vendor, device, subsystem
                   ids, class, path), so that a later run sees when the address names another device;
                   absent from the entries of journals written before it was recorded, which still load
  sriov_vf         ``PF/vfN`` for an SR-IOV virtual function: its physical function and index, beside the
                   address the VF has while that PF has that many VFs
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import time

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.safe_files import (
    UnsafePathError,
    atomic_write,
    ensure_private_dir,
    read_owned_file,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import is_canonical_address
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.identity import valid_identity

JOURNAL_FORMAT = 1
PHASE_BINDING = 'binding'
PHASE_RELEASING = 'releasing'
PHASE_HELD = 'held'
PHASE_RELEASED = 'released'
PHASES = (PHASE_BINDING, PHASE_RELEASING, PHASE_HELD, PHASE_RELEASED)
HALF_DONE_PHASES = (PHASE_BINDING, PHASE_RELEASING)


class JournalError(Exception):
    """The journal cannot be read or written safely; nothing was changed."""


def _valid_entry(entry):
    return (isinstance(entry, dict) and entry.get('phase') in PHASES
            and (entry.get('original_driver') is None or isinstance(entry.get('original_driver'), str)))


class DriverJournal:
    """Load and save the journal at ``paths.journal``."""

    def __init__(self, paths):
        self.paths = paths
        self.path = paths.journal

    def load(self):
        """{address: entry}; {} when there is no journal yet. A damaged journal raises JournalError."""
        try:
            data = read_owned_file(self.path)
        except (UnsafePathError, OSError) as exc:
            raise JournalError('cannot read the journal %s: %s' % (self.path, exc))
        if data is None:
            return {}
        try:
            document = json.loads(data.decode('utf-8'))
        except ValueError as exc:
            raise JournalError('the journal %s is not valid JSON (%s); it records the original drivers '
                               'of devices on pciback: repair or move it away, nothing was changed' % (self.path, exc))
        devices = document.get('devices') if isinstance(document, dict) else None
        if document.get('format') != JOURNAL_FORMAT or not isinstance(devices, dict):
            raise JournalError('the journal %s has an unknown format; nothing was changed' % self.path)
        bad = sorted(address for address, entry in devices.items()
                     if not is_canonical_address(address) or not _valid_entry(entry))
        if bad:
            raise JournalError('the journal %s has malformed entries for %s; nothing was changed'
                               % (self.path, ', '.join(bad)))
        for entry in devices.values():
            # Informational: an identity that does not read as one counts as none recorded (an older journal has none).
            if entry.get('identity') is not None:
                entry['identity'] = valid_identity(entry['identity'])
        return devices

    def save(self, devices):
        document = {'format': JOURNAL_FORMAT, 'devices': devices}
        data = json.dumps(document, indent=2, sort_keys=True).encode('utf-8') + b'\n'
        try:
            ensure_private_dir(self.paths.state_dir)
            atomic_write(self.path, data, mode=0o600)
        except (UnsafePathError, OSError) as exc:
            raise JournalError('cannot write the journal %s: %s' % (self.path, exc))


class HostLock:
    """An exclusive ``flock`` on ``paths.lock``, waited for up to ``timeout`` seconds."""

    def __init__(self, paths, timeout=60.0):
        self.paths = paths
        self.timeout = timeout
        self._fd = None

    def __enter__(self):
        try:
            ensure_private_dir(self.paths.state_dir)
            fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), 0o600)
        except (UnsafePathError, OSError) as exc:
            raise JournalError('cannot open the lock %s: %s' % (self.paths.lock, exc))
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise JournalError('another run holds %s; gave up after %.0f s' % (self.paths.lock, self.timeout))
                time.sleep(0.1)
        self._fd = fd
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        return False
