# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A grubby that keeps boot entries in memory and changes them the way grubby (BLS, RHEL 8/9) does.

``--args`` and ``--remove-args`` are split on blanks; a removal takes the first matching
argument away (a bare name matches that name with any value); an addition with ``=`` replaces
the first argument of that name, else appends; a bare addition appends unless already there.
``--mbargs`` and ``--remove-mbargs`` are refused as deprecated, as that grubby does.
Also plays the other commands a boot_cmdline task may look for (update-grub and friends).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.tests.unit.real_commands import is_shell, run_real


class FakeEntry:
    def __init__(self, kernel, args, root=None, title=None):
        self.kernel = kernel
        self.args = args.split()
        self.root = root
        self.title = title or kernel


class FakeGrubby:
    def __init__(self, entries, default=0, show_root_apart=True, installed=('grubby',)):
        self.entries = entries
        self.default = default
        self.show_root_apart = show_root_apart
        self.installed = set(installed)
        self.calls = []
        self.fail_next = ()             # (rc, stderr) for the next grubby call
        self.commands = Commands(self.find, self.run)

    # Commands interface -------------------------------------------------------------------
    def find(self, name):
        return '/usr/sbin/%s' % name if name in self.installed else None

    def run(self, argv):
        if not isinstance(argv, (list, tuple)) or not all(isinstance(arg, str) for arg in argv):
            raise TypeError('a command is a list of arguments, never a string for a shell: %r' % (argv,))
        if is_shell(argv):
            return run_real(argv)
        self.calls.append(list(argv))
        name = argv[0].rsplit('/', 1)[-1]
        if name != 'grubby':
            return 0, '', ''
        if self.fail_next:
            failure, self.fail_next = self.fail_next, ()
            return failure[0], '', failure[1]
        return self._grubby(argv[1:])

    # grubby --------------------------------------------------------------------------------
    def _select(self, spec):
        if spec == 'ALL':
            return list(range(len(self.entries)))
        if spec == 'DEFAULT':
            return [self.default]
        return [index for index, entry in enumerate(self.entries) if entry.kernel == spec]

    def _info(self, indexes):
        out = []
        for index in indexes:
            entry = self.entries[index]
            args = entry.args if self.show_root_apart else (['root=%s' % entry.root] if entry.root else []) + entry.args
            out.append('index=%d' % index)
            out.append('kernel="%s"' % entry.kernel)
            out.append('args="%s"' % ' '.join(args))
            if self.show_root_apart and entry.root:
                out.append('root="%s"' % entry.root)
            out.append('initrd="/boot/initramfs.img"')
            out.append('title="%s"' % entry.title)
        return 0, '\n'.join(out) + '\n', ''

    def _grubby(self, args):
        options = {}
        for arg in args:
            name, _sep, value = arg.partition('=')
            if name in ('--mbargs', '--remove-mbargs'):
                return 1, '', '\ngrubby: the option "%s" was deprecated\nTry \'grubby --help\' to list supported options\n' % name
            options[name] = value
        if '--info' in options:
            indexes = self._select(options['--info'])
            if not indexes:
                return 1, '', 'grubby: kernel not found\n'
            return self._info(indexes)
        if '--default-index' in options:
            return 0, '%d\n' % self.default, ''
        if '--update-kernel' in options:
            for index in self._select(options['--update-kernel']):
                entry = self.entries[index]
                for arg in options.get('--remove-args', '').split():
                    self._remove(entry, arg)
                for arg in options.get('--args', '').split():
                    self._add(entry, arg)
            return 0, '', ''
        return 1, '', 'grubby: no action specified\n'

    @staticmethod
    def _remove(entry, arg):
        for position, current in enumerate(entry.args):
            if current == arg or ('=' not in arg and current.split('=', 1)[0] == arg):
                del entry.args[position]
                return

    @staticmethod
    def _add(entry, arg):
        if '=' in arg:
            key = arg.split('=', 1)[0]
            for position, current in enumerate(entry.args):
                if current.startswith(key + '='):
                    entry.args[position] = arg
                    return
            entry.args.append(arg)
        elif arg not in entry.args:
            entry.args.append(arg)
