# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Files the collection owns on a host: created private, replaced atomically, never via a symlink."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat
import tempfile


class UnsafePathError(Exception):
    """A path the collection would write is a symlink, not a regular file, or owned by someone else."""


def ensure_private_dir(path, mode=0o700):
    """Create ``path`` (and parents) if missing; refuse a symlink, a non-directory or a foreign owner."""
    try:
        os.makedirs(path, mode)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePathError('%s is a symbolic link; refusing to use it' % path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError('%s exists and is not a directory' % path)
    if info.st_uid != os.geteuid():
        raise UnsafePathError('%s is owned by uid %d, not by uid %d running this task'
                              % (path, info.st_uid, os.geteuid()))
    if info.st_mode & 0o022:
        raise UnsafePathError('%s is writable by group or others (mode %o)' % (path, stat.S_IMODE(info.st_mode)))


def read_owned_file(path):
    """Return the bytes of ``path``, or None when it does not exist; never follows a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.ELOOP:
            raise UnsafePathError('%s is a symbolic link; refusing to read it' % path)
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError('%s is not a regular file' % path)
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b''.join(chunks)
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o600, keep_mode_and_owner=False, labels=None):
    """Replace ``path`` with ``data`` (bytes) atomically: temp file in the same directory, fsync, rename.

    A symlink at ``path`` is refused, not followed; the directory entry is replaced by a new
    regular file with ``mode`` (or, with ``keep_mode_and_owner``, the mode and owner of the file
    it replaces), and the directory is synced so the rename survives a power cut.

    ``labels`` is the running AnsibleModule, or None: on an SELinux host the new file gets the
    context of the file it replaces (a new path: the policy's default for it), with the calls
    and in the order ``AnsibleModule.atomic_move`` makes them; a rename keeps the temporary
    file's own label otherwise.
    """
    directory = os.path.dirname(path) or '.'
    existing = None
    try:
        existing = os.lstat(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise UnsafePathError('%s exists and is not a regular file (a symbolic link?); refusing to replace it' % path)
    context = None
    if labels is not None and labels.selinux_enabled():
        context = labels.selinux_context(path) if existing is not None else labels.selinux_default_context(path)
    fd, temp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        if keep_mode_and_owner and existing is not None:
            mode = stat.S_IMODE(existing.st_mode)
            if os.geteuid() == 0:
                os.fchown(fd, existing.st_uid, existing.st_gid)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp_path)
        raise
    os.close(fd)
    try:
        os.rename(temp_path, path)
    except BaseException:
        os.unlink(temp_path)
        raise
    if context is not None:
        labels.set_context_if_different(path, context, False)
    sync_directory(directory)


def sync_directory(directory):
    fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
