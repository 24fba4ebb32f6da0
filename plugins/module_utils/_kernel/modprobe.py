# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""modprobe.d files: parse ``options`` lines, render the one file this collection owns per module.

kmod reads ``*.conf`` from ``/etc/modprobe.d``, ``/run/modprobe.d``, ``/usr/local/lib/modprobe.d``,
``/usr/lib/modprobe.d`` and ``/lib/modprobe.d``; a file name found in an earlier directory hides
the same name in later ones, and the files are read in the order of their names. A line ending
in ``\\`` continues on the next one; a line whose first word starts with ``#`` is a comment.
``options MODULE p=v p2="a b"`` gives parameters (``-`` and ``_`` are the same in module and
parameter names); kmod also takes ``MODULE.p=v`` from the kernel command line.

xen-pciback's ``hide`` is a list, ``(DDDD:BB:DD.F)(DDDD:BB:DD.F)``: it is merged, not
overwritten, and every address is checked (a malformed one makes the module fail to load).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.address import PciAddressError, parse_pci_address

MODPROBE_DIRS = (
    ('etc', 'modprobe.d'),
    ('run', 'modprobe.d'),
    ('usr', 'local', 'lib', 'modprobe.d'),
    ('usr', 'lib', 'modprobe.d'),
    ('lib', 'modprobe.d'),
)
OWNED_PREFIX = 'xenpci-'
OWNED_HEADER = ('# Managed by the xenpci.passthrough collection (xenpci.passthrough.module_params): change the values\n'
                '# through it. A line added here by hand makes its next run fail and leave this file as it is.\n')
PCIBACK = 'xen_pciback'
HIDE = 'hide'
_MODULE_RE = re.compile(r'^[A-Za-z0-9_-]+\Z')
_PARAM_RE = re.compile(r'^[A-Za-z0-9_-]+\Z')
_HIDE_RE = re.compile(r'^(?:\([^()]*\))+\Z')
_HIDE_ENTRY_RE = re.compile(r'\(([^()]*)\)')


class ModprobeError(Exception):
    """A request or a file that cannot be used; nothing was written."""


def sysfs_name(name):
    """The name under ``/sys/module``: ``xen-pciback`` -> ``xen_pciback``."""
    return name.replace('-', '_')


def check_module_name(name):
    if not isinstance(name, str) or not _MODULE_RE.match(name):
        raise ModprobeError('%r is not a kernel module name (letters, digits, - and _)' % (name,))
    return name


def owned_file(paths, module):
    """``/etc/modprobe.d/xenpci-<module>.conf`` (one name for ``xen-pciback`` and ``xen_pciback``)."""
    return paths.join('etc', 'modprobe.d', '%s%s.conf' % (OWNED_PREFIX, sysfs_name(module).replace('_', '-')))


# ---- values ------------------------------------------------------------------------------------

def _check_text(module, param, text):
    for char in text:
        if ord(char) < 32 or ord(char) > 126:
            raise ModprobeError('%s.%s: the value %r has a line break, a control or a non-ASCII character'
                                % (module, param, text))
    if '"' in text:
        raise ModprobeError('%s.%s: the value %r has a double quote, which modprobe cannot pass on' % (module, param, text))
    if text.endswith('\\'):
        raise ModprobeError('%s.%s: the value %r ends in a backslash, which would join the next line of the file to '
                            'the options line' % (module, param, text))
    return text


def _scalar(module, param, value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if value == '':
            raise ModprobeError('%s.%s: the value %r is empty; state=absent removes a parameter' % (module, param, value))
        return _check_text(module, param, value)
    raise ModprobeError('%s.%s: give a string, a number, a boolean or a list, not %r' % (module, param, value))


def parse_hide(value, module='xen-pciback'):
    """Canonical addresses from ``(DDDD:BB:DD.F)(...)``, one address, or a list of either; refuses any bad one."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    addresses = []
    for item in items:
        if not isinstance(item, str):
            raise ModprobeError('%s.hide: %r is not a PCI address' % (module, item))
        text = item.strip()
        if not text and items is value:
            raise ModprobeError('%s.hide: the list item %r is blank; give a PCI address' % (module, item))
        if not text:
            continue
        if text.startswith('('):
            if not _HIDE_RE.match(text):
                raise ModprobeError('%s.hide: %r is not a list of (DDDD:BB:DD.F) entries' % (module, item))
            entries = _HIDE_ENTRY_RE.findall(text)
        else:
            entries = [text]
        for entry in entries:
            try:
                address = str(parse_pci_address(entry))
            except PciAddressError as exc:
                raise ModprobeError('%s.hide: %s; a malformed address makes xen-pciback fail to load' % (module, exc))
            if address not in addresses:
                addresses.append(address)
    return addresses


def render_hide(addresses):
    return ''.join('(%s)' % address for address in addresses)


def is_hide(module, param):
    return sysfs_name(module) == PCIBACK and param == HIDE


def param_value(module, param, value):
    """The text a task's ``value`` is written as: booleans 1/0, lists joined with commas, hide as (..)(..)."""
    if value is None:
        raise ModprobeError('%s.%s has no value' % (module, param))
    if is_hide(module, param):
        return render_hide(parse_hide(value, module))
    if isinstance(value, (list, tuple)):
        return ','.join(_scalar(module, param, item) for item in value)
    return _scalar(module, param, value)


def check_param_name(module, param):
    if not isinstance(param, str) or not _PARAM_RE.match(param):
        raise ModprobeError('%s: %r is not a module parameter name (letters, digits, - and _)' % (module, param))
    return param.replace('-', '_')


def format_param(param, text):
    """``p=v``, quoted when the value has blanks."""
    if any(char.isspace() for char in text):
        return '%s="%s"' % (param, text)
    return '%s=%s' % (param, text)


# ---- parsing -----------------------------------------------------------------------------------

def logical_lines(text):
    """``(first line number, text)`` for each logical line: a trailing backslash joins the next line."""
    pending = None
    start = 0
    for number, line in enumerate(text.split('\n'), 1):
        line = line.rstrip('\r')
        if pending is None:
            start = number
            pending = ''
        if line.endswith('\\'):
            pending += line[:-1]
            continue
        yield start, pending + line
        pending = None
    if pending:
        yield start, pending


def split_params(text):
    """``p=v p2="a b" flag`` -> ``[('p', 'v'), ('p2', 'a b'), ('flag', None)]``; ValueError on an open quote."""
    params = []
    token = ''
    in_quote = False
    started = False
    for char in text + ' ':
        if char == '"':
            in_quote = not in_quote
            started = True
            continue
        if char.isspace() and not in_quote:
            if started:
                name, sep, value = token.partition('=')
                params.append((name.replace('-', '_'), value if sep else None))
            token = ''
            started = False
            continue
        token += char
        started = True
    if in_quote:
        raise ValueError('a double quote is not closed')
    return params


class OptionsLine:
    """One ``options MODULE ...`` line: where it is and what it sets."""

    def __init__(self, path, line, module, params, text):
        self.path = path
        self.line = line
        self.module = module
        self.params = params
        self.text = text


def parse_modprobe_text(text, path):
    """``(options lines, problems)`` of a modprobe.d file; a malformed line is a problem, not an exception."""
    options = []
    problems = []
    for number, line in logical_lines(text):
        words = line.split(None, 2)
        if not words or words[0].startswith('#'):
            continue
        if words[0] != 'options':
            continue
        if len(words) < 2:
            problems.append('%s line %d: "options" without a module name' % (path, number))
            continue
        try:
            params = split_params(words[2] if len(words) > 2 else '')
        except ValueError as exc:
            problems.append('%s line %d: %s' % (path, number, exc))
            continue
        options.append(OptionsLine(path, number, words[1], params, line.strip()))
    return options, problems


def parse_owned(text, path, module):
    """The parameters of the file this collection owns for ``module``, and the module spelling it uses.

    Only comments, blank lines and ``options`` lines for ``module`` may be there; anything else
    (a hand edit) is refused so that it is not silently overwritten.
    """
    params = {}
    order = []
    spelling = None
    for number, line in logical_lines(text):
        words = line.split(None, 2)
        if not words or words[0].startswith('#'):
            continue
        if words[0] != 'options' or len(words) < 2 or sysfs_name(words[1]) != sysfs_name(module):
            raise ModprobeError('%s line %d is not an "options %s" line: %r; this file is managed by the collection, '
                                'move that line to another file; %s was left as it was'
                                % (path, number, module, line[:80], path))
        try:
            pairs = split_params(words[2] if len(words) > 2 else '')
        except ValueError as exc:
            raise ModprobeError('%s line %d: %s; %s was left as it was' % (path, number, exc, path))
        spelling = spelling or words[1]
        for name, value in pairs:
            if value is None:
                raise ModprobeError('%s line %d: parameter %r has no value; %s was left as it was' % (path, number, name, path))
            if is_hide(module, name):
                try:
                    value = render_hide(parse_hide(value, module))
                except ModprobeError as exc:
                    raise ModprobeError('%s line %d: %s; %s was left as it was' % (path, number, exc, path))
            if name not in params:
                order.append(name)
            params[name] = value
    return [(name, params[name]) for name in order], spelling


def render_owned(module, params, comments=()):
    """The owned file's text for ``params`` (``[(name, text)]``), or None when there is nothing to set.

    ``comments``: lines written between the header and the ``options`` line (the identity of each hidden
    device); the ``options`` line stays the file's last.
    """
    if not params:
        return None
    return OWNED_HEADER + ''.join(line + '\n' for line in comments) + \
        'options %s %s\n' % (module, ' '.join(format_param(name, text) for name, text in params))


def merge_params(module, current, requested, state):
    """The owned parameters after the task: ``present`` sets (hide: adds), ``absent`` removes (hide: only those)."""
    result = list(current)
    index = dict((name, position) for position, (name, dummy) in enumerate(result))
    dropped = set()
    for name, value in requested:
        if is_hide(module, name):
            have = parse_hide(result[index[name]][1]) if name in index else []
            named = parse_hide(value, module)
            if state == 'present':
                text = render_hide(have + [address for address in named if address not in have])
            elif value is None:
                text = ''
            else:
                text = render_hide([address for address in have if address not in named])
        else:
            text = param_value(module, name, value) if state == 'present' else ''
        if name in index:
            result[index[name]] = (name, text)
        elif text:
            index[name] = len(result)
            result.append((name, text))
        if not text:
            dropped.add(name)
    return [(name, text) for name, text in result if name not in dropped]


# ---- other configuration -----------------------------------------------------------------------

def _read_loosely(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return None


def modprobe_files(paths):
    """The ``*.conf`` files kmod reads, in its order (a name in an earlier directory hides later ones)."""
    chosen = {}
    for parts in MODPROBE_DIRS:
        directory = paths.join(*parts)
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith('.conf') and name not in chosen:
                chosen[name] = os.path.join(directory, name)
    return [chosen[name] for name in sorted(chosen)]


def cmdline_params(text, module):
    """``[(param, value)]`` that a kernel command line gives ``module`` (``module.param=value``)."""
    found = []
    try:
        words = split_params(text or '')
    except ValueError:
        return found
    wanted = sysfs_name(module) + '.'
    for word, value in words:
        if sysfs_name(word).startswith(wanted) and value is not None:
            found.append((word[len(wanted):].replace('-', '_'), value))
    return found


def _same(module, param, left, right):
    if is_hide(module, param):
        try:
            return set(parse_hide(left, module)) == set(parse_hide(right, module))
        except ModprobeError:
            return False
    return left == right


def find_conflicts(paths, module, managed, after, owned_path, cmdline=None):
    """Places other than the owned file that set a managed parameter to something else.

    ``managed`` are the parameter names the task touches, ``after`` the owned file's parameters
    after it. Returns ``(conflicts, notes)``: each conflict is a dict with ``file``, ``line``,
    ``options`` (the line) and ``params``; notes say which other files could not be read.
    """
    after = dict(after)
    conflicts = []
    notes = []
    owned_name = os.path.basename(owned_path)
    sources = []
    for path in modprobe_files(paths):
        if os.path.basename(path) == owned_name:
            continue
        text = _read_loosely(path)
        if text is None:
            notes.append('%s could not be read' % path)
            continue
        lines, problems = parse_modprobe_text(text, path)
        notes.extend(problems)
        sources.extend(lines)
    if cmdline is not None:
        given = cmdline_params(cmdline[1], module)
        if given:
            sources.append(OptionsLine(cmdline[0], 1, module, given,
                                       ' '.join('%s.%s' % (module, format_param(name, value)) for name, value in given)))
    for line in sources:
        if sysfs_name(line.module) != sysfs_name(module):
            continue
        clashing = sorted(set(name for name, value in line.params
                              if name in managed and (name not in after or not _same(module, name, value or '', after[name]))))
        if clashing:
            conflicts.append({'file': line.path, 'line': line.line, 'options': line.text, 'params': clashing})
    return conflicts, notes
