# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""What kind of host this is, read from files only: Xen, dom0, xen-pciback, the running kernel."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import read_text

PCIBACK_MODULE = 'xen-pciback'
PCIBACK_MODULE_SYSFS = 'xen_pciback'
_MODULE_SUFFIX_RE = re.compile(r'\.ko(?:\.(?:gz|xz|zst))?\Z')
_XENSTORED_NAMES = ('xenstored', 'oxenstored')
# The Kconfig symbol that provides xen-pciback, per architecture (see docs/xen-pciback.md).
PCIBACK_SYMBOL_X86 = 'CONFIG_XEN_PCIDEV_BACKEND'
PCIBACK_SYMBOL_OTHER = 'CONFIG_XEN_PCIDEV_STUB'


def is_x86(arch):
    return arch in ('x86_64', 'i386', 'i486', 'i586', 'i686', 'amd64')


def pciback_symbol(arch):
    """The Kconfig symbol that builds xen-pciback on ``arch``: the PV backend on x86, the stub elsewhere."""
    return PCIBACK_SYMBOL_X86 if is_x86(arch) else PCIBACK_SYMBOL_OTHER


class XenHost:
    """Facts about the running host, each read on demand from ``paths``."""

    def __init__(self, paths, uname=None):
        self.paths = paths
        self._uname = uname or os.uname()

    @property
    def arch(self):
        return self._uname[4]

    @property
    def kernel_release(self):
        return self._uname[2]

    def hypervisor(self):
        """``xen`` when Linux runs on Xen, else None."""
        return read_text(os.path.join(self.paths.sys, 'hypervisor', 'type')) or None

    def is_dom0(self):
        """True in Xen's control domain: ``/proc/xen/capabilities`` says ``control_d``."""
        capabilities = read_text(os.path.join(self.paths.proc, 'xen', 'capabilities')) or ''
        return 'control_d' in capabilities.split()

    def xen_version(self):
        base = os.path.join(self.paths.sys, 'hypervisor', 'version')
        major = read_text(os.path.join(base, 'major'))
        minor = read_text(os.path.join(base, 'minor'))
        if major is None or minor is None:
            return None
        return '%s.%s%s' % (major, minor, read_text(os.path.join(base, 'extra')) or '')

    def xen_version_tuple(self):
        base = os.path.join(self.paths.sys, 'hypervisor', 'version')
        try:
            return (int(read_text(os.path.join(base, 'major'))), int(read_text(os.path.join(base, 'minor'))))
        except (TypeError, ValueError):
            return None

    def boot_id(self):
        return read_text(os.path.join(self.paths.proc, 'sys', 'kernel', 'random', 'boot_id'))

    def xenstored_running(self):
        """True when a xenstored process runs (xenstore commands would hang without one)."""
        proc = self.paths.proc
        try:
            entries = os.listdir(proc)
        except OSError:
            return False
        for entry in entries:
            if entry.isdigit() and read_text(os.path.join(proc, entry, 'comm')) in _XENSTORED_NAMES:
                return True
        return False

    def kernel_config_value(self, symbol):
        """The running kernel's value of ``symbol`` (``y``, ``m``, a string), ``n`` when unset, None when unknown."""
        text = self._kernel_config_text()
        if text is None:
            return None
        prefix = symbol + '='
        for line in text.splitlines():
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        return 'n'

    def _kernel_config_text(self):
        path = os.path.join(self.paths.boot, 'config-' + self.kernel_release)
        try:
            with open(path, 'rb') as handle:
                return handle.read().decode('utf-8', 'replace')
        except (IOError, OSError):
            pass
        import gzip    # only hosts without /boot/config-* need it
        try:
            with gzip.open(os.path.join(self.paths.proc, 'config.gz'), 'rb') as handle:
                return handle.read().decode('utf-8', 'replace')
        except (IOError, OSError):
            return None

    def _module_index_lists(self, index, module):
        """True when ``lib/modules/<release>/<index>`` names ``module`` (``-`` and ``_`` alike), None without the index."""
        wanted = module.replace('-', '_')
        path = os.path.join(self.paths.lib_modules, self.kernel_release, index)
        try:
            with open(path, 'r') as handle:
                for line in handle:
                    entry = os.path.basename(line.split(':', 1)[0].strip())
                    if _MODULE_SUFFIX_RE.sub('', entry).replace('-', '_') == wanted:
                        return True
        except (IOError, OSError):
            return None
        return False

    def module_build(self, module):
        """How the running kernel has ``module``: ``module``, ``builtin`` or ``unknown``.

        A loaded module shows in ``/sys/module/<m>``, with an ``initstate`` file when loadable
        and without one when built in; otherwise the module indexes under ``/lib/modules`` say.
        """
        directory = os.path.join(self.paths.sys, 'module', module.replace('-', '_'))
        if os.path.isdir(directory):
            return 'module' if os.path.exists(os.path.join(directory, 'initstate')) else 'builtin'
        if self._module_index_lists('modules.builtin', module):
            return 'builtin'
        if self._module_index_lists('modules.dep', module):
            return 'module'
        return 'unknown'

    def pciback_build(self):
        """How this kernel provides xen-pciback: ``module``, ``builtin``, ``absent`` or ``unknown``.

        The kernel config of the running kernel says it (``=m`` / ``=y``); without one, what the
        kernel shows of the module (``module_build``).
        """
        value = self.kernel_config_value(pciback_symbol(self.arch))
        if value == 'm':
            return 'module'
        if value == 'y':
            return 'builtin'
        if value == 'n':
            return 'absent'
        return self.module_build(PCIBACK_MODULE)

    def pciback_parameters(self):
        """xen-pciback's parameters as the running kernel shows them ({} when not loaded)."""
        base = os.path.join(self.paths.pciback_module, 'parameters')
        try:
            names = sorted(os.listdir(base))
        except OSError:
            return {}
        values = dict((name, read_text(os.path.join(base, name))) for name in names)
        # An unset string parameter reads back as "(null)".
        return dict((name, None if value == '(null)' else value) for name, value in values.items())
