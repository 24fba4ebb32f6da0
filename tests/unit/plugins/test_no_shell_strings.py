# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""No plugin builds a shell command line: every command is an argument list, nothing runs through a shell.

The source of every file under ``plugins/`` is read with ``ast`` and refused when it:
  - calls ``run_command`` (AnsibleModule's) or any other ``.run`` (a Commands object's) with a string built
    in place (a literal, an f-string, ``%`` or ``+`` on strings, ``.format``, ``' '.join``), or
    with ``use_unsafe_shell`` set to anything but False;
  - calls ``subprocess`` with ``shell`` set to anything but False, or its ``getoutput`` /
    ``getstatusoutput`` (always a shell);
  - calls ``os.system``, ``os.popen`` or ``commands.getoutput``.
The checker is tested on code that does each of these, so it can be seen to fail.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import pytest

PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'plugins')
_SUBPROCESS_CALLS = {'Popen', 'run', 'call', 'check_call', 'check_output'}
_ALWAYS_SHELL = {('subprocess', 'getoutput'), ('subprocess', 'getstatusoutput'), ('os', 'system'), ('os', 'popen'),
                 ('commands', 'getoutput'), ('os', 'popen2'), ('os', 'popen3')}


def _is_false(node):
    return isinstance(node, ast.Constant) and node.value is False


def _builds_a_string(node):
    """Whether ``node`` is a string made in place rather than an argument list."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return _builds_a_string(node.left) or _builds_a_string(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ('format', 'join'):
        return _builds_a_string(node.func.value)
    return False


def _dotted(node):
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id, node.attr
    return None, getattr(node, 'attr', getattr(node, 'id', None))


def shell_uses(source, filename='<source>'):
    """``[(line, what)]`` for every place in ``source`` that could hand a shell a command string."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        owner, name = _dotted(node.func)
        keywords = dict((keyword.arg, keyword.value) for keyword in node.keywords if keyword.arg)
        if (owner, name) in _ALWAYS_SHELL:
            found.append((node.lineno, '%s.%s runs a shell' % (owner, name)))
        if name == 'run_command' or (name == 'run' and owner != 'subprocess'):
            if node.args and _builds_a_string(node.args[0]):
                found.append((node.lineno, '%s with a command string' % name))
            if 'use_unsafe_shell' in keywords and not _is_false(keywords['use_unsafe_shell']):
                found.append((node.lineno, '%s with use_unsafe_shell' % name))
        if owner == 'subprocess' and name in _SUBPROCESS_CALLS:
            if 'shell' in keywords and not _is_false(keywords['shell']):
                found.append((node.lineno, 'subprocess.%s with shell' % name))
            if node.args and _builds_a_string(node.args[0]):
                found.append((node.lineno, 'subprocess.%s with a command string' % name))
    return found


def _plugin_files():
    result = []
    for directory, dummy, files in os.walk(PLUGINS):
        result.extend(os.path.join(directory, name) for name in files if name.endswith('.py'))
    return sorted(result)


def test_the_plugins_are_there():
    names = [os.path.relpath(path, PLUGINS) for path in _plugin_files()]
    assert 'module_utils/_xen/toolstack.py' in names and len(names) >= 20, names


@pytest.mark.parametrize('path', _plugin_files(), ids=lambda path: os.path.relpath(path, PLUGINS))
def test_no_plugin_hands_a_shell_a_command_string(path):
    with open(path) as handle:
        source = handle.read()
    assert shell_uses(source, path) == []


@pytest.mark.parametrize('source', [
    'module.run_command("xl pci-assignable-add %s" % address)',
    "module.run_command('modprobe ' + name)",
    "module.run_command(f'xl {command}')",
    "module.run_command(' '.join(argv))",
    "module.run_command('{0} -r'.format(tool))",
    'module.run_command(argv, use_unsafe_shell=True)',
    'module.run_command(argv, use_unsafe_shell=flag)',
    "self.commands.run('grubby --info=ALL')",
    "commands.run('xl info')",
    'subprocess.run(argv, shell=True)',
    "subprocess.check_output('ls ' + path)",
    'subprocess.getoutput(command)',
    'os.system(command)',
    'os.popen(command)',
])
def test_the_checker_finds_each_kind_of_shell_use(source):
    assert len(shell_uses(source)) >= 1


@pytest.mark.parametrize('source', [
    'module.run_command(argv)',
    "module.run_command([tool, '-o', path], environ_update={'LC_ALL': 'C'})",
    "module.run_command(argv, use_unsafe_shell=False)",
    "self.commands.run([self._path] + list(args))",
    'subprocess.run([shell, "-c", script], check=True)',
])
def test_the_checker_lets_argument_lists_pass(source):
    assert shell_uses(source) == []
