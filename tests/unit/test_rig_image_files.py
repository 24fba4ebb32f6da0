# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The files a rig image is provisioned from (tests/rig/image_files.py), on a small collection written here and on
the collection itself: the role but its docs, the modules its tasks and handlers call, what they import, however
the import is spelled, with every package's __init__.py; nothing else."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

RIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'rig')
COLLECTION_ROOT = os.path.dirname(os.path.dirname(RIG_DIR))
sys.path.insert(0, RIG_DIR)
try:
    import image_files
finally:
    sys.path.remove(RIG_DIR)

MU = 'ansible_collections.xenpci.passthrough.plugins.module_utils'


def write(root, path, text=''):
    path = os.path.join(str(root), path)
    if not os.path.isdir(os.path.dirname(path)):
        os.makedirs(os.path.dirname(path))
    with open(path, 'w') as stream:
        stream.write(text)


def small_collection(root):
    write(root, 'roles/xen_host/README.md', 'docs\n')
    write(root, 'roles/xen_host/defaults/main.yml', 'x: 1\n')
    write(root, 'roles/xen_host/tasks/main.yml',
          '- name: Read\n  xenpci.passthrough.info:\n- name: A role, no module\n'
          '  ansible.builtin.include_role:\n    name: xenpci.passthrough.other\n')
    write(root, 'roles/xen_host/handlers/main.yml', '- name: Boot\n  xenpci.passthrough.boot:\n    x: 1\n')
    write(root, 'plugins/modules/info.py', 'from %s._pci.address import parse\nfrom %s._host import files\n' % (MU, MU))
    write(root, 'plugins/modules/boot.py', 'import %s._boot.grub\n' % MU)
    write(root, 'plugins/modules/unused.py', 'from %s._unused.thing import x\n' % MU)
    for package in ('_pci', '_host', '_boot', '_unused'):
        write(root, 'plugins/module_utils/%s/__init__.py' % package)
    write(root, 'plugins/module_utils/__init__.py')
    write(root, 'plugins/module_utils/_pci/address.py', 'from %s._pci.ids import names\nimport os\n' % MU)
    write(root, 'plugins/module_utils/_pci/ids.py', 'def names(): pass\n')
    write(root, 'plugins/module_utils/_pci/sysfs.py', 'x = 1\n')
    write(root, 'plugins/module_utils/_host/files.py', '# from %s._unused.thing import x\n' % MU)
    write(root, 'plugins/module_utils/_boot/grub.py', 'from %s._host import commands as run\n' % MU)
    write(root, 'plugins/module_utils/_host/commands.py', 'x = 1\n')
    write(root, 'plugins/module_utils/_unused/thing.py', 'x = 1\n')


def test_the_role_its_modules_and_their_imports(tmp_path):
    small_collection(tmp_path)
    assert image_files.image_files(str(tmp_path)) == [
        'plugins/module_utils/__init__.py',
        'plugins/module_utils/_boot/__init__.py',
        'plugins/module_utils/_boot/grub.py',
        'plugins/module_utils/_host/__init__.py',
        'plugins/module_utils/_host/commands.py',
        'plugins/module_utils/_host/files.py',
        'plugins/module_utils/_pci/__init__.py',
        'plugins/module_utils/_pci/address.py',
        'plugins/module_utils/_pci/ids.py',
        'plugins/modules/boot.py',
        'plugins/modules/info.py',
        'roles/xen_host/defaults/main.yml',
        'roles/xen_host/handlers/main.yml',
        'roles/xen_host/tasks/main.yml',
    ]


def test_a_new_import_adds_its_file(tmp_path):
    small_collection(tmp_path)
    before = image_files.image_files(str(tmp_path))
    write(tmp_path, 'plugins/module_utils/_pci/ids.py', 'from %s._pci.sysfs import x\n' % MU)
    assert sorted(set(image_files.image_files(str(tmp_path))) - set(before)) == ['plugins/module_utils/_pci/sysfs.py']


def test_the_collection_itself():
    files = image_files.image_files(COLLECTION_ROOT)
    assert 'roles/xen_host/tasks/main.yml' in files and 'plugins/modules/boot_cmdline.py' in files
    assert not [path for path in files if path.endswith('.md')]
    for path in files:
        assert os.path.isfile(os.path.join(COLLECTION_ROOT, path)), path
        if path.startswith('plugins/module_utils/') and not path.endswith('__init__.py'):
            assert os.path.join(os.path.dirname(path), '__init__.py') in files, path
    # Every module_utils file a listed module imports is listed (checked by the text, independently of the ast walk).
    for path in files:
        if path.endswith('.py'):
            with open(os.path.join(COLLECTION_ROOT, path)) as stream:
                for line in stream:
                    words = line.split()
                    if words[:1] == ['from'] and words[1].startswith(MU + '._') and words[2] == 'import':
                        dotted = words[1][len('ansible_collections.xenpci.passthrough.'):]
                        module = dotted.replace('.', '/') + '.py'
                        package = dotted.replace('.', '/') + '/__init__.py'
                        assert module in files or package in files, (path, line)
