# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a module's main() against the fake dom0: HostPaths, sysfs writes and commands point at it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible.module_utils.common import warnings
from ansible_collections.xenpci.passthrough.tests.unit.module_args import patch_module_args

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci import sysfs
from ansible_collections.xenpci.passthrough.tests.unit.conftest import build_rig_host
from ansible_collections.xenpci.passthrough.tests.unit.fakes.toolstack import FakeXen


class ModuleRunner:
    def __init__(self, kernel, xen, capsys):
        self.kernel = kernel
        self.xen = xen
        self.capsys = capsys

    def __call__(self, module, **args):
        """Run ``module.main()`` with ``args``; return its JSON result (failed ones too)."""
        # A module runs in a process of its own: no warning of an earlier run is carried over.
        for name in ('_global_warnings', '_global_deprecations'):
            getattr(warnings, name).clear()
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        out = self.capsys.readouterr().out
        return json.loads(out)


@pytest.fixture
def fake_dom0(tmp_path, monkeypatch):
    uname = os.uname()
    kernel = build_rig_host(str(tmp_path), arch=uname[4], release=uname[2])
    xen = FakeXen(kernel)
    monkeypatch.setattr(HostPaths, 'default_root', kernel.root)
    monkeypatch.setattr(sysfs, 'PciSysfs', lambda paths: xen.sysfs)
    return kernel, xen


@pytest.fixture
def run(fake_dom0, capsys, monkeypatch):
    """A runner for the collection's modules; no real command can run (xl, xenstore, modprobe are fakes)."""
    kernel, xen = fake_dom0
    monkeypatch.setattr(Commands, 'for_module', classmethod(lambda cls, module: xen.commands))
    return ModuleRunner(kernel, xen, capsys)
