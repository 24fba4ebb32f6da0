# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import (
    FileEditError,
    PlannedFile,
    read_text_file,
    write_planned,
)


def test_an_unchanged_plan_writes_nothing(tmp_path):
    path = tmp_path / 'f.conf'
    path.write_text('same\n')
    before = os.stat(str(path))
    assert write_planned(PlannedFile(str(path), 'same\n', 'same\n')) is None
    assert os.stat(str(path)).st_ino == before.st_ino


def test_a_change_is_written_atomically_keeping_the_mode_and_backed_up(tmp_path):
    path = tmp_path / 'f.conf'
    path.write_text('old\n')
    os.chmod(str(path), 0o640)
    backups = []

    def backup(name):
        backups.append(name)
        return name + '.bak'

    planned = PlannedFile(str(path), read_text_file(str(path)), 'new\n')
    assert planned.diff() == {'before_header': str(path), 'after_header': str(path), 'before': 'old\n', 'after': 'new\n'}
    assert write_planned(planned, backup) == str(path) + '.bak'
    assert path.read_text() == 'new\n' and os.stat(str(path)).st_mode & 0o777 == 0o640
    assert backups == [str(path)]


def test_a_new_file_gets_its_directory_and_mode(tmp_path):
    path = tmp_path / 'etc' / 'modprobe.d' / 'x.conf'
    write_planned(PlannedFile(str(path), None, 'options x y=1\n', mode=0o644))
    assert path.read_text() == 'options x y=1\n' and os.stat(str(path)).st_mode & 0o777 == 0o644


def test_a_planted_symlink_is_neither_read_nor_written_through(tmp_path):
    victim = tmp_path / 'shadow'
    victim.write_text('secret\n')
    link = tmp_path / 'f.conf'
    os.symlink(str(victim), str(link))
    with pytest.raises(FileEditError, match='symbolic link'):
        read_text_file(str(link))
    with pytest.raises(FileEditError, match='not a regular file'):
        write_planned(PlannedFile(str(link), 'x', 'y'))
    assert victim.read_text() == 'secret\n'


def test_non_utf8_files_are_refused(tmp_path):
    path = tmp_path / 'f.conf'
    path.write_bytes(b'\xff\xfe')
    with pytest.raises(FileEditError, match='not UTF-8'):
        read_text_file(str(path))
