# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""The kernel configuration symbols PCI passthrough needs, and where each of them is valid.

Linux 5.16 split xen-pciback's Kconfig (``drivers/xen/Kconfig``)::

    config XEN_PCI_STUB          bool (no prompt)
    config XEN_PCIDEV_STUB       tristate, depends on PCI && !X86 && XEN, depends on XEN_BACKEND,
                                 select XEN_PCI_STUB
    config XEN_PCIDEV_BACKEND    tristate, depends on PCI && X86 && XEN, depends on XEN_BACKEND,
                                 select XEN_PCI_STUB

so the symbol that builds xen-pciback is ``XEN_PCIDEV_BACKEND`` on x86 and ``XEN_PCIDEV_STUB``
elsewhere (from 5.16 on; an older non-x86 kernel has no xen-pciback at all). This table is what
the collection knows without a kernel source tree; with one, kconfiglib reads the real Kconfig.
Names here are without the ``CONFIG_`` prefix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._xen import host as xen_host

PREFIX = 'CONFIG_'
STUB_SINCE = (5, 16)
_NAME_RE = re.compile(r'^[A-Z0-9_]+\Z')
_VERSION_RE = re.compile(r'^v?(\d+)\.(\d+)')

# Where a symbol exists: every architecture, x86 only, or anything but x86.
ANY = 'any'
X86_ONLY = 'x86'
NOT_X86 = 'not-x86'


class KernelSymbolError(ValueError):
    """A symbol or value that cannot be asked for; the message says what to ask for instead."""


class Symbol:
    """One Kconfig symbol: type, where it exists, what it depends on, and whether it can be set."""

    def __init__(self, kind, where=ANY, depends=(), since=None, settable=True, how=None, instead=None, needs_xen=True):
        self.kind = kind            # 'bool' or 'tristate'
        self.where = where
        self.depends = depends      # symbols (without CONFIG_) that must be y or m
        self.since = since          # (major, minor) of the first Linux that has it on its architectures
        self.settable = settable    # False: no prompt, the kernel derives it
        self.how = how              # for a derived symbol: what sets it
        self.instead = instead      # for a derived symbol: what to set (None: the arch's pciback symbol)
        self.needs_xen = needs_xen  # exists only where Linux runs on Xen (x86 and Arm)


SYMBOLS = {
    'PCI': Symbol('bool', needs_xen=False),
    'XEN': Symbol('bool'),
    'XEN_DOM0': Symbol('bool', settable=False,
                       how='it has no prompt and follows CONFIG_XEN (on x86 also CONFIG_XEN_PV or CONFIG_XEN_PVH)',
                       instead='CONFIG_XEN'),
    'XEN_BACKEND': Symbol('bool', depends=('XEN_DOM0',)),
    'XEN_PCIDEV_BACKEND': Symbol('tristate', where=X86_ONLY, depends=('PCI', 'XEN', 'XEN_BACKEND')),
    'XEN_PCIDEV_STUB': Symbol('tristate', where=NOT_X86, since=STUB_SINCE, depends=('PCI', 'XEN', 'XEN_BACKEND')),
    'XEN_PCI_STUB': Symbol('bool', settable=False,
                           how='it has no prompt and is selected by CONFIG_XEN_PCIDEV_BACKEND (x86) '
                               'or CONFIG_XEN_PCIDEV_STUB (other architectures)'),
    'XEN_PCIDEVICE_FRONTEND': Symbol('tristate', where=X86_ONLY, depends=('PCI', 'XEN')),
}


def kernel_arch(arch):
    """The kernel's name for ``arch`` (``uname -m`` or ``ARCH``): ``x86``, ``arm64``, ``arm`` or the name given."""
    name = (arch or '').strip().lower()
    if name == 'x86' or xen_host.is_x86(name):
        return 'x86'
    if name in ('aarch64', 'arm64'):
        return 'arm64'
    if name == 'arm' or name.startswith('armv') or name in ('armhf', 'armel'):
        return 'arm'
    return name


def pciback_symbol(arch):
    """``CONFIG_XEN_PCIDEV_BACKEND`` on x86, ``CONFIG_XEN_PCIDEV_STUB`` elsewhere; ``arch`` as uname or kernel names it."""
    return xen_host.pciback_symbol('x86_64' if kernel_arch(arch) == 'x86' else arch)


def xen_capable(arch):
    """Linux runs on Xen on x86 and Arm only."""
    return kernel_arch(arch) in ('x86', 'arm64', 'arm')


def parse_kernel_version(text):
    """``6.1.0-13-amd64`` -> (6, 1); None when ``text`` does not start with a version."""
    match = _VERSION_RE.match(str(text or '').strip())
    if match is None:
        return None
    return (int(match.group(1)), int(match.group(2)))


def normalise_name(name):
    """``CONFIG_XEN`` or ``XEN`` -> ``XEN``; anything that is not an upper-case Kconfig name is refused."""
    if not isinstance(name, str):
        raise KernelSymbolError('a kernel config symbol must be a string, got %r' % (name,))
    bare = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not _NAME_RE.match(bare):
        raise KernelSymbolError('%r is not a kernel config symbol (upper-case letters, digits and _, '
                                'with or without the CONFIG_ prefix)' % (name,))
    return bare


def _version_text(version):
    return '%d.%d' % version


def availability(name, arch, version):
    """Why ``name`` does not exist for ``arch`` / ``version``, naming what to use instead; None when it does.

    Returns ``(kind, message)``: ``kind`` is ``arch`` (the wrong symbol for this architecture:
    asking for it is a mistake) or ``version`` (the right symbol, but this kernel is too old).
    """
    symbol = SYMBOLS.get(name)
    if symbol is None:
        return None
    karch = kernel_arch(arch)
    if symbol.needs_xen and not xen_capable(arch):
        return ('arch', 'CONFIG_%s cannot be set for %s: Linux runs on Xen only on x86 and Arm' % (name, karch or arch))
    right = pciback_symbol(arch)
    if symbol.where == X86_ONLY and karch != 'x86':
        if name == 'XEN_PCIDEV_BACKEND':
            message = ('CONFIG_XEN_PCIDEV_BACKEND exists only on x86; on %s xen-pciback is built by %s '
                       '(Linux %s and later)' % (karch, right, _version_text(STUB_SINCE)))
        else:
            message = 'CONFIG_%s exists only on x86 (it is the PV guest side, pcifront); %s has no such option' % (name, karch)
        return ('arch', message)
    if symbol.where == NOT_X86 and karch == 'x86':
        return ('arch', 'CONFIG_%s is for architectures other than x86; on x86 xen-pciback is built by %s'
                % (name, right))
    if symbol.since is not None and version is not None and version < symbol.since:
        return ('version', 'CONFIG_%s exists from Linux %s on; Linux %s on %s has no xen-pciback at all'
                % (name, _version_text(symbol.since), _version_text(version), karch))
    return None


def check_settable(name, value, arch, version):
    """Refuse setting ``name`` to ``value`` (``y``/``m``/``n``/other text) when the kernel could not have it."""
    symbol = SYMBOLS.get(name)
    if symbol is None:
        return
    if not symbol.settable:
        raise KernelSymbolError('CONFIG_%s cannot be set by hand: %s; set %s instead'
                                % (name, symbol.how, symbol.instead or pciback_symbol(arch)))
    if symbol.kind == 'bool' and value not in ('y', 'n'):
        raise KernelSymbolError('CONFIG_%s is a bool: give y or n, not %r' % (name, value))
    if symbol.kind == 'tristate' and value not in ('y', 'm', 'n'):
        raise KernelSymbolError('CONFIG_%s is a tristate: give y, m or n, not %r' % (name, value))
    if value == 'n':
        return
    problem = availability(name, arch, version)
    if problem is not None:
        kind, message = problem
        if kind == 'version':
            message += ' (give kernel_version if the configuration is for another kernel)'
        raise KernelSymbolError(message)


def dependencies(name):
    symbol = SYMBOLS.get(name)
    return symbol.depends if symbol is not None else ()
