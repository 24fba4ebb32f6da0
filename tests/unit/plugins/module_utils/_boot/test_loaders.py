# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.loaders import (
    BootCmdlineError,
    ensure,
    select_backend,
    update_grub,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.tests.unit.fakes.grubby import FakeGrubby


def _tree(tmp_path, grub=True, extlinux=False, files=()):
    root = str(tmp_path)
    if grub:
        os.makedirs(os.path.join(root, 'etc', 'default'))
        with open(os.path.join(root, 'etc', 'default', 'grub'), 'w') as handle:
            handle.write('GRUB_CMDLINE_LINUX="quiet"\n')
    if extlinux:
        os.makedirs(os.path.join(root, 'boot', 'extlinux'))
        with open(os.path.join(root, 'boot', 'extlinux', 'extlinux.conf'), 'w') as handle:
            handle.write('label l\n  kernel /Image\n  append ro\n')
    for relative in files:
        os.makedirs(os.path.dirname(os.path.join(root, relative)), exist_ok=True)
        open(os.path.join(root, relative), 'w').close()
    return HostPaths(root)


@pytest.mark.parametrize('installed, grub, extlinux, target, expected', [
    (('update-grub', 'grubby'), True, True, 'linux', 'grub'),
    (('grubby',), True, False, 'linux', 'grubby'),
    (('grubby',), True, False, 'xen', 'grub'),
    (('grub2-mkconfig',), True, False, 'xen', 'grub'),
    ((), True, True, 'linux', 'extlinux'),
    ((), False, True, 'linux', 'extlinux'),
])
def test_auto_picks_by_what_the_host_has(tmp_path, installed, grub, extlinux, target, expected):
    paths = _tree(tmp_path, grub, extlinux)
    tools = FakeGrubby([], installed=installed)
    extlinux_file = paths.join('boot', 'extlinux', 'extlinux.conf')
    assert select_backend(paths, tools.commands, target, 'auto', extlinux_file) == expected


def test_auto_without_anything_known_fails(tmp_path):
    paths = _tree(tmp_path, grub=False)
    with pytest.raises(BootCmdlineError, match='no boot loader configuration'):
        select_backend(paths, FakeGrubby([], installed=()).commands, 'linux', 'auto', paths.join('nope'))


@pytest.mark.parametrize('backend', ['grubby', 'extlinux'])
def test_back_ends_without_xen_refuse_the_xen_targets(tmp_path, backend):
    paths = _tree(tmp_path, extlinux=True)
    with pytest.raises(BootCmdlineError, match='handles target=linux only'):
        ensure(paths, FakeGrubby([]).commands, 'dom0_linux', {'quiet': None}, backend=backend)


def test_update_grub_falls_back_to_grub2_mkconfig_onto_the_existing_config(tmp_path):
    paths = _tree(tmp_path, files=['boot/grub2/grub.cfg'])
    tools = FakeGrubby([], installed=('grub2-mkconfig', 'grub-mkconfig'))
    update_grub(paths, tools.commands)
    assert tools.calls == [['/usr/sbin/grub2-mkconfig', '-o', paths.join('boot', 'grub2', 'grub.cfg')]]


def test_update_grub_failures_say_the_file_was_changed(tmp_path):
    paths = _tree(tmp_path)
    with pytest.raises(BootCmdlineError, match='neither update-grub'):
        update_grub(paths, FakeGrubby([], installed=()).commands)
    tools = FakeGrubby([], installed=('update-grub',))
    tools.run = lambda argv: (1, '', '/usr/sbin/grub-probe: error: failed to get canonical path\n')
    with pytest.raises(BootCmdlineError, match='was changed, but /usr/sbin/update-grub failed .*canonical path'):
        update_grub(paths, type(tools.commands)(tools.find, tools.run))


def test_relative_paths_are_refused(tmp_path):
    paths = _tree(tmp_path)
    with pytest.raises(BootCmdlineError, match='not an absolute path'):
        ensure(paths, FakeGrubby([]).commands, 'linux', {'quiet': None}, backend='grub', grub_file='etc/default/grub')
