# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Debian/Ubuntu GRUB defaults: ``/etc/default/grub`` and ``/etc/default/grub.d/*.cfg``, read by the shell, edited safely.

update-grub sources ``/etc/default/grub``, then every ``grub.d/*.cfg`` in glob order, so a later file wins. ``20_linux_xen``
gives Xen ``GRUB_CMDLINE_XEN GRUB_CMDLINE_XEN_DEFAULT`` and dom0's kernel ``GRUB_CMDLINE_LINUX GRUB_CMDLINE_LINUX_DEFAULT``,
each replaced by ``GRUB_CMDLINE_LINUX_XEN_REPLACE[_DEFAULT]`` when that is not empty; ``10_linux`` gives plain Linux
``GRUB_CMDLINE_LINUX GRUB_CMDLINE_LINUX_DEFAULT``. ``/bin/sh`` sources the files in that order (a fixed script, the files
its arguments) and prints the variables after each, so the values are update-grub's and each parameter is traced to its
file and line. The module writes a drop-in of its own, read last, that adds to what came before; it edits another file in
place only where the variable is set by plain assignments alone on a line.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import itertools
import os
import re
import tempfile

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.cmdline import Cmdline, CmdlineError, tokenize
from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import PlannedFile, read_text_file

CMDLINE_VARIABLES = ('GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT', 'GRUB_CMDLINE_XEN', 'GRUB_CMDLINE_XEN_DEFAULT',
                     'GRUB_CMDLINE_LINUX_XEN_REPLACE', 'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT')

# The variable edited for each target: the *_DEFAULT ones, which update-grub gives the default entries, not recovery.
TARGET_VARIABLE = {'xen': 'GRUB_CMDLINE_XEN_DEFAULT', 'dom0_linux': 'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT',
                   'linux': 'GRUB_CMDLINE_LINUX_DEFAULT'}
_TARGET_WORDS = {'xen': 'Xen', 'dom0_linux': "dom0 kernel's", 'linux': 'Linux'}

DROP_IN_NAME = 'zz-xenpci-passthrough.cfg'
DROP_IN_HEADER = ('# Boot command-line parameters set by the xenpci.passthrough.boot_cmdline Ansible module.\n'
                  '# update-grub reads this file after /etc/default/grub and the other *.cfg files of this\n'
                  '# directory (its name sorts last), and each line adds to what those files set.\n')

# Characters GRUB's script language would interpret once update-grub copies a value into grub.cfg: refused in values.
GRUB_SPECIAL = set('$\\\'`;&|<>')

SHELL = '/bin/sh'
READ_VARIABLES = CMDLINE_VARIABLES + ('GRUB_DEFAULT', 'GRUB_DISTRIBUTOR')    # the default entry; the entries' titles
XEN_DEFAULT = 'XEN_OVERRIDE_GRUB_DEFAULT'  # 1: xen-hypervisor-common's grub.d/xen.cfg makes the Xen entry the default
# Sources grub-mkconfig_lib ($1: gettext, grub_warn), then each file, output thrown away; prints the variables after each.
SOURCE_EACH = '''unset %s
exec 3>&1 >/dev/null </dev/null
if [ -e "$1" ]; then . "$1"; fi; shift
for file do
  if [ -e "$file" ]; then . "$file"; fi
  printf '%%s\\0' %s >&3
done
''' % (' '.join(READ_VARIABLES), ' '.join('"$%s"' % name for name in READ_VARIABLES))

_NAME = r'[A-Za-z_][A-Za-z0-9_]*'
_REFERENCE = r'\$(?:%s|\{%s(?::-\$(?:%s|\{%s\}))?\})' % ((_NAME,) * 4)
_PLAIN = re.compile(
    r'^(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<name>%s)='
    r'(?:"(?:(?P<ref>%s)(?=[ \t"]))?(?P<dq>(?:[^"\\$`]|\\[\\"$`])*)"|\'(?P<sq>[^\']*)\'|(?P<bare>[^\s"\'$`\\;&|<>()#]*))'
    r'(?P<tail>[ \t]*(?:#.*)?)$' % (_NAME, _REFERENCE))
_UNESCAPE = re.compile(r'\\([\\"$`])')

Origin = collections.namedtuple('Origin', 'path line variable')
LineToken = collections.namedtuple('LineToken', 'token origin')
# planned: this task's PlannedFile, also: the others'; before, after: READ_VARIABLES as update-grub sees them
GrubPlan = collections.namedtuple('GrubPlan', 'planned cmdline_before cmdline_after conflicts variable also before after')


class GrubSyntaxError(Exception):
    """A GRUB defaults file this module will not edit, or that the shell cannot read; the message names it."""


def shell_double_quote(text):
    """``text`` as one double-quoted shell word that means exactly ``text`` to sh, dash and bash (no line breaks)."""
    if any(char in text for char in '\n\r\0'):
        raise CmdlineError('a newline, carriage return or NUL cannot be written to a GRUB defaults file')
    return '"%s"' % re.sub(r'([\\"$`])', r'\\\1', text)


def _assigns(name, line):
    return not line.lstrip().startswith('#') and re.search(r'(?:^|[\s;&|(`])%s\+?=' % name, line) is not None


def assignment_lines(text, name):
    """``[(line number, line)]`` of the lines of ``text`` that assign ``name``."""
    return [(number, line) for number, line in enumerate((text or '').split('\n'), 1) if _assigns(name, line)]


class PlainAssignment:
    """``NAME=value`` alone on a line: the value as an editable command line, and what goes around it."""

    def __init__(self, number, match):
        self.number = number
        self.lead, self.ref, self.tail = match.group('lead'), match.group('ref'), match.group('tail')
        quoted = match.group('dq')
        self.value = _UNESCAPE.sub(r'\1', quoted) if quoted is not None else match.group('sq') or match.group('bare') or ''
        self.cmdline = Cmdline(self.value)

    def render(self, name):
        """The new line, or None when nothing but a reference to ``name`` itself is left (a line that does nothing)."""
        text = self.cmdline.text.strip()
        if not text and (self.ref is None or re.match(r'\$\{?%s\b' % name, self.ref)):
            return None
        value = ' '.join(part for part in (self.ref, shell_double_quote(text)[1:-1]) if part)
        return '%s%s="%s"%s' % (self.lead, name, value, self.tail)


def plain_assignments(path, text, name, hint='leave grub_file unset so that the module writes its own drop-in'):
    """The assignments of ``name`` in ``text``, each a PlainAssignment; GrubSyntaxError names a line of another kind."""
    found = []
    for number, line in assignment_lines(text, name):
        match = _PLAIN.match(line)
        if match is None or match.group('name') != name:
            raise GrubSyntaxError(
                '%s line %d: %s is set there in a way this module does not edit in place (it edits NAME="text", '
                "NAME='text' and NAME=word alone on a line); edit that line by hand, or %s; nothing was changed"
                % (path, number, name, hint))
        found.append(PlainAssignment(number, match))
    return found


def set_word(path, text, name, word):
    """``text`` with ``name`` set to ``word`` by its last plain assignment, else by a line added at its end."""
    found = plain_assignments(path, text, name, 'leave xen_default_entry unset')
    if found and found[-1].value != word:
        lines = text.split('\n')
        lines[found[-1].number - 1] = '%s%s=%s%s' % (found[-1].lead, name, word, found[-1].tail)
        return '\n'.join(lines)
    return text if found else (text or '') + ('\n' if text and not text.endswith('\n') else '') + '%s=%s\n' % (name, word)


class Reading(collections.namedtuple('Reading', 'paths texts snapshots')):
    """The files as the shell read them: their paths and texts, and the command-line variables after each."""

    def names(self, target):
        """The two variables that make the default entry's command line for ``target``, as update-grub picks them."""
        base = 'GRUB_CMDLINE_XEN' if target == 'xen' else 'GRUB_CMDLINE_LINUX'
        return tuple(base + '_XEN_REPLACE' + suffix if target == 'dom0_linux' and self.snapshots[-1][base + '_XEN_REPLACE' + suffix]
                     else base + suffix for suffix in ('', '_DEFAULT'))

    def line_tokens(self, target):
        """The default entry's command line for ``target``, a LineToken per parameter."""
        result = []
        for name in self.names(target):
            seen = collections.Counter()
            for token in tokenize(self.snapshots[-1][name]):
                seen[token.raw] += 1
                result.append(LineToken(token, self.origin(name, token.raw, seen[token.raw], len(self.paths) - 1)))
        return result

    def origin(self, name, raw, nth, last, depth=0):
        """Where the ``nth`` ``raw`` of ``name`` (as the files up to index ``last`` leave it) was written."""
        first = last
        while first > 0 and _count(self.snapshots[first - 1][name], raw) >= nth:
            first -= 1
        lines = assignment_lines(self.texts[first], name)
        writing = [number for number, line in lines if raw in line or raw.replace('"', '\\"') in line]
        if not writing and depth < len(CMDLINE_VARIABLES):
            # copied from another command-line variable: the one that held it before this file, or got it in it
            for index, other in itertools.product((first - 1, first), CMDLINE_VARIABLES):
                if index >= 0 and other != name and _count(self.snapshots[index][other], raw):
                    return self.origin(other, raw, 1, index, depth + 1)
        numbers = writing or [number for number, _line in lines]
        return Origin(self.paths[first], numbers[-1] if numbers else None, name)

    def set_again(self, path, name, raws):
        """``file line N`` for each file after ``path`` that leaves ``name`` without all of ``raws``."""
        own = self.paths.index(path)
        places = []
        for index in range(own + 1, len(self.paths)):
            if any(_count(self.snapshots[index][name], raw) < _count(self.snapshots[own][name], raw) for raw in raws):
                lines = assignment_lines(self.texts[index], name)
                places.append('%s line %d' % (self.paths[index], lines[-1][0]) if lines else self.paths[index])
        return places


def _count(value, raw):
    return sum(1 for token in tokenize(value) if token.raw == raw)


def read_following_links(path):
    """A file update-grub sources (through symbolic links, as the shell does), or None when it cannot be read."""
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')
    except OSError:
        return None


class GrubDefaults:
    """The GRUB defaults files of a host (``paths`` a HostPaths), the one this task edits, and ``commands`` to run sh."""

    def __init__(self, paths, commands, grub_file=None):
        self.commands = commands
        self.main = paths.join('etc', 'default', 'grub')
        self.drop_in_dir = paths.join('etc', 'default', 'grub.d')
        self.own_drop_in = os.path.join(self.drop_in_dir, DROP_IN_NAME)
        self.lib = paths.join('usr', 'share', 'grub', 'grub-mkconfig_lib')
        self.path = grub_file or (self.own_drop_in if os.path.isdir(self.drop_in_dir) else self.main)
        if self.path != self.main and not (os.path.dirname(self.path) == self.drop_in_dir and self.path.endswith('.cfg')
                                           and not os.path.basename(self.path).startswith('.')):
            raise GrubSyntaxError('%s is not read by update-grub: give %s or a *.cfg file in %s' % (self.path, self.main, self.drop_in_dir))

    def sources(self):
        """The files update-grub sources, in its order (``self.path`` included even when it does not exist yet)."""
        names = set(name for name in (os.listdir(self.drop_in_dir) if os.path.isdir(self.drop_in_dir) else ())
                    if name.endswith('.cfg') and not name.startswith('.') and os.path.isfile(os.path.join(self.drop_in_dir, name)))
        names.update([os.path.basename(self.path)] if self.path != self.main else [])
        return [self.main] + [os.path.join(self.drop_in_dir, name) for name in sorted(names)]

    def read(self, planned):
        """A Reading of the host's files, with the texts of ``planned`` ({path: text, None: no such file}) in their place."""
        paths = self.sources()
        texts = [planned[path] if path in planned else read_following_links(path) for path in paths]
        with tempfile.TemporaryDirectory(prefix='xenpci-grub-') as scratch:
            copies = dict((path, os.path.join(scratch, str(index))) for index, path in enumerate(planned))
            for path in [path for path in planned if planned[path] is not None]:
                with open(copies[path], 'w') as handle:
                    handle.write(planned[path])
            rc, out, err = self.commands.run([SHELL, '-c', SOURCE_EACH, 'sh', self.lib] + [copies.get(path, path) for path in paths])
        fields, size = out.split('\0'), len(READ_VARIABLES)
        snapshots = [dict(zip(READ_VARIABLES, fields[start:start + size])) for start in range(0, len(fields) - size, size)]
        if len(snapshots) < len(paths):
            for path, copy in copies.items():
                err = err.replace(copy, path)
            raise GrubSyntaxError('%s: the shell stops reading it, as update-grub would (%s); nothing was changed'
                                  % (paths[len(snapshots)], err.strip() or 'exit status %d' % rc))
        return Reading(paths, texts, snapshots)

    def plan(self, target, params, xen_default=None):
        """A GrubPlan for making the ``target`` line hold ``params`` (a list of _boot.cmdline.Param), and for setting
        XEN_OVERRIDE_GRUB_DEFAULT to ``xen_default`` (None: left alone) in /etc/default/grub."""
        variable = TARGET_VARIABLE[target]
        for value, key in [(value, param.key) for param in params for value in param.values or [] if value]:
            if GRUB_SPECIAL.intersection(value):
                raise CmdlineError('the value %r of %s holds one of %s, which GRUB would interpret once update-grub '
                                   'copies it into grub.cfg; refused' % (value, key, ' '.join(sorted(GRUB_SPECIAL))))
        before = {self.path: read_text_file(self.path)}
        own = plain_assignments(self.path, before[self.path], variable)
        reading = self.read(before)
        before_tokens = reading.line_tokens(target)
        after = {self.path: self._edit(before[self.path], own, variable, target, params, before_tokens)}
        if xen_default is not None:
            if self.main not in after:
                before[self.main] = after[self.main] = read_text_file(self.main)
            after[self.main] = set_word(self.main, after[self.main], XEN_DEFAULT, xen_default)
        reading_after = reading if after == before else self.read(after)
        after_tokens = reading_after.line_tokens(target)
        if after[self.path] != before[self.path] and self.path == self.own_drop_in and not re.search(r'^\s*[^#\s]', after[self.path], re.M):
            after[self.path] = None    # the collection's own file holds nothing any more: it goes
        conflicts = self._conflicts(params, after_tokens, reading_after, variable, target)
        planned = [PlannedFile(path, before[path], after[path], own_file=path == self.own_drop_in) for path in after]
        texts = [' '.join(line_token.token.raw for line_token in tokens) for tokens in (before_tokens, after_tokens)]
        return GrubPlan(planned[0], texts[0], texts[1], conflicts, variable, planned[1:], reading.snapshots[-1], reading_after.snapshots[-1])

    def _mine(self, line_token, variable, own):
        origin = line_token.origin
        return (origin.path == self.path and origin.variable == variable
                and any(line_token.token.raw in (token.raw for token in assignment.cmdline.tokens) for assignment in own))

    def _edit(self, text, own, variable, target, params, before_tokens):
        """The new text of the edited file (``text`` itself when it stays as it is)."""
        new_line = Cmdline('')
        active = _before_separator(before_tokens)
        for param in params:
            lines = [assignment.cmdline for assignment in own] + [new_line]
            if param.state == 'absent':
                for cmdline in lines:
                    cmdline.remove(param)
                continue
            found = [line_token for line_token in active if line_token.token.norm_key == param.norm_key]
            mine = [line_token.token.occurrence for line_token in found if self._mine(line_token, variable, own)]
            others = [line_token.token for line_token in found if not self._mine(line_token, variable, own)]
            wanted = not param.satisfied_by(others)
            if mine == (param.desired if wanted else []):
                continue
            indexes = [cmdline.remove(param, only_matching=False) for cmdline in lines]
            if wanted:      # into the last assignment there is, else a new line
                lines[-2 if own else -1].insert(param.tokens(), indexes[-2 if own else -1])
        lines = (text or '').split('\n')
        for assignment in own:
            if assignment.cmdline.changed:
                lines[assignment.number - 1] = assignment.render(variable)
        text = '\n'.join(line for line in lines if line is not None) if text is not None else None
        return self._add_line(text, variable, target, new_line.text) if new_line.tokens else text

    def _add_line(self, text, variable, target, params_text):
        # for dom0, 20_linux_xen takes GRUB_CMDLINE_LINUX_DEFAULT unless this one is set: start from the same
        prefix = ('${%s:-$GRUB_CMDLINE_LINUX_DEFAULT} ' % variable if target == 'dom0_linux'
                  else '' if self.path == self.main else '$%s ' % variable)
        line = '%s="%s%s"\n' % (variable, prefix, shell_double_quote(params_text)[1:-1])
        text = (DROP_IN_HEADER if self.path == self.own_drop_in else '') if text is None else text
        reads = re.compile(r'\$\{?%s\b' % variable)
        lines = text.split('\n')
        for number, existing in enumerate(lines):
            if reads.search(existing) and not _assigns(variable, existing) and not existing.lstrip().startswith('#'):
                # before the first line that reads this variable, so that line sees the new value
                return '\n'.join(lines[:number]) + ('\n' if number else '') + line + '\n'.join(lines[number:])
        return text + ('\n' if text and not text.endswith('\n') else '') + line

    def _conflicts(self, params, after_tokens, reading, variable, target):
        own = plain_assignments(self.path, reading.texts[reading.paths.index(self.path)], variable)
        conflicts = []
        active = _before_separator(after_tokens)
        for param in params:
            found = [line_token for line_token in active if line_token.token.norm_key == param.norm_key]
            if param.satisfied_by([line_token.token for line_token in found]):
                continue
            foreign = [line_token for line_token in found if not self._mine(line_token, variable, own)]
            added = [_conflict(param, line_token, target) for line_token in foreign
                     if param.state == 'present' or param.removes(line_token.token)]
            lost = param.state == 'present' and len(foreign) == len(found)
            if lost or not added:   # what this task's file holds does not reach the line, or the line still differs
                added.append(_conflict_dict(param, None, Origin(self.path, None, variable), self._lost(
                    param, after_tokens, reading, variable, target) if lost else 'the %s command line would hold %s for %s' % (
                        _TARGET_WORDS[target], ' '.join(token.token.raw for token in found) or 'nothing', param.key)))
            conflicts.extend(added)
        return conflicts

    def _lost(self, param, after_tokens, reading, variable, target):
        """Why a parameter written to this task's file does not reach the command line."""
        later = reading.set_again(self.path, variable, param.tokens())
        why = ('%s is set again, without its earlier value, in %s' % (variable, ', '.join(later)) if later
               else 'it lands after the "--" that hands the rest of the line to init' if any(
                   line_token.token.raw == '--' for line_token in after_tokens) else '%s is not used for this line' % variable)
        return '%s written to %s does not reach the %s command line: %s' % (' '.join(param.tokens()), self.path, _TARGET_WORDS[target], why)


def _before_separator(line_tokens):
    return list(itertools.takewhile(lambda line_token: line_token.token.raw != '--', line_tokens))


def _conflict_dict(param, found, origin, message):
    return dict(param=param.key, found=found, file=origin.path, line=origin.line, variable=origin.variable, message=message)


def _conflict(param, line_token, target):
    origin = line_token.origin
    where = '%s in %s' % (origin.variable, origin.path) + (' line %d' % origin.line if origin.line else '')
    message = '%s from %s stays on the %s command line' % (line_token.token.raw, where, _TARGET_WORDS[target])
    message += ' next to %s' % ' '.join(param.tokens()) if param.state == 'present' else '; remove it there'
    return _conflict_dict(param, line_token.token.raw, origin, message)
