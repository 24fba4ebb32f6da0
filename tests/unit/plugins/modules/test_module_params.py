# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

import pytest

from ansible_collections.xenpci.passthrough.tests.unit.module_args import patch_module_args

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
from ansible_collections.xenpci.passthrough.plugins.modules import module_params
from ansible_collections.xenpci.passthrough.tests.unit.plugins.module_utils._kernel.test_parameters import make_host

OWNED = ('etc', 'modprobe.d', 'xenpci-xen-pciback.conf')


def _runner(kernel, monkeypatch, capsys):
    monkeypatch.setattr(HostPaths, 'default_root', kernel.root)
    monkeypatch.setattr(module_params, 'XenHost', lambda paths: XenHost(paths, uname=kernel.uname))

    def runner(**args):
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module_params.main()
        return json.loads(capsys.readouterr().out)
    runner.kernel = kernel
    return runner


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """Run module_params' main() on a dom0 with xen-pciback loaded as a module."""
    return _runner(make_host(tmp_path / 'host')[0], monkeypatch, capsys)


@pytest.fixture
def run_builtin(tmp_path, monkeypatch, capsys):
    return _runner(make_host(tmp_path / 'host', build='builtin')[0], monkeypatch, capsys)


def tree_digest(root):
    """One hash over every file (path, mode, bytes) under ``root``: what check mode must not change."""
    digest = hashlib.sha256()
    for directory, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            if os.path.islink(path):
                digest.update(('%s -> %s' % (path, os.readlink(path))).encode())
                continue
            digest.update(('%s %o' % (path, os.stat(path).st_mode)).encode())
            with open(path, 'rb') as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def owned(run):
    with open(run.kernel.paths.join(*OWNED)) as handle:
        return handle.read()


def test_present_twice_with_diff(run):
    args = dict(name='xen-pciback', params={'hide': ['0000:03:00.0'], 'permissive': True}, _ansible_diff=True)
    result = run(**args)
    assert result['changed'] and result['file'] == run.kernel.paths.join(*OWNED)
    assert result['options_line'] == 'options xen-pciback hide=(0000:03:00.0) permissive=1'
    assert result['runtime']['permissive']['status'] == 'applied'
    assert result['runtime']['hide']['status'] == 'reload_required' and result['reload_required']
    assert result['diff']['before'] == '' and result['diff']['after'] == owned(run)
    assert result['diff']['before_header'].endswith('(absent)')
    again = run(**args)
    assert not again['changed'] and again['diff']['before'] == again['diff']['after']
    assert again['runtime']['permissive']['status'] == 'unchanged'


def test_check_mode_changes_no_file_and_no_parameter(run):
    before = tree_digest(run.kernel.root)
    result = run(name='xen-pciback', params={'hide': ['03:00.0'], 'permissive': True}, _ansible_check_mode=True)
    assert result['changed'] and result['runtime']['permissive']['status'] == 'applied'
    assert tree_digest(run.kernel.root) == before


def test_hide_merge_and_removal_with_backup(run):
    run(name='xen-pciback', params={'hide': '(0000:04:00.0)'})
    result = run(name='xen_pciback', params={'hide': ['0000:03:00.0']}, backup=True)
    assert result['params'] == {'hide': '(0000:04:00.0)(0000:03:00.0)'}
    with open(result['backup_file']) as handle:
        assert handle.read().endswith('options xen-pciback hide=(0000:04:00.0)\n')
    result = run(name='xen-pciback', params={'hide': ['0000:04:00.0']}, state='absent')
    assert result['changed'] and owned(run).endswith('options xen-pciback hide=(0000:03:00.0)\n')
    assert not run(name='xen-pciback', params={'hide': ['0000:04:00.0']}, state='absent')['changed']


def test_conflicts_are_reported_as_warnings(run):
    path = run.kernel.paths.join('etc', 'modprobe.d', 'local.conf')
    with open(path, 'w') as handle:
        handle.write('options xen-pciback hide=(0000:05:00.0)\n')
    result = run(name='xen-pciback', params={'hide': ['0000:03:00.0']})
    assert result['conflicts'] == [{'file': path, 'line': 1, 'options': 'options xen-pciback hide=(0000:05:00.0)',
                                    'params': ['hide']}]
    assert 'local.conf line 1 also sets hide for xen-pciback' in json.dumps(result['warnings'])
    with open(path) as handle:
        assert handle.read() == 'options xen-pciback hide=(0000:05:00.0)\n'


def test_built_in_hands_the_parameters_to_the_command_line(run_builtin):
    result = run_builtin(name='xen-pciback', params={'hide': ['03:00.0']}, cmdline=True)
    assert result['build'] == 'builtin' and result['cmdline'] == ['xen-pciback.hide=(0000:03:00.0)']
    assert result['cmdline_params'] == {'xen-pciback.hide': '(0000:03:00.0)'}
    assert result['bootloader_update_required'] and result['reboot_required']


@pytest.mark.parametrize('text, message', [
    ('options xen-pciback hide="(0000:03:00.0)\n', 'double quote is not closed'),
    ('blacklist e1000e\n', 'is not an "options xen-pciback" line'),
    ('options xen-pciback hide=(0000:82.0.0)\n', 'fail to load'),
])
def test_a_malformed_owned_file_fails_and_stays_byte_identical(run, text, message):
    path = run.kernel.paths.join(*OWNED)
    with open(path, 'w') as handle:
        handle.write(text)
    before = tree_digest(run.kernel.root)
    result = run(name='xen-pciback', params={'permissive': True})
    assert result['failed'] and message in result['msg'] and 'left as it was' in result['msg']
    assert tree_digest(run.kernel.root) == before


@pytest.mark.parametrize('args, message', [
    (dict(name='xen-pciback', params={'hide': ['0000:82.0.0']}), 'fail to load'),
    (dict(name='xen-pciback', params={'hide': '(0000:03:00.0'}), 'not a list of (DDDD:BB:DD.F) entries'),
    (dict(name='xen-pciback', params={'permissive': 'x y"'}), 'double quote'),
    (dict(name='xen/pciback', params={'permissive': 1}), 'not a kernel module name'),
    (dict(name='xen-pciback', params=['hide']), 'must be a mapping'),
])
def test_bad_requests_fail_and_change_nothing(run, args, message):
    before = tree_digest(run.kernel.root)
    result = run(**args)
    assert result['failed'] and message in result['msg']
    assert tree_digest(run.kernel.root) == before


def test_a_planted_symlink_is_refused(run, tmp_path):
    victim = tmp_path / 'victim'
    victim.write_text('secret\n')
    os.symlink(str(victim), run.kernel.paths.join(*OWNED))
    result = run(name='xen-pciback', params={'permissive': True})
    assert result['failed'] and 'symbolic link' in result['msg']
    assert victim.read_text() == 'secret\n' and os.path.islink(run.kernel.paths.join(*OWNED))
