# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import hashlib
import json
import os

import pytest

from ansible_collections.xenpci.passthrough.tests.unit.module_args import patch_module_args

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
from ansible_collections.xenpci.passthrough.plugins.modules import kernel_config
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel

CONFIG = '''#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.0 Kernel Configuration
#
CONFIG_PCI=y
CONFIG_XEN=y
CONFIG_XEN_DOM0=y
CONFIG_XEN_BACKEND=y
# CONFIG_XEN_PCIDEV_BACKEND is not set
'''


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """Run kernel_config's main() on a host under tmp_path whose uname is the fake kernel's."""
    state = {'kernel': FakeKernel(str(tmp_path / 'host'), arch='x86_64', release='6.1.0-13-amd64')}
    monkeypatch.setattr(HostPaths, 'default_root', state['kernel'].root)
    monkeypatch.setattr(kernel_config, 'XenHost', lambda paths: XenHost(paths, uname=state['kernel'].uname))

    def runner(**args):
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                kernel_config.main()
        return json.loads(capsys.readouterr().out)
    runner.state = state
    runner.tmp_path = tmp_path
    return runner


def digest(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def config_file(tmp_path, text=CONFIG):
    path = tmp_path / 'linux.config'
    path.write_text(text)
    return str(path)


def test_edit_twice_with_diff_the_second_run_changes_nothing(run, tmp_path):
    path = config_file(tmp_path)
    result = run(path=path, options={'XEN_PCIDEV_BACKEND': 'm'}, _ansible_diff=True)
    assert result['changed'] and result['rebuild_required'] and not result['reboot_required']
    assert result['options'] == {'CONFIG_XEN_PCIDEV_BACKEND': {'before': 'n', 'after': 'm'}}
    assert result['diff']['before'] == CONFIG and result['diff']['before_header'] == path
    assert result['diff']['after'] == CONFIG.replace('# CONFIG_XEN_PCIDEV_BACKEND is not set', 'CONFIG_XEN_PCIDEV_BACKEND=m')
    assert open(path).read() == result['diff']['after']
    again = run(path=path, options={'CONFIG_XEN_PCIDEV_BACKEND': 'm'}, _ansible_diff=True)
    assert not again['changed'] and not again['rebuild_required']
    assert again['diff']['before'] == again['diff']['after']


def test_check_mode_leaves_the_file_byte_identical(run, tmp_path):
    path = config_file(tmp_path)
    before = digest(path)
    result = run(path=path, options={'XEN_PCIDEV_BACKEND': 'y'}, _ansible_check_mode=True)
    assert result['changed'] and digest(path) == before


def test_backup_and_absent(run, tmp_path):
    path = config_file(tmp_path)
    result = run(path=path, options=['XEN_PCIDEV_BACKEND'], state='absent', backup=True)
    assert result['changed'] and 'XEN_PCIDEV_BACKEND' not in open(path).read()
    assert open(result['backup_file']).read() == CONFIG
    assert not run(path=path, options=['XEN_PCIDEV_BACKEND'], state='absent', backup=True)['changed']
    assert glob.glob(path + '.*') == [result['backup_file']]


@pytest.mark.parametrize('text, options, message', [
    (CONFIG + 'garbage here\n', {'XEN_PCIDEV_BACKEND': 'm'}, 'line 10 is neither'),
    (CONFIG + 'CONFIG_CMDLINE="console=hvc0\n', {'XEN_PCIDEV_BACKEND': 'm'}, 'line 10'),
    (CONFIG, {'XEN_PCIDEV_STUB': 'm'}, 'on x86 xen-pciback is built by CONFIG_XEN_PCIDEV_BACKEND'),
    (CONFIG, {'XEN_PCI_STUB': 'y'}, 'cannot be set by hand'),
    (CONFIG, {'CMDLINE': 'a\nCONFIG_X=y'}, 'line break'),
    (CONFIG, {'config_xen': 'y'}, 'not a kernel config symbol'),
    (CONFIG, {'XEN_BACKEND': 'n', 'XEN_PCIDEV_BACKEND': 'm'}, 'needs CONFIG_XEN_BACKEND'),
    (CONFIG, 'XEN_PCIDEV_BACKEND=m', 'must be a mapping'),
])
def test_bad_files_and_requests_fail_and_leave_the_file_byte_identical(run, tmp_path, text, options, message):
    path = config_file(tmp_path, text)
    before = digest(path)
    result = run(path=path, options=options)
    assert result['failed'] and message in result['msg']
    assert digest(path) == before


def test_arm64_refusal_names_the_stub(run, tmp_path):
    path = str(tmp_path / 'arm.config')
    result = run(path=path, options={'XEN_PCIDEV_BACKEND': 'm'}, arch='aarch64', kernel_version='6.1')
    assert result['failed'] and 'CONFIG_XEN_PCIDEV_STUB' in result['msg'] and not os.path.exists(path)
    result = run(path=path, options={'XEN_PCIDEV_STUB': 'm', 'XEN_BACKEND': 'y'}, arch='aarch64', kernel_version='6.1')
    assert result['changed'] and result['arch'] == 'arm64' and result['kernel_version'] == '6.1'
    assert open(path).read() == 'CONFIG_XEN_PCIDEV_STUB=m\nCONFIG_XEN_BACKEND=y\n'


def test_a_planted_symlink_is_refused(run, tmp_path):
    victim = tmp_path / 'victim'
    victim.write_text('CONFIG_A=y\n')
    link = tmp_path / 'linux.config'
    os.symlink(str(victim), str(link))
    result = run(path=str(link), options={'A': 'n'})
    assert result['failed'] and 'symbolic link' in result['msg']
    assert victim.read_text() == 'CONFIG_A=y\n' and os.path.islink(str(link))


def test_source_tree_without_kconfiglib(run, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'kconfiglib', None)
    path = config_file(tmp_path)
    result = run(path=path, options={'XEN_PCIDEV_BACKEND': 'm'}, source_tree=str(tmp_path))
    assert result['failed'] and 'pip install kconfiglib' in result['msg']


def test_check_running_reports_and_fails_on_request(run):
    result = run(mode='check_running')
    assert not result['changed'] and result['missing'] == [] and result['present'] == {'CONFIG_XEN_PCIDEV_BACKEND': 'm'}
    assert result['arch'] == 'x86' and result['kernel_version'] == '6.1.0-13-amd64'
    result = run(mode='check_running', options={'XEN_PCIDEV_BACKEND': 'y', 'XEN_DOM0': 'y'})
    assert not result.get('failed') and result['mismatched'] == ['CONFIG_XEN_PCIDEV_BACKEND']
    assert result['missing'] == ['CONFIG_XEN_DOM0']
    result = run(mode='check_running', options=['XEN_DOM0'], fail_on_missing=True)
    assert result['failed'] and result['msg'] == 'this kernel (6.1.0-13-amd64, x86) lacks CONFIG_XEN_DOM0'
    assert result['missing'] == ['CONFIG_XEN_DOM0']


def test_check_running_on_a_kernel_without_pciback(run, tmp_path, monkeypatch):
    run.state['kernel'] = FakeKernel(str(tmp_path / 'arm'), arch='aarch64', release='5.10.0-28-arm64',
                                     pciback_build='absent')
    monkeypatch.setattr(HostPaths, 'default_root', run.state['kernel'].root)
    result = run(mode='check_running', fail_on_missing=True)
    assert result['failed'] and 'lacks CONFIG_XEN_PCIDEV_STUB' in result['msg'] and 'Linux 5.10' in result['msg']
    result = run(mode='check_running', options=['XEN_PCIDEV_BACKEND'])
    assert result['failed'] and 'on arm64 xen-pciback is built by CONFIG_XEN_PCIDEV_STUB' in result['msg']


def test_check_running_refuses_edit_options(run, tmp_path):
    result = run(mode='check_running', arch='aarch64')
    assert result['failed'] and 'arch cannot be given' in result['msg']
    result = run(options={'XEN': 'y'})
    assert result['failed'] and 'path' in result['msg']
