# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""xen-pciback's boot-time ``hide`` list as the kernel reads it, and each device's dom0 access status.

Linux (``drivers/xen/xen-pciback/pci_stub.c``) declares ``hide`` as a string parameter of mode 0444:
``/sys/module/xen_pciback/parameters/hide`` shows the text the module was given, unparsed. ``pcistub_init``
reads it entry by entry, ``(DDDD:BB:DD.F)`` or ``(BB:DD.F)``, hex, blanks around entries allowed, ``*``
for the function or for slot and function (``(0000:03:00.*)``, ``(0000:03:*.*)``). An entry it cannot
read stops it with ``Error parsing pci_devs_to_hide at "<the rest>"`` in the kernel log; a number out
of range (domain above ffff, bus above ff, slot above 1f, function above 7) stops it with EINVAL and no
message. Either way ``pcistub_init`` fails: as a module, xen-pciback does not load at all (modprobe
says "Invalid argument"); built in, its PCI driver never registers (no ``/sys/bus/pci/drivers/pciback``,
so no ``slots``) while ``parameters/hide`` still shows the text. No device is hidden, the entries read
before the bad one included. A device matches an entry when it, or any bridge above it, has the
entry's address (``pcistub_match_one``); pciback takes it only if no driver took it first.

``dom0_access`` combines what holds now (the driver) and what the next boot hides (the hide lists of
modprobe.d, and the command line's ``xen-pciback.hide=``) into the status XenServer reports
(``PCI.get_dom0_access_status``), with two more: ``hidden_but_claimed`` and ``hide_unparsed``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.modprobe import (
    PCIBACK as PCIBACK_MODULE,
    cmdline_params,
    modprobe_files,
    parse_modprobe_text,
    sysfs_name,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._pci.sysfs import read_text

ENABLED = 'enabled'
DISABLE_ON_REBOOT = 'disable_on_reboot'
DISABLED = 'disabled'
ENABLE_ON_REBOOT = 'enable_on_reboot'
HIDDEN_BUT_CLAIMED = 'hidden_but_claimed'
HIDE_UNPARSED = 'hide_unparsed'
STATUSES = (ENABLED, DISABLE_ON_REBOOT, DISABLED, ENABLE_ON_REBOOT, HIDDEN_BUT_CLAIMED, HIDE_UNPARSED)
PCIBACK_DRIVER = 'pciback'

# sscanf's %x: blanks, a sign, an optional 0x, hex digits.
_X = r'\s*([+-]?(?:0[xX])?[0-9a-fA-F]+)'
# pcistub_init's formats, in the order it tries them: with the domain (function, then slot wildcarded), without.
_FORMATS = [re.compile(r'\s*\(' + pattern + r'\)\s*') for pattern in (
    _X + ':' + _X + ':' + _X + r'\.' + _X,
    _X + ':' + _X + ':' + _X + r'\.\*',
    _X + ':' + _X + r':\*\.\*',
    _X + ':' + _X + r'\.' + _X,
    _X + ':' + _X + r'\.\*',
    _X + r':\*\.\*',
)]
_WITH_DOMAIN = 3


def _read_entry(match, index):
    """(domain, bus, slot, function) of a matched entry (-1 for ``*``), or None when a number is out of range."""
    numbers = [int(value, 16) for value in match.groups()]
    if index < _WITH_DOMAIN:
        numbers = numbers + [-1] * (4 - len(numbers))
    else:
        numbers = [0] + numbers + [-1] * (3 - len(numbers))
    domain, bus, slot, function = numbers
    if not (0 <= domain <= 0xffff and 0 <= bus <= 0xff and -1 <= slot <= 0x1f and -1 <= function <= 7):
        return None
    return domain, bus, slot, function


def _match(text, pos):
    for index, pattern in enumerate(_FORMATS):
        match = pattern.match(text, pos)
        if match is not None:
            return match, index
    return None, None


def named_entries(text):
    """Every entry of ``text`` that reads on its own, the ones after a bad entry included: the devices a list the
    kernel rejects was meant to hide."""
    entries = []
    for group in re.findall(r'\([^()]*\)', text or ''):
        match, index = _match(group, 0)
        entry = _read_entry(match, index) if match is not None and match.end() == len(group) else None
        if entry is not None:
            entries.append(entry)
    return entries


def parse_kernel_hide(text):
    """``(entries, error)``: the entries ``pcistub_init`` reads from ``text`` (domain, bus, slot, function; -1 for
    ``*``), and None, or the reason it rejects the whole list (then no device is hidden, these entries included)."""
    entries = []
    if not text:
        return entries, None
    pos = 0
    while True:
        match, index = _match(text, pos)
        if match is None:
            return entries, ('xen-pciback cannot read the hide list at "%s" (the kernel logs: Error parsing '
                             'pci_devs_to_hide at "%s"): it hides nothing' % (text[pos:], text[pos:]))
        entry = _read_entry(match, index)
        if entry is None:
            return entries, ('xen-pciback refuses the hide entry "%s": a number out of range (domain up to ffff, bus '
                             'up to ff, slot up to 1f, function up to 7), EINVAL without a kernel message: it hides '
                             'nothing' % match.group(0).strip())
        entries.append(entry)
        pos = match.end()
        if pos >= len(text):
            return entries, None


def _address_numbers(address):
    domain, bus, rest = address.split(':')
    slot, function = rest.split('.')
    return int(domain, 16), int(bus, 16), int(slot, 16), int(function, 16)


def entry_matches(entry, address):
    domain, bus, slot, function = _address_numbers(address)
    return (entry[0] == domain and entry[1] == bus and entry[2] in (-1, slot) and entry[3] in (-1, function))


def names_device(entries, address, path=None):
    """True when an entry matches the function or a bridge above it (``path``: its identity's path)."""
    upstream = [address]
    if path:
        upstream += path.split('/')[1:-1]
    return any(entry_matches(entry, candidate) for entry in entries for candidate in upstream)


def entry_text(entry):
    domain, bus, slot, function = entry
    return '%04x:%02x:%s.%s' % (domain, bus, '*' if slot < 0 else '%02x' % slot, '*' if function < 0 else '%d' % function)


class HideList:
    """One hide list: where it comes from, its text, what the kernel reads of it."""

    def __init__(self, source, text):
        self.source = source
        self.text = text
        self.entries, self.error = parse_kernel_hide(text)
        # What the list names: what the kernel reads, or for a list it rejects, every entry meant.
        self.named = named_entries(text) if self.error else self.entries

    def names(self, address, path=None):
        return names_device(self.named, address, path)

    def as_dict(self):
        return {'source': self.source, 'text': self.text, 'entries': [entry_text(entry) for entry in self.entries],
                'error': self.error}


def boot_hide(paths, build):
    """The hide list the next boot gives xen-pciback, or None when none: the last ``hide=`` of the modprobe.d files
    in kmod's order (a module), else the command line's ``xen-pciback.hide=`` (the running one's ``/proc/cmdline``:
    what the boot loader will give is not read)."""
    found = None
    if build != 'builtin':
        for path in modprobe_files(paths):
            try:
                with open(path, 'rb') as handle:
                    text = handle.read().decode('utf-8', 'replace')
            except (IOError, OSError):
                continue
            options, dummy = parse_modprobe_text(text, path)
            for line in options:
                if sysfs_name(line.module) == PCIBACK_MODULE:
                    for name, value in line.params:
                        if name == 'hide' and value is not None:
                            found = HideList('%s line %d' % (path, line.line), value)
    cmdline_path = os.path.join(paths.proc, 'cmdline')
    for name, value in cmdline_params(read_text(cmdline_path) or '', PCIBACK_MODULE):
        if name == 'hide' and (found is None or build == 'builtin'):
            found = HideList(cmdline_path, value)
    return found


def running_hide(paths):
    """The hide list the running xen-pciback was given (``parameters/hide``), or None (not loaded, or none given)."""
    text = read_text(os.path.join(paths.pciback_module, 'parameters', 'hide'))
    if text in (None, '', '(null)'):
        return None
    return HideList(os.path.join(paths.pciback_module, 'parameters', 'hide'), text)


def dom0_access(driver, address, path, boot, running, slots):
    """The device's dom0 access status (see pci_info's documentation of ``dom0_access``)."""
    on_pciback = driver == PCIBACK_DRIVER
    for hide in (boot, running):
        if hide is not None and hide.error and hide.names(address, path):
            return HIDE_UNPARSED
    hidden_next = boot is not None and not boot.error and boot.names(address, path)
    if on_pciback:
        return DISABLED if hidden_next else ENABLE_ON_REBOOT
    if (hidden_next and driver is not None and running is not None and not running.error
            and running.names(address, path) and address in slots):
        return HIDDEN_BUT_CLAIMED
    return DISABLE_ON_REBOOT if hidden_next else ENABLED
