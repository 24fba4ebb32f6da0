# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Kernel ``.config`` files and fragments: parse, edit in place, check the running kernel.

A ``.config`` line is ``CONFIG_X=value`` (``y``, ``m``, a number, or a double-quoted string with
``\\"`` and ``\\\\`` escapes), ``# CONFIG_X is not set`` (the symbol is ``n``), another comment, or
blank. Anything else is refused with its line number and the file is left as it was. An edit
keeps every other line, comment and the order; a symbol the file lacks is appended. A file with
kconfig's header (``# Linux/arm64 6.1.0 Kernel Configuration``) is a full configuration: a
symbol it does not list is off. A file without one is a fragment, merged into another
configuration later.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import tempfile

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import PlannedFile, read_text_file
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.symbols import (
    PREFIX,
    SYMBOLS,
    KernelSymbolError,
    availability,
    check_settable,
    kernel_arch,
    normalise_name,
    parse_kernel_version,
    pciback_symbol,
)

_SET_RE = re.compile(r'^CONFIG_([A-Za-z0-9_]+)=(.*)\Z')
_UNSET_RE = re.compile(r'^# CONFIG_([A-Za-z0-9_]+) is not set\s*\Z')
_HEADER_RE = re.compile(r'^# Linux/(\S+) (\S+) Kernel Configuration\s*\Z')
_QUOTED_RE = re.compile(r'^"((?:[^"\\]|\\.)*)"\Z')
_RAW_RE = re.compile(r'^[^\s"\\]*\Z')
_NUMBER_RE = re.compile(r'^(?:-?[0-9]+|0[xX][0-9a-fA-F]+)\Z')
_UNESCAPE_RE = re.compile(r'\\(.)')
_TRISTATE_ORDER = {'n': 0, 'm': 1, 'y': 2}

# Wanted value in a check meaning "set to anything but n".
ENABLED = None


class KconfigError(Exception):
    """The file, the request or the kernel tree cannot be used; nothing was written."""


def parse_value(raw):
    """The value text of ``CONFIG_X=<raw>``: strings unquoted and unescaped; ValueError for anything else."""
    raw = raw.rstrip('\r')
    match = _QUOTED_RE.match(raw)
    if match is not None:
        return _UNESCAPE_RE.sub(r'\1', match.group(1))
    if _RAW_RE.match(raw):
        return raw
    raise ValueError('%r is neither a plain value nor a double-quoted string' % raw)


def render_line(name, value):
    """The ``.config`` line for ``name`` = ``value`` (``n`` is written as ``# CONFIG_X is not set``)."""
    if value == 'n':
        return '# %s%s is not set' % (PREFIX, name)
    if value in ('y', 'm') or _NUMBER_RE.match(value):
        return '%s%s=%s' % (PREFIX, name, value)
    return '%s%s="%s"' % (PREFIX, name, value.replace('\\', '\\\\').replace('"', '\\"'))


def user_value(name, value):
    """The value text for what a task gave: y/m/n, a number, or a string (no line breaks or control characters)."""
    if isinstance(value, bool):
        return 'y' if value else 'n'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise KernelSymbolError('%s%s: the value %r has a line break or another control character' % (PREFIX, name, value))
        return value.lower() if value in ('Y', 'M', 'N') else value
    raise KernelSymbolError('%s%s: give y, m, n, a string or a number, not %r' % (PREFIX, name, value))


def normalise_options(options, with_values):
    """``options`` (a mapping, or a list of names) -> ``[(NAME, value or ENABLED)]`` in the order given.

    ``with_values``: a mapping is required and every value is checked (setting options);
    otherwise a list of names is accepted too and values, if any, are kept as given.
    """
    if isinstance(options, dict):
        items = list(options.items())
    elif isinstance(options, (list, tuple)) and not with_values:
        items = [(name, ENABLED) for name in options]
    elif isinstance(options, (list, tuple)):
        raise KernelSymbolError('options must be a mapping of symbol to value (y, m, n, a string or a number)')
    else:
        raise KernelSymbolError('options must be a mapping of symbol to value, or a list of symbols')
    if not items:
        raise KernelSymbolError('options is empty: name at least one symbol')
    result = []
    seen = set()
    for name, value in items:
        bare = normalise_name(name)
        if bare in seen:
            raise KernelSymbolError('%s%s is given twice (with and without the CONFIG_ prefix?)' % (PREFIX, bare))
        seen.add(bare)
        if value is ENABLED and with_values:
            raise KernelSymbolError('%s%s has no value: give y, m, n, a string or a number' % (PREFIX, bare))
        result.append((bare, ENABLED if value is ENABLED else user_value(bare, value)))
    return result


class ConfigText:
    """A parsed ``.config`` or fragment: the lines as they are and where each symbol is defined."""

    def __init__(self, text, path='the file'):
        self.text = text
        self.lines = text.split('\n')
        if self.lines and self.lines[-1] == '':
            self.lines.pop()
        self.definitions = {}    # name -> [(line index, value)]
        self.header = None       # (arch, version) from kconfig's header
        for index, line in enumerate(self.lines):
            clean = line.rstrip('\r')
            match = _SET_RE.match(clean)
            if match is not None:
                try:
                    value = parse_value(match.group(2))
                except ValueError as exc:
                    raise KconfigError('%s line %d: %s; the file was left as it was' % (path, index + 1, exc))
                self.definitions.setdefault(match.group(1), []).append((index, value))
                continue
            match = _UNSET_RE.match(clean)
            if match is not None:
                self.definitions.setdefault(match.group(1), []).append((index, 'n'))
                continue
            match = _HEADER_RE.match(clean)
            if match is not None and self.header is None:
                self.header = (match.group(1), match.group(2))
                continue
            if clean.strip() == '' or clean.startswith('#'):
                continue
            raise KconfigError('%s line %d is neither CONFIG_X=value, "# CONFIG_X is not set", a comment nor blank: %r; '
                               'the file was left as it was' % (path, index + 1, line[:80]))

    @property
    def full(self):
        """True for a whole configuration written by kconfig (it has the header), False for a fragment."""
        return self.header is not None

    def value(self, name):
        """The value kconfig would read (the last definition wins), or None when the file does not have it."""
        found = self.definitions.get(name)
        return found[-1][1] if found else None

    def values(self):
        return dict((name, found[-1][1]) for name, found in self.definitions.items())

    def edited(self, changes, state):
        """The new text with ``changes`` (``[(NAME, value)]``) set, or removed with ``state='absent'``."""
        lines = list(self.lines)
        drop = set()
        appended = []
        modified = False
        for name, value in changes:
            found = self.definitions.get(name, [])
            if state == 'absent':
                drop.update(index for index, dummy in found)
                continue
            if not found:
                appended.append(render_line(name, value))
                continue
            first_index, first_value = found[0]
            if first_value != value:
                lines[first_index] = render_line(name, value)
                modified = True
            drop.update(index for index, dummy in found[1:])
        if not (drop or appended or modified):
            return self.text
        kept = [line for index, line in enumerate(lines) if index not in drop] + appended
        return ''.join(line + '\n' for line in kept)


def _dependency_checks(values, requested, full):
    """Errors (dependencies the result switches off) and notes (dependencies a fragment leaves to its base)."""
    errors = []
    notes = []
    for name, symbol in sorted(SYMBOLS.items()):
        value = values.get(name)
        if value not in ('y', 'm'):
            continue
        left_to_base = []
        for dep in symbol.depends:
            if name not in requested and dep not in requested:
                continue
            dep_value = values.get(dep)
            if dep_value == 'n' or (dep_value is None and full):
                how = SYMBOLS[dep].how if not SYMBOLS[dep].settable else None
                errors.append('%s%s=%s needs %s%s, which %s%s' % (
                    PREFIX, name, value, PREFIX, dep,
                    'would be n' if dep_value == 'n' else 'this configuration does not have (so it is off)',
                    ' (%s)' % how if how else ''))
            elif dep_value is None and SYMBOLS[dep].settable:
                left_to_base.append(PREFIX + dep)
        if left_to_base:
            notes.append('%s%s depends on %s, which this fragment does not set: the configuration it is merged '
                         'into must have %s' % (PREFIX, name, ', '.join(left_to_base),
                                                'them' if len(left_to_base) > 1 else 'it'))
    return errors, notes


class EditPlan:
    """What an edit would do: the PlannedFile, per-symbol before/after, the arch and version it was checked for."""

    def __init__(self, planned, options, arch, version, full, notes, checked_with):
        self.planned = planned
        self.options = options
        self.arch = arch
        self.version = version
        self.full = full
        self.notes = notes
        self.checked_with = checked_with


def _version_text(version):
    return '%d.%d' % version if version else None


def plan_edit(path, options, state, host, arch=None, kernel_version=None, create=True, source_tree=None):
    """Plan setting (``present``) or removing (``absent``) ``options`` in the file at ``path``.

    ``arch`` and ``kernel_version`` default to the file's kconfig header, else to ``host``'s
    running kernel. Every refusal is raised before anything is written (KconfigError,
    KernelSymbolError).
    """
    changes = normalise_options(options, with_values=(state == 'present'))
    before = read_text_file(path)
    if before is None and not create:
        raise KconfigError('%s does not exist (create is false)' % path)
    config = ConfigText(before or '', path)
    header_arch, header_version = config.header or (None, None)
    arch = arch or header_arch or host.arch
    version = parse_kernel_version(kernel_version or header_version or host.kernel_release)
    notes = []
    if version is None and kernel_arch(arch) != 'x86':
        notes.append('the kernel version is unknown: the Linux %s rule for %s was not checked'
                     % ('5.16', pciback_symbol(arch)))
    if state == 'present':
        for name, value in changes:
            check_settable(name, value, arch, version)
    after = config.edited(changes, state) if (before is not None or state == 'present') else None
    result_config = ConfigText(after or '', path)
    requested = set(name for name, dummy in changes)
    errors, dependency_notes = _dependency_checks(result_config.values(), requested, config.full)
    if errors:
        raise KconfigError('; '.join(errors) + '; %s was left as it was' % path)
    notes.extend(dependency_notes)
    checked_with = 'table'
    if source_tree and state == 'present':
        problems = kconfiglib_problems(source_tree, arch, version, after, changes)
        if problems and config.full:
            raise KconfigError('; '.join(problems) + '; %s was left as it was' % path)
        notes.extend('kconfiglib, with only this fragment set: %s' % problem for problem in problems)
        checked_with = 'kconfiglib'
    report = dict((PREFIX + name, {'before': config.value(name), 'after': result_config.value(name)})
                  for name, dummy in changes)
    planned = PlannedFile(path, before, after)
    if planned.changed and config.full:
        notes.append('run "make olddefconfig" in the source tree before building: it settles the symbols that '
                     'follow from these (such as %sXEN_PCI_STUB)' % PREFIX)
    return EditPlan(planned, report, kernel_arch(arch), _version_text(version), config.full, notes, checked_with)


# ---- kconfiglib, only where it is installed and a source tree is given --------------------------

_KCONFIG_ARCH = {'x86': ('x86_64', 'x86'), 'arm64': ('arm64', 'arm64'), 'arm': ('arm', 'arm')}


def _import_kconfiglib():
    try:
        import kconfiglib    # pylint: disable=import-outside-toplevel,import-error
    except ImportError:
        raise KconfigError('source_tree needs the Python library kconfiglib on the managed host '
                           '(pip install kconfiglib); without source_tree the built-in table of symbols is used')
    return kconfiglib


def _kconfig_environment(source_tree, arch, version):
    karch = kernel_arch(arch)
    arch_var, srcarch = _KCONFIG_ARCH.get(karch, (karch, karch))
    if arch in ('i386', 'i486', 'i586', 'i686'):
        arch_var = 'i386'
    return {
        'srctree': source_tree, 'ARCH': arch_var, 'SRCARCH': srcarch,
        'KERNELVERSION': '%d.%d.0' % version if version else '',
        'CC': os.environ.get('CC', 'gcc'), 'LD': os.environ.get('LD', 'ld'),
        'HOSTCC': os.environ.get('HOSTCC', 'gcc'), 'HOSTCXX': os.environ.get('HOSTCXX', 'g++'),
    }


def _want_matches(got, want):
    return got == want or (want == 'n' and got == '')


def kconfiglib_problems(source_tree, arch, version, config_text, changes):
    """Load ``source_tree``'s Kconfig with ``config_text`` and say which ``changes`` kconfig would not keep."""
    kconfiglib = _import_kconfiglib()
    if not os.path.isfile(os.path.join(source_tree, 'Kconfig')):
        raise KconfigError('%s has no Kconfig file: source_tree must be the top of a Linux source tree' % source_tree)
    saved = dict(os.environ)
    temp_path = None
    try:
        os.environ.update(_kconfig_environment(source_tree, arch, version))
        try:
            kconf = kconfiglib.Kconfig(os.path.join(source_tree, 'Kconfig'), warn=False)
            fd, temp_path = tempfile.mkstemp(prefix='.xenpci-kconfig.', suffix='.config')
            with os.fdopen(fd, 'w') as handle:
                handle.write(config_text or '')
            kconf.load_config(temp_path, replace=True)
        except (getattr(kconfiglib, 'KconfigError', KconfigError), OSError, ValueError) as exc:
            raise KconfigError('kconfiglib could not read the Kconfig of %s for ARCH=%s: %s'
                               % (source_tree, os.environ.get('ARCH'), exc))
        problems = []
        for name, want in changes:
            sym = kconf.syms.get(name)
            if sym is None or not sym.nodes:
                problems.append('%s%s is not defined in %s for ARCH=%s' % (PREFIX, name, source_tree, os.environ['ARCH']))
                continue
            got = sym.str_value
            if _want_matches(got, want):
                continue
            unmet = [kconfiglib.expr_str(part) for part in kconfiglib.split_expr(sym.direct_dep, kconfiglib.AND)
                     if kconfiglib.expr_value(part) == 0]
            message = 'kconfig gives %s%s=%s, not %s' % (PREFIX, name, got or '""', want)
            if unmet:
                message += ': it depends on %s' % ' && '.join(unmet)
            elif not any(node.prompt for node in sym.nodes):
                message += ': it has no prompt (it is selected or derived)'
            problems.append(message)
        return problems
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if temp_path is not None:
            os.unlink(temp_path)


# ---- the running kernel ------------------------------------------------------------------------

def _satisfied(have, want):
    if want is ENABLED:
        return have != 'n'
    if want in ('m', 'y') and have in _TRISTATE_ORDER:
        return _TRISTATE_ORDER[have] >= _TRISTATE_ORDER[want]
    return have == want


class RunningCheck:
    """The running kernel against wanted options: ``present`` values, ``missing`` and ``mismatched`` symbols."""

    def __init__(self, arch, release):
        self.arch = arch
        self.release = release
        self.present = {}
        self.missing = []
        self.mismatched = []
        self.options = {}
        self.notes = []

    @property
    def ok(self):
        return not (self.missing or self.mismatched)

    def failure_message(self):
        parts = []
        if self.missing:
            parts.append('lacks %s' % ', '.join(self.missing))
        for name in self.mismatched:
            parts.append('has %s=%s, not %s' % (name, self.options[name]['running'], self.options[name]['wanted']))
        message = 'this kernel (%s, %s) %s' % (self.release, kernel_arch(self.arch), '; '.join(parts))
        return message + ''.join('; %s' % note for note in self.notes)


def check_running(host, options=None):
    """Compare the running kernel's configuration with ``options`` (default: the pciback symbol of its arch).

    In a mapping, ``m`` is satisfied by ``y`` too (built in provides what the module would); a
    list of names asks for each to be set to anything but ``n``. Asking for a symbol that does
    not exist on this architecture is refused, naming the one that does.
    """
    arch = host.arch
    version = parse_kernel_version(host.kernel_release)
    if options:
        wanted = normalise_options(options, with_values=False)
    else:
        wanted = [(pciback_symbol(arch)[len(PREFIX):], ENABLED)]
    check = RunningCheck(arch, host.kernel_release)
    for name, want in wanted:
        if want != 'n':
            problem = availability(name, arch, version)
            if problem is not None and problem[0] == 'arch':
                raise KernelSymbolError(problem[1])
            if problem is not None:
                check.notes.append(problem[1])
        raw = host.kernel_config_value(PREFIX + name)
        if raw is None:
            raise KconfigError("cannot read the running kernel's configuration: neither %s nor %s (CONFIG_IKCONFIG_PROC) "
                               "exists" % (os.path.join(host.paths.boot, 'config-' + host.kernel_release),
                                           os.path.join(host.paths.proc, 'config.gz')))
        try:
            have = parse_value(raw)
        except ValueError:
            have = raw
        full = PREFIX + name
        check.options[full] = {'wanted': 'y or m' if want is ENABLED else want, 'running': have}
        if have != 'n':
            check.present[full] = have
        if _satisfied(have, want):
            continue
        if have == 'n':
            check.missing.append(full)
        else:
            check.mismatched.append(full)
    return check
