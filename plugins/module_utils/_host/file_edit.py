# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Editing a text file the way every writing module of this collection does it.

Decide first, act once: a module reads the file, builds the new text in memory, and gets a
``PlannedFile`` that knows whether anything changes and what the diff is. Only outside check
mode, and only when something changes, ``write_planned`` backs the old file up (when asked) and
replaces it atomically: temp file in the same directory, fsync, rename, never through a
symbolic link. A file that cannot be parsed is never written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.safe_files import (
    UnsafePathError,
    atomic_write,
    read_owned_file,
)


class FileEditError(Exception):
    """The file cannot be read, parsed or written safely; it was left as it was."""


def read_text_file(path):
    """The file's text, or None when it does not exist. A symlink or non-UTF-8 file raises FileEditError."""
    try:
        data = read_owned_file(path)
    except (UnsafePathError, OSError) as exc:
        raise FileEditError('cannot read %s: %s' % (path, exc))
    if data is None:
        return None
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise FileEditError('%s is not UTF-8 text (%s); it was left as it was' % (path, exc))


class PlannedFile:
    """The text a file has (None: missing) and the text it should have (None: remove it).

    ``own_file``: a file of the collection's own in a system directory (a modprobe.d file, the
    GRUB drop-in); that directory may not be a symbolic link, since the collection creates it
    when it is missing and never writes its own files through a link someone else planted.
    """

    def __init__(self, path, before, after, mode=0o644, own_file=False):
        self.path = path
        self.before = before
        self.after = after
        self.mode = mode
        self.own_file = own_file

    @property
    def changed(self):
        return self.before != self.after

    def diff(self):
        return {
            'before_header': self.path if self.before is not None else '%s (absent)' % self.path,
            'after_header': self.path if self.after is not None else '%s (absent)' % self.path,
            'before': self.before or '',
            'after': self.after or '',
        }


def write_planned(planned, backup=None, labels=None):
    """Apply ``planned`` if it changes anything; ``backup`` is ``module.backup_local`` or None, ``labels`` the
    AnsibleModule (or None), whose SELinux calls keep the file's context (``atomic_write``).

    Returns the backup file's path when one was made. Missing parent directories are created
    with mode 0755 (they are system configuration directories such as /etc/modprobe.d).
    """
    if not planned.changed:
        return None
    backup_file = None
    directory = os.path.dirname(planned.path)
    if planned.own_file and directory and os.path.islink(directory):
        raise FileEditError('cannot write %s: its directory %s is a symbolic link; refusing to write through it'
                            % (planned.path, directory))
    try:
        if backup is not None and planned.before is not None:
            backup_file = backup(planned.path)
        if planned.after is None:
            os.unlink(planned.path)
            return backup_file
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        atomic_write(planned.path, planned.after.encode('utf-8'), mode=planned.mode,
                     keep_mode_and_owner=planned.before is not None, labels=labels)
    except (UnsafePathError, OSError) as exc:
        raise FileEditError('cannot write %s: %s' % (planned.path, exc))
    return backup_file
