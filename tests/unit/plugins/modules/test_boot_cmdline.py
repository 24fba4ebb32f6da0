# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""boot_cmdline's main() on hosts laid out under tmp_path; commands are fakes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.xenpci.passthrough.tests.unit.module_args import patch_module_args

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot import loaders
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import FileEditError
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.paths import HostPaths
from ansible_collections.xenpci.passthrough.plugins.modules import boot_cmdline
from ansible_collections.xenpci.passthrough.tests.unit.fakes.grubby import FakeEntry, FakeGrubby
from ansible_collections.xenpci.passthrough.tests.unit.plugins.module_utils._boot.test_grub_default_entry import (
    GRUB_LIB,
    TITLE,
)
from ansible_collections.xenpci.passthrough.tests.unit.plugins.module_utils._boot.test_grub_default_entry import (
    XEN_CFG as XEN_DEFAULT_CFG,
)
from ansible_collections.xenpci.passthrough.tests.unit.plugins.module_utils._boot.test_grub_defaults import (
    DEBIAN_GRUB,
    XEN_CFG,
    shell_lines,
    tree_digest,
)

DROP_IN = 'etc/default/grub.d/zz-xenpci-passthrough.cfg'


class Host:
    def __init__(self, root, tools, capsys):
        self.root = root
        self.tools = tools
        self.capsys = capsys

    def path(self, relative):
        return os.path.join(self.root, relative)

    def write(self, relative, text):
        path = self.path(relative)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, 'w') as handle:
            handle.write(text)
        return path

    def read(self, relative):
        with open(self.path(relative)) as handle:
            return handle.read()

    def run(self, **args):
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                boot_cmdline.main()
        return json.loads(self.capsys.readouterr().out)


@pytest.fixture
def make_host(tmp_path, monkeypatch, capsys):
    def make(installed=('update-grub',), entries=()):
        root = str(tmp_path)
        tools = FakeGrubby(list(entries), installed=installed)
        monkeypatch.setattr(HostPaths, 'default_root', root)
        monkeypatch.setattr(Commands, 'for_module', classmethod(lambda cls, module: tools.commands))
        return Host(root, tools, capsys)
    return make


@pytest.fixture
def debian(make_host):
    host = make_host()
    host.write('etc/default/grub', DEBIAN_GRUB)
    host.write('etc/default/grub.d/xen.cfg', XEN_CFG)
    return host


def test_present_twice_with_diff(debian):
    result = debian.run(target='xen', params={'iommu': '1', 'dom0_mem': '4G,max:4G'}, _ansible_diff=True)
    assert result['changed'] is True
    assert result['backend'] == 'grub' and result['file'] == debian.path(DROP_IN)
    assert (result['cmdline_before'], result['cmdline_after']) == ('', 'iommu=1 dom0_mem=4G,max:4G')
    assert result['reboot_required'] is True and result['bootloader_update_required'] is True
    assert result['initramfs_update_required'] is False and result['conflicts'] == []
    assert result['diff']['before'] == '' and result['diff']['before_header'].endswith('(absent)')
    assert result['diff']['after'].endswith('GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT iommu=1 dom0_mem=4G,max:4G"\n')
    assert 'backup_file' not in result
    again = debian.run(target='xen', params={'iommu': '1', 'dom0_mem': '4G,max:4G'}, _ansible_diff=True)
    assert again['changed'] is False and again['reboot_required'] is False
    assert again['bootloader_update_required'] is False
    assert again['diff']['before'] == again['diff']['after']
    assert debian.tools.calls == []


def test_check_mode_changes_no_byte(debian):
    debian.run(target='dom0_linux', params={'nomodeset': None})
    before = tree_digest(debian.root)
    result = debian.run(target='dom0_linux', params={'console': ['hvc0', 'tty0']}, _ansible_check_mode=True)
    assert result['changed'] is True and result['cmdline_after'] == 'quiet nomodeset console=hvc0 console=tty0'
    assert tree_digest(debian.root) == before


def test_backup_keeps_the_old_file(debian):
    result = debian.run(target='linux', params={'iommu': 'pt'}, grub_file='/etc/default/grub', backup=True)
    assert result['changed'] is True
    with open(result['backup_file']) as handle:
        assert handle.read() == DEBIAN_GRUB
    assert not result['backup_file'].endswith('.cfg')
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet iommu=pt"' in debian.read('etc/default/grub')


def test_a_backup_of_the_drop_in_is_not_read_by_update_grub(debian):
    debian.run(target='xen', params={'iommu': '1'})
    result = debian.run(target='xen', params={'iommu': '1', 'loglvl': 'all'}, backup=True)
    assert os.path.dirname(result['backup_file']) == debian.path('etc/default/grub.d')
    assert not result['backup_file'].endswith('.cfg')
    assert shell_lines(debian.root)['xen'] == 'iommu=1 loglvl=all'


def test_update_bootloader_runs_update_grub_only_when_changed(debian):
    result = debian.run(target='xen', params={'iommu': '1'}, update_bootloader=True)
    assert result['bootloader_update_required'] is False and result['reboot_required'] is True
    assert debian.tools.calls == [['/usr/sbin/update-grub']]
    debian.run(target='xen', params={'iommu': '1'}, update_bootloader=True)
    assert debian.tools.calls == [['/usr/sbin/update-grub']]


def test_an_unbalanced_quote_fails_and_leaves_every_file_alone(debian):
    debian.write('etc/default/grub', DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="console=ttyS0'))
    before = tree_digest(debian.root)
    result = debian.run(target='xen', params={'iommu': '1'})
    assert result['failed'] is True and result['changed'] is False
    assert 'etc/default/grub: the shell stops reading it, as update-grub would' in result['msg']
    assert 'Unterminated quoted string' in result['msg'] or 'unexpected EOF' in result['msg']
    assert tree_digest(debian.root) == before


def test_a_conflict_fails_by_default_and_warns_on_request(debian):
    debian.write('etc/default/grub.d/xen.cfg', XEN_CFG + 'GRUB_CMDLINE_XEN_DEFAULT="iommu=0 dom0_mem=2G"\n')
    before = tree_digest(debian.root)
    result = debian.run(target='xen', params={'iommu': '1'})
    assert result['failed'] is True and 'iommu=0 from GRUB_CMDLINE_XEN_DEFAULT in' in result['msg']
    assert [(c['found'], c['line']) for c in result['conflicts']] == [('iommu=0', 20)]
    assert result['cmdline_after'] == 'iommu=0 dom0_mem=2G iommu=1'
    assert tree_digest(debian.root) == before
    warned = debian.run(target='xen', params={'iommu': '1'}, on_conflict='warn')
    assert warned['changed'] is True and len(warned['conflicts']) == 1
    assert 'iommu=0' in json.dumps(warned['warnings'])


def test_injection_attempts_fail_and_write_nothing(debian):
    before = tree_digest(debian.root)
    for value in ('"; rm -rf /', '$(reboot)', '`reboot`', 'x\nreboot'):
        result = debian.run(target='dom0_linux', params={'k': value})
        assert result['failed'] is True, value
    assert tree_digest(debian.root) == before


def test_a_yaml_boolean_is_refused_with_advice(debian):
    result = debian.run(target='linux', params={'intel_iommu': True})
    assert result['failed'] is True and 'in quotes' in result['msg']


def test_a_planted_symlink_fails(debian):
    victim = debian.write('victim', 'secret\n')
    os.symlink(victim, debian.path(DROP_IN))
    result = debian.run(target='xen', params={'iommu': '1'})
    assert result['failed'] is True and 'symbolic link' in result['msg']
    assert debian.read('victim') == 'secret\n'


def test_a_parameter_not_managed_is_untouched_on_removal(debian):
    debian.run(target='dom0_linux', params={'console': ['hvc0', 'tty0'], 'earlyprintk': 'xen'})
    result = debian.run(target='dom0_linux', params={'console': 'tty0'}, state='absent')
    assert result['cmdline_after'] == 'quiet console=hvc0 earlyprintk=xen'


def test_grubby_host(make_host):
    host = make_host(installed=('grubby',), entries=[FakeEntry('/boot/vmlinuz-6', 'ro rhgb quiet', root='UUID=1')])
    result = host.run(target='linux', params={'intel_iommu': 'on'}, _ansible_diff=True)
    assert result['backend'] == 'grubby' and result['file'] is None and result['changed'] is True
    assert result['cmdline_after'] == 'root=UUID=1 ro rhgb quiet intel_iommu=on'
    assert result['bootloader_update_required'] is False and result['reboot_required'] is True
    assert result['diff']['after'] == '/boot/vmlinuz-6: root=UUID=1 ro rhgb quiet intel_iommu=on\n'
    assert host.run(target='linux', params={'intel_iommu': 'on'})['changed'] is False


def test_extlinux_host(make_host):
    host = make_host(installed=())
    host.write('boot/extlinux/extlinux.conf', 'default l\nlabel l\n  kernel /Image\n  append root=/dev/mmcblk0p2 rw\n')
    result = host.run(target='linux', params={'iommu.passthrough': '1'})
    assert result['backend'] == 'extlinux' and result['changed'] is True
    assert result['cmdline_after'] == 'root=/dev/mmcblk0p2 rw iommu.passthrough=1'
    assert result['bootloader_update_required'] is False
    assert host.run(target='linux', params={'iommu.passthrough': '1'})['changed'] is False
    refused = host.run(target='xen', params={'iommu': '1'})
    assert refused['failed'] is True and 'starts Linux, not Xen' in refused['msg']


def test_bad_arguments_are_refused_by_the_argument_spec(debian):
    result = debian.run(target='hypervisor', params={'iommu': '1'})
    assert result['failed'] is True and 'target' in result['msg']


@pytest.fixture
def xen_debian(debian):
    """The Debian host with grub-mkconfig_lib and a xen.cfg that makes its entry the default, as Debian's does."""
    debian.write('etc/default/grub', DEBIAN_GRUB.replace('GRUB_DISTRIBUTOR=`', 'GRUB_DISTRIBUTOR=Debian\n#`'))
    debian.write('etc/default/grub.d/xen.cfg', XEN_DEFAULT_CFG)
    debian.write('usr/share/grub/grub-mkconfig_lib', GRUB_LIB)
    return debian


def test_xen_default_entry_writes_two_files_diffs_both_and_returns_the_default_entry(xen_debian):
    xen_debian.write('etc/default/grub', xen_debian.read('etc/default/grub') + 'XEN_OVERRIDE_GRUB_DEFAULT=0\n')
    before = tree_digest(xen_debian.root)
    checked = xen_debian.run(target='xen', params={'dom0_mem': '2G'}, xen_default_entry=True, _ansible_check_mode=True,
                             _ansible_diff=True)
    assert tree_digest(xen_debian.root) == before
    assert checked['changed'] is True and checked['grub_default'] == TITLE and checked['grub_distributor'] == 'Debian'
    assert checked['grub_default_before'] == '0'
    assert [diff['after_header'] for diff in checked['diff']] == [xen_debian.path(DROP_IN), xen_debian.path('etc/default/grub')]
    assert checked['diff'][1]['after'].endswith('\nXEN_OVERRIDE_GRUB_DEFAULT=1\n')
    result = xen_debian.run(target='xen', params={'dom0_mem': '2G'}, xen_default_entry=True, backup=True)
    assert dict((key, result[key]) for key in ('changed', 'grub_default', 'grub_default_before', 'cmdline_after')) == dict(
        changed=True, grub_default=TITLE, grub_default_before='0', cmdline_after='dom0_mem=2G')
    assert result['bootloader_update_required'] is True and result['file'] == xen_debian.path(DROP_IN)
    assert xen_debian.read('etc/default/grub').endswith('\nXEN_OVERRIDE_GRUB_DEFAULT=1\n')
    with open(result['backup_file']) as handle:     # the drop-in was new: the backup is /etc/default/grub's
        assert handle.read().endswith('\nXEN_OVERRIDE_GRUB_DEFAULT=0\n')
    again = xen_debian.run(target='xen', params={'dom0_mem': '2G'}, xen_default_entry=True, _ansible_diff=True)
    assert again['changed'] is False and again['grub_default'] == again['grub_default_before'] == TITLE
    assert [diff['before'] == diff['after'] for diff in again['diff']] == [True, True]


def test_xen_default_entry_alone_needs_no_params_and_writes_no_drop_in(xen_debian):
    result = xen_debian.run(target='xen', xen_default_entry=True)
    assert result['changed'] is True and result['grub_default'] == TITLE and result['cmdline_after'] == ''
    assert not os.path.exists(xen_debian.path(DROP_IN))
    assert xen_debian.run(target='xen', params={}, xen_default_entry=True)['changed'] is False
    missing = xen_debian.run(target='xen')
    assert missing['failed'] is True and 'params must be a non-empty mapping' in missing['msg']


def test_xen_default_entry_is_refused_off_the_xen_target_and_around_another_assignment(xen_debian):
    refused = xen_debian.run(target='dom0_linux', params={'nomodeset': None}, xen_default_entry=True)
    assert refused['failed'] is True and refused['msg'] == 'xen_default_entry goes with target=xen'
    xen_debian.write('etc/default/grub', DEBIAN_GRUB + 'test -e /etc/xen-off && XEN_OVERRIDE_GRUB_DEFAULT=0\n')
    before = tree_digest(xen_debian.root)
    result = xen_debian.run(target='xen', params={'iommu': '1'}, xen_default_entry=True)
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'].startswith('%s line %d: XEN_OVERRIDE_GRUB_DEFAULT is set there' % (
        xen_debian.path('etc/default/grub'), DEBIAN_GRUB.count('\n') + 1))
    assert tree_digest(xen_debian.root) == before


def test_the_default_entry_is_returned_without_xen_default_entry_and_null_off_grub(xen_debian, make_host):
    result = xen_debian.run(target='xen', params={'iommu': '1'})
    assert result['grub_default'] == result['grub_default_before'] == TITLE    # xen.cfg's own default: unset is 1
    assert 'XEN_OVERRIDE' not in xen_debian.read('etc/default/grub')
    host = make_host(installed=('grubby',), entries=[FakeEntry('/boot/vmlinuz-6', 'ro quiet', root='UUID=1')])
    grubby = host.run(target='linux', params={'iommu': 'pt'})
    assert (grubby['grub_default'], grubby['grub_default_before'], grubby['grub_distributor']) == (None, None, None)


def test_a_second_file_that_cannot_be_written_fails_saying_the_first_was(xen_debian, monkeypatch):
    real_write = loaders.write_planned

    def write_planned(planned, backup=None, labels=None):
        if planned.path == xen_debian.path('etc/default/grub'):
            raise FileEditError('cannot write %s: read-only file system' % planned.path)
        return real_write(planned, backup, labels)
    monkeypatch.setattr(loaders, 'write_planned', write_planned)
    result = xen_debian.run(target='xen', params={'iommu': '1'}, xen_default_entry=True)
    assert result['failed'] is True and result['changed'] is True
    assert result['msg'] == 'cannot write %s: read-only file system; %s was written' % (
        xen_debian.path('etc/default/grub'), xen_debian.path(DROP_IN))
    assert os.path.exists(xen_debian.path(DROP_IN)) and 'XEN_OVERRIDE' not in xen_debian.read('etc/default/grub')
