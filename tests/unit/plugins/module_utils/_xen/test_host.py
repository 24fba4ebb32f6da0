# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import os

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost, pciback_symbol
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel


@pytest.mark.parametrize('arch, symbol', [('x86_64', 'CONFIG_XEN_PCIDEV_BACKEND'), ('aarch64', 'CONFIG_XEN_PCIDEV_STUB')])
def test_the_pciback_symbol_depends_on_the_architecture(arch, symbol):
    assert pciback_symbol(arch) == symbol


@pytest.mark.parametrize('build', ['module', 'builtin', 'absent'])
def test_pciback_build_from_the_kernel_config(tmp_path, build):
    kernel = FakeKernel(str(tmp_path), pciback_build=build)
    assert XenHost(kernel.paths, uname=kernel.uname).pciback_build() == build


def _without_boot_config(kernel):
    os.unlink(os.path.join(kernel.paths.boot, 'config-' + kernel.release))


def test_proc_config_gz_is_read_when_boot_has_no_config(tmp_path):
    kernel = FakeKernel(str(tmp_path), arch='aarch64', pciback_build='module')
    _without_boot_config(kernel)
    with gzip.open(os.path.join(kernel.paths.proc, 'config.gz'), 'wb') as handle:
        handle.write(b'CONFIG_XEN_PCIDEV_STUB=m\n')
    assert XenHost(kernel.paths, uname=kernel.uname).pciback_build() == 'module'


@pytest.mark.parametrize('index, build', [('modules.builtin', 'builtin'), ('modules.dep', 'module')])
def test_module_indexes_tell_when_there_is_no_config(tmp_path, index, build):
    kernel = FakeKernel(str(tmp_path))
    _without_boot_config(kernel)
    host = XenHost(kernel.paths, uname=kernel.uname)
    assert host.pciback_build() == 'unknown'
    directory = os.path.join(kernel.paths.lib_modules, kernel.release)
    os.makedirs(directory)
    with open(os.path.join(directory, index), 'w') as handle:
        handle.write('kernel/drivers/xen/xen-pciback/xen-pciback.ko:%s\n' % (' kernel/drivers/xen/xen.ko' if index == 'modules.dep' else ''))
    assert host.pciback_build() == build


def test_xen_facts(tmp_path):
    kernel = FakeKernel(str(tmp_path), xen_version=(4, 20))
    host = XenHost(kernel.paths, uname=kernel.uname)
    assert host.hypervisor() == 'xen' and host.is_dom0()
    assert host.xen_version() == '4.20.5' and host.xen_version_tuple() == (4, 20)
    assert not host.xenstored_running()
    kernel.start_xenstored()
    assert host.xenstored_running()
    kernel.load_pciback(hide='(0000:00:03.0)')
    assert host.pciback_parameters() == {'hide': '(0000:00:03.0)', 'passthrough': '0', 'permissive': 'N'}


def test_a_plain_linux_host_is_not_xen(tmp_path):
    kernel = FakeKernel(str(tmp_path), xen=False)
    host = XenHost(kernel.paths, uname=kernel.uname)
    assert host.hypervisor() is None and not host.is_dom0() and host.xen_version() is None
