# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""PCI addresses: parse what users write, give back the one canonical form.

Linux names a PCI function ``DDDD:BB:DD.F`` (domain, bus, device, function, lower-case
hex); libxl's xenstore records use ``DDDD-BB-DD-F``. Users also write the short ``BB:DD.F``
(domain 0000). Anything else -- wildcards, paths, control characters -- is refused here,
before any file is touched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import namedtuple

_ADDRESS_RE = re.compile(
    r'^(?:(?P<domain>[0-9a-fA-F]{1,4}):)?'
    r'(?P<bus>[0-9a-fA-F]{1,2}):(?P<slot>[0-9a-fA-F]{1,2})\.(?P<function>[0-7])\Z'
)
_XENSTORE_KEY_RE = re.compile(r'^([0-9a-f]{4})-([0-9a-f]{2})-([0-9a-f]{2})-([0-7])\Z')
_MAX_SLOT = 0x1f


class PciAddressError(ValueError):
    """A string that is not a PCI function address."""


class PciAddress(namedtuple('PciAddress', ['domain', 'bus', 'slot', 'function'])):
    """One PCI function; ``str()`` gives the canonical ``DDDD:BB:DD.F``."""

    __slots__ = ()

    def __str__(self):
        return '%04x:%02x:%02x.%x' % self

    @property
    def xenstore_key(self):
        """The form libxl uses under ``/libxl/pci/``: ``DDDD-BB-DD-F``."""
        return '%04x-%02x-%02x-%x' % self


def parse_pci_address(text):
    """Return the PciAddress for ``text`` (``DDDD:BB:DD.F`` or ``BB:DD.F``) or raise PciAddressError."""
    if not isinstance(text, str):
        raise PciAddressError('a PCI address must be a string, got %s' % type(text).__name__)
    match = _ADDRESS_RE.match(text)
    if match is None:
        raise PciAddressError(
            '%r is not a PCI function address (expected DDDD:BB:DD.F or BB:DD.F in hexadecimal)' % (text,))
    slot = int(match.group('slot'), 16)
    if slot > _MAX_SLOT:
        raise PciAddressError('%r: device number 0x%x is out of range (0-1f)' % (text, slot))
    return PciAddress(int(match.group('domain') or '0', 16), int(match.group('bus'), 16),
                      slot, int(match.group('function')))


def parse_xenstore_key(key):
    """Return the PciAddress for a libxl key ``DDDD-BB-DD-F``, or None when ``key`` is not one."""
    match = _XENSTORE_KEY_RE.match(key)
    if match is None:
        return None
    return PciAddress(*(int(part, 16) for part in match.groups()))


def is_canonical_address(name):
    """True when ``name`` (a sysfs directory entry) is a canonical PCI function address."""
    return len(name) == 12 and _ADDRESS_RE.match(name) is not None and name == name.lower()


def parse_address_list(texts):
    """Canonicalise a list of addresses, dropping repeats of the same function (short or long form).

    Returns ``(addresses, errors)``: the canonical strings in first-seen order and one message
    per malformed entry, so a caller can refuse the whole list at once.
    """
    addresses = []
    seen = set()
    errors = []
    for text in texts:
        try:
            address = str(parse_pci_address(text))
        except PciAddressError as exc:
            errors.append(str(exc))
            continue
        if address not in seen:
            seen.add(address)
            addresses.append(address)
    return addresses, errors


def slot_of(address):
    """``DDDD:BB:DD`` of a canonical address: the device whose function it is."""
    return address[:-2]


def whole_devices(addresses, known):
    """Every address of ``known`` (canonical, in its order) that shares a slot with one of ``addresses``.

    ``functions: all`` of pci_assignable and pci_select: naming one function of a multi-function device
    names the device.
    """
    slots = set(slot_of(address) for address in addresses)
    return [address for address in known if slot_of(address) in slots]
