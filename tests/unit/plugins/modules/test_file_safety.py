# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The files the collection writes on a host: created atomically with safe modes and the task's owner
(root), never written through a symbolic link someone else planted -- at the file, or at a directory
the collection creates or keeps its own file in.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.modules import boot_cmdline, kernel_config, module_params, pci_assignable
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A
from ansible_collections.xenpci.passthrough.tests.unit.fakes.selinux import FakeSelinux
from ansible_collections.xenpci.passthrough.tests.unit.fakes.snapshot import HostSnapshot, assert_unchanged
from ansible_collections.xenpci.passthrough.tests.unit.plugins.module_utils._boot.test_grub_defaults import DEBIAN_GRUB, XEN_CFG

STATE_DIR = 'var/lib/xenpci_passthrough'
JOURNAL = STATE_DIR + '/drivers.json'
LOCK = STATE_DIR + '/lock'
MODPROBE = 'etc/modprobe.d/xenpci-xen-pciback.conf'
GRUB = 'etc/default/grub'
DROP_IN = 'etc/default/grub.d/zz-xenpci-passthrough.cfg'
KCONFIG = 'usr/src/linux/.config'
EXTLINUX = 'boot/extlinux/extlinux.conf'
UDEV_RULES = 'etc/udev/rules.d/70-xenpci-passthrough-reset.rules'
OTHER_RULE = 'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="0000:00:04.0", ATTR{reset_method}="bus"\n'
VICTIM_TEXT = 'root:x:0:0:root:/root:/bin/bash\n'


class Host:
    """The rig-shaped dom0 of the ``run`` fixture with GRUB, extlinux and kernel config files."""

    def __init__(self, run, monkeypatch, grub_d=True):
        self.run = run
        self.kernel = run.kernel
        self.xen = run.xen
        self.root = run.kernel.root
        self.write(GRUB, DEBIAN_GRUB)
        if grub_d:
            self.write('etc/default/grub.d/xen.cfg', XEN_CFG)
        self.write(KCONFIG, '# Linux/x86 6.1.0 Kernel Configuration\nCONFIG_PCI=y\nCONFIG_XEN=y\nCONFIG_XEN_DOM0=y\n'
                            'CONFIG_XEN_BACKEND=y\n')
        self.write(EXTLINUX, 'default l\nlabel l\n  kernel /Image\n  append root=/dev/vda1 rw\n')
        self.write('victim/passwd', VICTIM_TEXT)
        os.makedirs(self.path('victim/dir'))
        monkeypatch.setattr(Commands, 'for_module', classmethod(lambda cls, module: self.xen.commands))

    def path(self, relative):
        return os.path.join(self.root, relative)

    def write(self, relative, text, mode=None):
        path = self.path(relative)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, 'w') as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(path, mode)
        return path

    def plant(self, relative, target):
        """A symbolic link at ``relative`` to ``target`` (relative to the root), parents created."""
        path = self.path(relative)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        os.symlink(self.path(target), path)


@pytest.fixture
def host(run, monkeypatch):
    return Host(run, monkeypatch)


# The task of each writing module that writes the file (or into the directory) named first.
TASKS = {
    'journal': (pci_assignable, dict(devices=[E1000_A])),
    'lock': (pci_assignable, dict(devices=[E1000_A])),
    'modprobe': (module_params, dict(name='xen-pciback', params={'hide': [E1000_A]}, runtime=False)),
    'grub in place': (boot_cmdline, dict(target='xen', params={'iommu': '1'}, backend='grub', grub_file='/' + GRUB)),
    'grub drop-in': (boot_cmdline, dict(target='xen', params={'iommu': '1'}, backend='grub')),
    'extlinux': (boot_cmdline, dict(target='linux', params={'iommu': 'pt'}, backend='extlinux',
                                    extlinux_file='/' + EXTLINUX)),
    'kconfig': (kernel_config, dict(options={'XEN_PCIDEV_BACKEND': 'm'})),
    'udev rules': (pci_assignable, dict(devices=[E1000_A], reset_method=['flr'])),
}


def _task(host, name):
    module, args = TASKS[name]
    args = dict(args)
    if module is kernel_config:
        args['path'] = host.path(KCONFIG)
    return module, args


def _prepare_state_dir(host):
    os.makedirs(host.path(STATE_DIR), 0o700)
    host.write(LOCK, '', mode=0o600)


@pytest.mark.parametrize('name, relative', [
    ('journal', JOURNAL),
    ('lock', LOCK),
    ('modprobe', MODPROBE),
    ('grub in place', GRUB),
    ('grub drop-in', DROP_IN),
    ('extlinux', EXTLINUX),
    ('kconfig', KCONFIG),
    ('udev rules', UDEV_RULES),
])
def test_a_symlink_planted_at_a_file_is_refused_and_its_target_untouched(host, name, relative):
    if relative.startswith(STATE_DIR):
        os.makedirs(host.path(STATE_DIR), 0o700)
        if relative != LOCK:
            host.write(LOCK, '', mode=0o600)
    if os.path.lexists(host.path(relative)):
        os.unlink(host.path(relative))
    host.plant(relative, 'victim/passwd')
    before = HostSnapshot.take(host.root, host.xen)
    module, args = _task(host, name)
    result = host.run(module, **args)
    assert result.get('failed') is True, result
    assert 'symbolic link' in result['msg'] and host.path(relative) in result['msg'], result['msg']
    assert_unchanged(before, host.root, host.xen)
    with open(host.path('victim/passwd')) as handle:
        assert handle.read() == VICTIM_TEXT


@pytest.mark.parametrize('name, relative', [
    ('journal', STATE_DIR),
    ('modprobe', 'etc/modprobe.d'),
    ('grub drop-in', 'etc/default/grub.d'),
    ('udev rules', 'etc/udev/rules.d'),
])
def test_a_symlink_planted_at_a_directory_the_collection_writes_its_own_file_in_is_refused(host, name, relative):
    if os.path.isdir(host.path(relative)):
        for entry in os.listdir(host.path(relative)):
            os.rename(os.path.join(host.path(relative), entry), host.path('victim/dir/' + entry))
        os.rmdir(host.path(relative))
    host.plant(relative, 'victim/dir')
    before = HostSnapshot.take(host.root, host.xen)
    module, args = _task(host, name)
    result = host.run(module, **args)
    assert result.get('failed') is True, result
    assert 'symbolic link' in result['msg'] and host.path(relative) in result['msg'], result['msg']
    assert_unchanged(before, host.root, host.xen)


@pytest.mark.parametrize('problem', ['group-writable', 'world-writable', 'foreign owner', 'not a directory'])
def test_an_unsafe_state_directory_is_refused(host, problem):
    if problem == 'not a directory':
        host.write(STATE_DIR, '')
    else:
        os.makedirs(host.path(STATE_DIR), 0o700)
        os.chmod(host.path(STATE_DIR), {'group-writable': 0o770, 'world-writable': 0o777}.get(problem, 0o700))
        if problem == 'foreign owner':
            os.chown(host.path(STATE_DIR), 4242, 4242)
    before = HostSnapshot.take(host.root, host.xen)
    result = host.run(pci_assignable, devices=[E1000_A])
    assert result.get('failed') is True and host.path(STATE_DIR) in result['msg'], result
    assert_unchanged(before, host.root, host.xen)


def _mode_and_owner(path):
    info = os.lstat(path)
    return stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


def test_files_the_collection_creates_are_regular_private_or_0644_and_owned_by_the_task(host):
    os.umask(0o022)
    for name in ('journal', 'modprobe', 'grub drop-in', 'extlinux', 'udev rules'):
        module, args = _task(host, name)
        assert host.run(module, **args)['changed'] is True
    uid, gid = os.geteuid(), os.getegid()
    assert _mode_and_owner(host.path(STATE_DIR)) == (stat.S_IFDIR, 0o700, uid, gid)
    assert _mode_and_owner(host.path(JOURNAL)) == (stat.S_IFREG, 0o600, uid, gid)
    assert _mode_and_owner(host.path(LOCK)) == (stat.S_IFREG, 0o600, uid, gid)
    assert _mode_and_owner(host.path(MODPROBE)) == (stat.S_IFREG, 0o644, uid, gid)
    assert _mode_and_owner(host.path(DROP_IN)) == (stat.S_IFREG, 0o644, uid, gid)
    assert _mode_and_owner(host.path(UDEV_RULES)) == (stat.S_IFREG, 0o644, uid, gid)
    if uid == 0:
        assert (uid, gid) == (0, 0)


def test_a_file_created_under_a_wide_umask_is_still_not_writable_by_others(host):
    old = os.umask(0)
    try:
        module, args = _task(host, 'modprobe')
        assert host.run(module, **args)['changed'] is True
        module, args = _task(host, 'journal')
        assert host.run(module, **args)['changed'] is True
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(host.path(MODPROBE)).st_mode) == 0o644
    assert stat.S_IMODE(os.lstat(host.path(JOURNAL)).st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(host.path(STATE_DIR)).st_mode) & 0o022 == 0


@pytest.mark.skipif(os.geteuid() != 0, reason='changing a file owner needs root')
@pytest.mark.parametrize('name, relative', [('kconfig', KCONFIG), ('grub in place', GRUB), ('extlinux', EXTLINUX)])
def test_a_file_edited_in_place_keeps_its_mode_and_owner(host, name, relative):
    os.chown(host.path(relative), 4242, 4343)
    os.chmod(host.path(relative), 0o640)
    module, args = _task(host, name)
    assert host.run(module, **args)['changed'] is True
    assert _mode_and_owner(host.path(relative)) == (stat.S_IFREG, 0o640, 4242, 4343)


@pytest.mark.parametrize('name, relative', [
    ('journal', JOURNAL), ('modprobe', MODPROBE), ('grub in place', GRUB), ('extlinux', EXTLINUX), ('kconfig', KCONFIG),
    ('udev rules', UDEV_RULES),
])
def test_a_file_is_replaced_by_rename_never_rewritten_in_place(host, name, relative):
    if name == 'journal':
        _prepare_state_dir(host)
        host.write(JOURNAL, '{"devices": {}, "format": 1}\n', mode=0o600)
    elif name == 'modprobe':
        host.write(MODPROBE, 'options xen-pciback permissive=1\n')
    elif name == 'udev rules':
        host.write(UDEV_RULES, OTHER_RULE)
    directory = os.path.dirname(host.path(relative))
    listing = sorted(os.listdir(directory))
    with open(host.path(relative), 'rb') as handle:
        old_bytes = handle.read()
        old_inode = os.fstat(handle.fileno()).st_ino
        module, args = _task(host, name)
        assert host.run(module, **args)['changed'] is True
        handle.seek(0)
        assert handle.read() == old_bytes        # a reader holding the old file sees it whole
    assert os.lstat(host.path(relative)).st_ino != old_inode
    assert sorted(os.listdir(directory)) == listing                 # no temporary file left


@pytest.mark.parametrize('name, relative', [
    ('journal', JOURNAL), ('modprobe', MODPROBE), ('grub drop-in', DROP_IN), ('extlinux', EXTLINUX), ('kconfig', KCONFIG),
    ('udev rules', UDEV_RULES),
])
def test_a_rename_that_fails_leaves_the_file_and_no_temporary_file(host, monkeypatch, name, relative):
    if name == 'journal':
        _prepare_state_dir(host)
        host.write(JOURNAL, '{"devices": {}, "format": 1}\n', mode=0o600)
    elif name == 'modprobe':
        host.write(MODPROBE, 'options xen-pciback permissive=1\n')
    elif name == 'grub drop-in':
        host.write(DROP_IN, 'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT dom0_mem=1G"\n')
    elif name == 'udev rules':
        host.write(UDEV_RULES, OTHER_RULE)
    real_rename = os.rename

    def failing_rename(source, target):
        if os.path.basename(target) == os.path.basename(relative):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_rename(source, target)

    directory = os.path.dirname(host.path(relative))
    listing = sorted(os.listdir(directory))
    with open(host.path(relative), 'rb') as handle:
        old_bytes = handle.read()
    monkeypatch.setattr(os, 'rename', failing_rename)
    module, args = _task(host, name)
    result = host.run(module, **args)
    monkeypatch.undo()
    assert result.get('failed') is True and host.path(relative) in result['msg'], result
    with open(host.path(relative), 'rb') as handle:
        assert handle.read() == old_bytes
    assert sorted(os.listdir(directory)) == listing                 # no temporary file left


# ---- SELinux ----------------------------------------------------------------------------------
ETC = 'system_u:object_r:etc_t:s0'
LABELS = {       # what each file is labelled on a Fedora-family host (file_contexts)
    'modprobe': 'system_u:object_r:modules_conf_t:s0',
    'grub in place': 'system_u:object_r:bootloader_etc_t:s0',
    'grub drop-in': 'system_u:object_r:bootloader_etc_t:s0',
    'extlinux': 'system_u:object_r:boot_t:s0',
    'kconfig': 'system_u:object_r:usr_t:s0',
    'udev rules': 'system_u:object_r:udev_rules_t:s0',
}
RELATIVE = {'modprobe': MODPROBE, 'grub in place': GRUB, 'grub drop-in': DROP_IN, 'extlinux': EXTLINUX, 'kconfig': KCONFIG,
            'udev rules': UDEV_RULES}


@pytest.fixture
def selinux(monkeypatch):
    """An SELinux host under AnsibleModule: its compat.selinux calls act on labels kept per inode."""
    from ansible.module_utils import basic
    fake = FakeSelinux([(RELATIVE[name], context) for name, context in LABELS.items()])
    monkeypatch.setattr(basic, 'selinux', fake, raising=False)
    monkeypatch.setattr(basic, 'HAVE_SELINUX', True)
    return fake


def _existing(host, name):
    if name == 'modprobe':
        host.write(MODPROBE, 'options xen-pciback permissive=1\n')
    elif name == 'grub drop-in':
        host.write(DROP_IN, 'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT dom0_mem=1G"\n')
    elif name == 'udev rules':
        host.write(UDEV_RULES, OTHER_RULE)
    return host.path(RELATIVE[name])


@pytest.mark.parametrize('name', sorted(LABELS))
def test_a_replaced_file_keeps_its_selinux_context(host, selinux, name):
    path = _existing(host, name)
    selinux.label(os.path.dirname(path), ETC)
    selinux.label(path, LABELS[name] if name != 'kconfig' else 'unconfined_u:object_r:user_home_t:s0')
    before = selinux.label_of(path)
    inode = os.lstat(path).st_ino
    module, args = _task(host, name)
    assert host.run(module, **args)['changed'] is True
    assert os.lstat(path).st_ino != inode                  # a new file, renamed over the old one
    assert selinux.label_of(path) == before                # with the old one's context, not its directory's


@pytest.mark.parametrize('name', ['modprobe', 'grub drop-in', 'udev rules'])
def test_a_new_file_gets_the_policys_context_for_its_path(host, selinux, name):
    path = host.path(RELATIVE[name])
    assert not os.path.exists(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    selinux.label(os.path.dirname(path), ETC)
    module, args = _task(host, name)
    assert host.run(module, **args)['changed'] is True
    assert selinux.label_of(path) == LABELS[name]


def test_without_selinux_no_context_is_asked_for_or_set(host, monkeypatch):
    from ansible.module_utils import basic
    fake = FakeSelinux()
    monkeypatch.setattr(basic, 'selinux', fake, raising=False)
    monkeypatch.setattr(basic, 'HAVE_SELINUX', False)
    module, args = _task(host, 'modprobe')
    assert host.run(module, **args)['changed'] is True
    assert fake.labels == {} and fake.set_calls == []
