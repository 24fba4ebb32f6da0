# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""The udev rule files of the collection's own under ``/etc/udev/rules.d/`` (reset methods, SR-IOV), read safely.

A file is read without following a symbolic link, and refused when its directory is one: the
collection writes these files as root and never through a link someone planted. ``describe_errno``
words a kernel's refusal of a sysfs write the same way in every message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import FileEditError, read_text_file


def rules_path(paths, name):
    return paths.join('etc', 'udev', 'rules.d', name)


def read_own_rules(paths, name, error):
    """``(path, text or None)`` of the rule file ``name``; ``error`` (an exception class) refuses a linked file or
    directory, saying nothing was changed."""
    path = rules_path(paths, name)
    directory = os.path.dirname(path)
    if os.path.islink(directory):
        raise error('cannot write %s: its directory %s is a symbolic link; refusing to write through it; nothing was '
                    'changed' % (path, directory))
    try:
        return path, read_text_file(path)
    except FileEditError as exc:
        raise error('%s; nothing was changed' % exc)


def rule_lines(text):
    """``(line number, line)`` for each line of a rule file that is neither blank nor a comment, stripped."""
    for number, line in enumerate((text or '').split('\n'), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith('#'):
            yield number, stripped


def describe_errno(exc):
    """``EINVAL, Invalid argument`` for an OSError with an errno, else its text."""
    if exc.errno is not None:
        return '%s, %s' % (errno.errorcode.get(exc.errno, exc.errno), os.strerror(exc.errno))
    return str(exc)
