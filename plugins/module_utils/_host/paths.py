# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Where things live on a host, relative to one root so tests can use a temporary tree."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


class HostPaths:
    """The host's file-system locations the collection reads and writes.

    Every module_utils function takes one of these instead of hard-coding ``/sys`` or
    ``/proc``; modules build it from the real root, tests from a temporary tree.
    """

    default_root = '/'

    def __init__(self, root=None):
        self.root = self.default_root if root is None else root
        self.sys = self.join('sys')
        self.proc = self.join('proc')
        self.boot = self.join('boot')
        self.lib_modules = self.join('lib', 'modules')
        self.state_dir = self.join('var', 'lib', 'xenpci_passthrough')
        self.pci_ids_candidates = (
            self.join('usr', 'share', 'misc', 'pci.ids'),
            self.join('usr', 'share', 'hwdata', 'pci.ids'),
            self.join('usr', 'share', 'pci.ids'),
        )

    def join(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def pci_devices(self):
        return os.path.join(self.sys, 'bus', 'pci', 'devices')

    @property
    def pci_drivers(self):
        return os.path.join(self.sys, 'bus', 'pci', 'drivers')

    @property
    def pciback_driver(self):
        return os.path.join(self.sys, 'bus', 'pci', 'drivers', 'pciback')

    @property
    def pciback_module(self):
        return os.path.join(self.sys, 'module', 'xen_pciback')

    @property
    def journal(self):
        return os.path.join(self.state_dir, 'drivers.json')

    @property
    def lock(self):
        return os.path.join(self.state_dir, 'lock')
