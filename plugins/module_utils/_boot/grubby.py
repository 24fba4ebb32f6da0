# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""The kernel command line of RHEL-family boot entries, through grubby.

``grubby --info=ALL`` lists the entries (``index=``, ``kernel=``, ``args="..."``, ``root=`` apart
on some versions); ``grubby --update-kernel=ALL --remove-args=... / --args=...`` changes every
entry. grubby splits those arguments on blanks and, for ``key=value``, replaces the first
occurrence of the key: so a value with blanks and a key given twice are refused here. After a
change every entry is read again and checked; a result that is not the one planned is an error
that shows the entries as grubby left them.

This back end edits the Linux entries only: the Xen entries of a RHEL-family host are generated
by grub2-mkconfig from ``/etc/default/grub`` (``20_linux_xen``), and grubby of RHEL 8 and later
refuses ``--mbargs``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.cmdline import BLANKS, Cmdline, occurrences, tokenize


class GrubbyError(Exception):
    """grubby is missing, failed, or left entries other than planned."""


class GrubbyEntry:
    def __init__(self, index):
        self.index = index
        self.kernel = None
        self.args = ''
        self.root = None

    @property
    def cmdline(self):
        """The arguments, with ``root=`` in front when grubby shows it apart."""
        if self.root and not any(token.key == 'root' for token in tokenize(self.args)):
            return ('root=%s %s' % (self.root, self.args)).strip()
        return self.args


def _unquote(value):
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_info(out):
    """``grubby --info`` output as a list of GrubbyEntry (entries that are not Linux are skipped)."""
    entries = []
    current = None
    for line in out.splitlines():
        key, sep, value = line.partition('=')
        if not sep:
            continue
        value = _unquote(value.strip())
        if key == 'index':
            current = GrubbyEntry(int(value)) if value.isdigit() else None
            if current is not None:
                entries.append(current)
        elif current is not None and key in ('kernel', 'args', 'root'):
            setattr(current, key, value)
    return [entry for entry in entries if entry.kernel]


def simulate(args, remove, add):
    """What grubby's --remove-args then --args make of ``args`` (first occurrence removed/replaced, else appended)."""
    tokens = [token.raw for token in tokenize(args)]
    for arg in remove:
        key = arg.split('=', 1)[0]
        for index, token in enumerate(tokens):
            if token == arg or ('=' not in arg and token.split('=', 1)[0] == key):
                del tokens[index]
                break
    for arg in add:
        key = arg.split('=', 1)[0]
        if '=' in arg:
            for index, token in enumerate(tokens):
                if token.split('=', 1)[0] == key and '=' in token:
                    tokens[index] = arg
                    break
            else:
                tokens.append(arg)
        elif arg not in tokens:
            tokens.append(arg)
    return ' '.join(tokens)


class GrubbyPlan:
    def __init__(self, entries, default, remove, add):
        self.entries = entries
        self.default = default
        self.remove = remove
        self.add = add
        self.after = dict((entry.index, simulate(entry.cmdline, remove, add)) for entry in entries)

    @property
    def changed(self):
        return any(self.after[entry.index] != entry.cmdline for entry in self.entries)

    @property
    def cmdline_before(self):
        return self.default.cmdline if self.default else ''

    @property
    def cmdline_after(self):
        return self.after[self.default.index] if self.default else ''

    def diff(self):
        changed = [entry for entry in self.entries if self.after[entry.index] != entry.cmdline]
        return {
            'before_header': 'grubby --info=ALL',
            'after_header': 'grubby --info=ALL',
            'before': ''.join('%s: %s\n' % (entry.kernel, entry.cmdline) for entry in changed),
            'after': ''.join('%s: %s\n' % (entry.kernel, self.after[entry.index]) for entry in changed),
        }


class Grubby:
    """grubby on this host, run through ``commands`` (a ``_host.commands.Commands``)."""

    def __init__(self, commands):
        self.commands = commands
        self._path = None

    def _run(self, *args):
        if self._path is None:
            self._path = self.commands.find('grubby')
            if self._path is None:
                raise GrubbyError('grubby is not installed on this host')
        rc, out, err = self.commands.run([self._path] + list(args))
        if rc != 0:
            raise GrubbyError('grubby %s failed (rc=%d): %s' % (' '.join(args), rc, (err or out).strip()))
        return out

    def entries(self):
        entries = parse_info(self._run('--info=ALL'))
        if not entries:
            raise GrubbyError('grubby --info=ALL lists no Linux boot entry')
        return entries

    def default_index(self):
        try:
            out = self._run('--default-index').strip()
        except GrubbyError:
            return None
        return int(out) if out.isdigit() else None

    @staticmethod
    def check_params(params):
        for param in params:
            if param.norm_key == 'root':
                raise GrubbyError('root= is kept apart by grubby; this module does not manage it')
            if param.state == 'present' and len(param.values) > 1:
                raise GrubbyError('grubby cannot give %s more than once (it replaces the first %s= it finds)'
                                  % (param.key, param.key))
            for value in param.values or []:
                if value is not None and any(char in BLANKS for char in value):
                    raise GrubbyError('grubby splits its arguments on blanks: the value %r of %s cannot hold one'
                                      % (value, param.key))

    def plan(self, params):
        """A GrubbyPlan for making every entry hold ``params`` (_boot.cmdline.Param list)."""
        self.check_params(params)
        entries = self.entries()
        default_index = self.default_index()
        default = next((entry for entry in entries if entry.index == default_index), entries[0])
        remove = []
        add = []
        for param in params:
            needed = {}
            missing = False
            for entry in entries:
                found = occurrences(tokenize(entry.cmdline), param.norm_key)
                if param.state == 'absent':
                    gone = [token.raw for token in found if param.removes(token)]
                elif param.satisfied_by(found):
                    gone = []
                else:
                    gone = [token.raw for token in found]
                    missing = True
                for raw in set(gone):
                    needed[raw] = max(needed.get(raw, 0), gone.count(raw))
            for raw in sorted(needed):
                remove.extend([raw] * needed[raw])
            if missing:
                add.extend(param.tokens())
        return GrubbyPlan(entries, default, remove, add)

    def apply(self, plan, params):
        """Run grubby for ``plan``, read the entries again and check them; returns the default entry's line."""
        if plan.remove:
            self._run('--update-kernel=ALL', '--remove-args=%s' % ' '.join(plan.remove))
        if plan.add:
            self._run('--update-kernel=ALL', '--args=%s' % ' '.join(plan.add))
        entries = self.entries()
        wrong = []
        for entry in entries:
            cmdline = Cmdline(entry.cmdline)
            if not all(param.satisfied_by(cmdline.occurrences(param.norm_key)) for param in params):
                wrong.append('%s: %s' % (entry.kernel, entry.cmdline))
        if wrong:
            raise GrubbyError('grubby did not leave the entries as planned; they are now: %s' % '; '.join(wrong))
        default = next((entry for entry in entries if entry.index == plan.default.index), entries[0])
        return default.cmdline
