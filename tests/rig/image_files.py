# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's files that go into a rig image: the xen_host role, the modules its tasks and handlers
call, and the module_utils those import, transitively, with every package's ``__init__.py`` on the way.

The rig image's cache key hashes these files (``rig_image_hash`` in lib.sh), and build-image checks
that the tree it provisions from holds the same ones. Imports are read from the Python syntax tree,
as Python resolves them (``from ..._pci.address import X``, ``from ..._pci import address``,
``import ...``), not by pattern over the text.

Usage: python3 image_files.py COLLECTION_ROOT   prints the paths, relative to the root, sorted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import re
import sys

PREFIX = 'ansible_collections.xenpci.passthrough.'
ROLE = os.path.join('roles', 'xen_host')
# A task or handler calling a module by its FQCN: "xenpci.passthrough.NAME:" as a YAML key.
MODULE_CALL = re.compile(r'\bxenpci\.passthrough\.([a-z0-9_]+)\s*:')


def role_files(root):
    """Every file of the role but its docs."""
    found = []
    for directory, _dirs, files in os.walk(os.path.join(root, ROLE)):
        for name in files:
            if not name.endswith('.md'):
                found.append(os.path.relpath(os.path.join(directory, name), root))
    return found


def called_modules(root):
    """plugins/modules/NAME.py for every module the role's tasks and handlers call."""
    found = set()
    for part in ('tasks', 'handlers'):
        for directory, _dirs, files in os.walk(os.path.join(root, ROLE, part)):
            for name in files:
                with open(os.path.join(directory, name)) as stream:
                    found.update(MODULE_CALL.findall(stream.read()))
    paths = (os.path.join('plugins', 'modules', name + '.py') for name in found)
    return [path for path in paths if os.path.isfile(os.path.join(root, path))]


def _module_file(root, dotted):
    """The collection's file for a dotted module name (``plugins.module_utils._pci.address``): the module's .py,
    or the package's __init__.py; with the __init__.py of every package above it. [] when it is no file here."""
    parts = dotted.split('.')
    files = [os.path.join(*(parts[:depth] + ['__init__.py'])) for depth in range(2, len(parts))]
    module = os.path.join(*parts) + '.py'
    package = os.path.join(*(parts + ['__init__.py']))
    if os.path.isfile(os.path.join(root, module)):
        files.append(module)
    elif os.path.isfile(os.path.join(root, package)):
        files.append(package)
    else:
        return []
    return [path for path in files if os.path.isfile(os.path.join(root, path))]


def imported_files(root, path):
    """The collection's files that the Python file ``path`` imports."""
    with open(os.path.join(root, path)) as stream:
        tree = ast.parse(stream.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from package import name": name is a submodule or an attribute of the package.
            names = [node.module] + [node.module + '.' + alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith(PREFIX):
                found.extend(_module_file(root, name[len(PREFIX):]))
    return found


def image_files(root):
    """Sorted paths, relative to ``root``, of every collection file a rig image is provisioned from."""
    queue = role_files(root) + called_modules(root)
    seen = set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.endswith('.py'):
            queue.extend(imported_files(root, path))
    return sorted(seen)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write('usage: %s COLLECTION_ROOT\n' % argv[0])
        return 2
    for path in image_files(argv[1]):
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
