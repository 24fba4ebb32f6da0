# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the collection ships besides its code: the licence its headers name, and the Python requirements of its
controller-side plugins, declared where ansible-builder reads them (meta/execution-environment.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import re
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
# Plugin types that run on the controller (modules and module_utils run on the managed host: standard library only).
CONTROLLER_PLUGINS = ('action', 'callback', 'filter', 'inventory', 'lookup', 'test', 'vars')
# Import names whose PyPI distribution is spelled otherwise.
DISTRIBUTIONS = {'yaml': 'pyyaml'}


def controller_imports():
    """{top-level module: [plugin file, ...]} for the imports of the controller-side plugins outside the standard
    library and Ansible."""
    found = {}
    for kind in CONTROLLER_PLUGINS:
        folder = os.path.join(ROOT, 'plugins', kind)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            with open(path) as handle:
                tree = ast.parse(handle.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split('.')[0]
                    if top in sys.stdlib_module_names or top in ('ansible', 'ansible_collections', '__future__'):
                        continue
                    found.setdefault(top, []).append(os.path.relpath(path, ROOT))
    return found


def declared_requirements():
    with open(os.path.join(ROOT, 'meta', 'execution-environment.yml')) as handle:
        environment = yaml.safe_load(handle)
    requirements = os.path.join(ROOT, environment['dependencies']['python'])
    with open(requirements) as handle:
        lines = [line.split('#', 1)[0].strip() for line in handle]
    return set(re.split(r'[<>=!~;\[ ]', line, maxsplit=1)[0].lower() for line in lines if line)


def test_every_controller_side_import_is_declared_for_execution_environments():
    imports = controller_imports()
    assert 'jmespath' in imports                  # the filter pci_select imports it: the check sees real imports
    declared = declared_requirements()
    missing = dict((module, files) for module, files in imports.items()
                   if DISTRIBUTIONS.get(module, module).lower() not in declared)
    assert missing == {}, 'imported on the controller but not in the requirements file: %s' % missing


def test_the_licence_the_headers_name_is_shipped():
    with open(os.path.join(ROOT, 'plugins', 'modules', 'pci_info.py')) as handle:
        named = re.search(r'see (LICENSES/[^ )]+)', handle.read()).group(1)
    with open(os.path.join(ROOT, named)) as handle:
        text = handle.read()
    assert 'GNU GENERAL PUBLIC LICENSE' in text and 'Version 3, 29 June 2007' in text
