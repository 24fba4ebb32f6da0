# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SELinux as ``ansible.module_utils.compat.selinux`` shows it to AnsibleModule, on a real directory tree.

A label belongs to an inode, as in the kernel: a file created in a directory takes the directory's
label (no type transition rule), so a file replaced by a rename carries its temporary file's label
unless someone sets it; ``lsetfilecon`` sets it; ``matchpathcon`` answers from a small policy of
(path suffix, context) rules, as the file-context database would.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

UNLABELED = 'system_u:object_r:unlabeled_t:s0'


class FakeSelinux:
    def __init__(self, policy=()):
        self.policy = list(policy)     # [(path suffix, context)], the first that matches wins
        self.labels = {}               # (st_dev, st_ino) -> context
        self.set_calls = []

    @staticmethod
    def is_selinux_enabled():
        return 1

    @staticmethod
    def is_selinux_mls_enabled():
        return 1

    def label_of(self, path):
        info = os.lstat(path)
        key = (info.st_dev, info.st_ino)
        if key not in self.labels:
            parent = os.path.dirname(path)
            self.labels[key] = self.label_of(parent) if parent and parent != path else UNLABELED
        return self.labels[key]

    def label(self, path, context):
        info = os.lstat(path)
        self.labels[(info.st_dev, info.st_ino)] = context

    def lgetfilecon_raw(self, path):
        if not os.path.lexists(path):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        context = self.label_of(path)
        return [len(context) + 1, context]

    def matchpathcon(self, path, mode):
        for suffix, context in self.policy:
            if path.endswith(suffix):
                return [0, context]
        return [-1, None]

    def lsetfilecon(self, path, context):
        self.set_calls.append((path, context))
        self.label(path, context)
        return 0
