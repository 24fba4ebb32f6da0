# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import threading
import time

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.safe_files import UnsafePathError, atomic_write
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.journal import DriverJournal, HostLock, JournalError

ENTRY = {'original_driver': 'e1000', 'phase': 'held', 'quarantined_boot': None, 'original_override': None}


def test_round_trip_and_missing_journal(tmp_path):
    journal = DriverJournal(HostPaths(str(tmp_path)))
    assert journal.load() == {}
    journal.save({'0000:00:03.0': ENTRY})
    assert journal.load() == {'0000:00:03.0': ENTRY}


@pytest.mark.parametrize('text, message', [
    ('{"format": 1, "devices": ', 'not valid JSON'),
    ('{"format": 2, "devices": {}}', 'unknown format'),
    ('{"format": 1, "devices": {"../x": {"phase": "held", "original_driver": null}}}', 'malformed entries for ../x'),
    ('{"format": 1, "devices": {"0000:00:03.0": {"phase": "lost"}}}', 'malformed entries'),
])
def test_damaged_journals_are_refused_not_overwritten(tmp_path, text, message):
    paths = HostPaths(str(tmp_path))
    os.makedirs(paths.state_dir, 0o700)
    with open(paths.journal, 'w') as handle:
        handle.write(text)
    with pytest.raises(JournalError, match=message):
        DriverJournal(paths).load()
    assert open(paths.journal).read() == text


def test_a_planted_symlink_is_not_written_through(tmp_path):
    paths = HostPaths(str(tmp_path))
    os.makedirs(paths.state_dir, 0o700)
    victim = tmp_path / 'victim'
    victim.write_text('keep me')
    os.symlink(str(victim), paths.journal)
    with pytest.raises(JournalError, match='not a regular file'):
        DriverJournal(paths).save({'0000:00:03.0': ENTRY})
    assert victim.read_text() == 'keep me'
    with pytest.raises(UnsafePathError):
        atomic_write(paths.journal, b'x')


def test_a_state_dir_that_is_a_symlink_or_open_to_others_is_refused(tmp_path):
    paths = HostPaths(str(tmp_path))
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    os.makedirs(os.path.dirname(paths.state_dir))
    os.symlink(str(elsewhere), paths.state_dir)
    with pytest.raises(JournalError, match='symbolic link'):
        DriverJournal(paths).save({})
    os.unlink(paths.state_dir)
    os.makedirs(paths.state_dir)
    os.chmod(paths.state_dir, 0o777)
    with pytest.raises(JournalError, match='writable by group or others'):
        DriverJournal(paths).save({})


def test_the_lock_serialises_two_runs(tmp_path):
    paths = HostPaths(str(tmp_path))
    order = []

    def second():
        with HostLock(paths, timeout=5):
            order.append('second')

    with HostLock(paths, timeout=1):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append('first done')
    thread.join()
    assert order == ['first done', 'second']
    assert os.stat(paths.lock).st_mode & 0o777 == 0o600


def test_the_lock_gives_up_after_its_timeout(tmp_path):
    paths = HostPaths(str(tmp_path))
    with HostLock(paths, timeout=1):
        with pytest.raises(JournalError, match='another run holds'):
            with HostLock(paths, timeout=0.2):
                pass


def test_an_identity_is_kept_and_a_journal_without_one_still_loads(tmp_path):
    paths = HostPaths(str(tmp_path))
    identity = {'vendor': '8086', 'device': '100e', 'subsystem_vendor': '8086', 'subsystem_device': '0001',
                'class': '020000', 'path': 'pci0000:00/0000:00:03.0'}
    journal = DriverJournal(paths)
    journal.save({'0000:00:03.0': dict(ENTRY, identity=identity), '0000:00:04.0': ENTRY})
    assert journal.load() == {'0000:00:03.0': dict(ENTRY, identity=identity), '0000:00:04.0': ENTRY}
    # An identity that does not read as one is none recorded: the entry (its original driver) still counts.
    journal.save({'0000:00:03.0': dict(ENTRY, identity={'vendor': 'x'})})
    assert journal.load() == {'0000:00:03.0': dict(ENTRY, identity=None)}
