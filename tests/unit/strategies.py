# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hypothesis strategies for bad (and awkward but valid) input, shared by the property tests.

Each ``is_*`` function is the rule written down independently of the collection's code, so a
generated value is classified by the specification, not by the code under test.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from hypothesis import strategies as st

HEX = '0123456789abcdefABCDEF'

# ---- PCI addresses -----------------------------------------------------------------------------

_ADDRESS_SPEC = re.compile(r'(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])')


def is_valid_address(text):
    """``[DDDD:]BB:DD.F``: domain 0-ffff, bus 0-ff, device 0-1f, function 0-7, hexadecimal, nothing else."""
    match = _ADDRESS_SPEC.fullmatch(text)
    return match is not None and int(match.group(3), 16) <= 0x1f


def canonical(domain, bus, device, function):
    return '%04x:%02x:%02x.%x' % (domain, bus, device, function)


def _hex(value, width, upper):
    text = '%0*x' % (width, value)
    return text.upper() if upper else text


@st.composite
def spellings(draw, domain, bus, device, function):
    """One way a user may write a valid address: short or long, any padding, any case."""
    upper = draw(st.booleans())
    dom_width = draw(st.integers(len('%x' % domain), 4))
    prefix = draw(st.sampled_from(['', _hex(domain, dom_width, upper) + ':'])) if domain == 0 else \
        _hex(domain, dom_width, upper) + ':'
    return '%s%s:%s.%d' % (prefix, _hex(bus, draw(st.integers(len('%x' % bus), 2)), upper),
                           _hex(device, draw(st.integers(len('%x' % device), 2)), upper), function)


valid_fields = st.tuples(st.integers(0, 0xffff), st.integers(0, 0xff), st.integers(0, 0x1f), st.integers(0, 7))


@st.composite
def out_of_range_addresses(draw):
    domain, bus, device, function = draw(valid_fields)
    field = draw(st.sampled_from(['domain', 'bus', 'device', 'function']))
    if field == 'domain':
        return '%x:%02x:%02x.%x' % (draw(st.integers(0x10000, 0xfffff)), bus, device, function)
    if field == 'bus':
        return '%04x:%x:%02x.%x' % (domain, draw(st.integers(0x100, 0xfff)), device, function)
    if field == 'device':
        return '%04x:%02x:%x.%x' % (domain, bus, draw(st.integers(0x20, 0xff)), function)
    return '%04x:%02x:%02x.%s' % (domain, bus, device, draw(st.sampled_from(['8', '9', 'a', 'f', 'F', '10', '77'])))


_CLIMBS = ['../', '..', '/', './', '/sys/bus/pci/devices/', '\0', '\n', '\r', ' ', '\t', '%2e%2e%2f', '\\']


@st.composite
def path_climbing_addresses(draw):
    """A valid address with something that names a path or breaks a line around or inside it."""
    address = canonical(*draw(valid_fields))
    piece = draw(st.sampled_from(_CLIMBS))
    where = draw(st.sampled_from(['before', 'after', 'inside', 'alone']))
    if where == 'before':
        return piece + address
    if where == 'after':
        return address + piece + draw(st.sampled_from(['', 'etc/passwd', 'remove_id']))
    if where == 'inside':
        cut = draw(st.integers(1, len(address) - 1))
        return address[:cut] + piece + address[cut:]
    return piece * draw(st.integers(1, 4))


@st.composite
def wildcard_addresses(draw):
    address = draw(spellings(*draw(valid_fields)))
    wildcard = draw(st.sampled_from(['*', '?', '[0-9]', '{0,1}', '..', 'x', '-', '+']))
    index = draw(st.integers(0, len(address) - 1))
    if draw(st.booleans()):
        return address[:index] + wildcard + address[index + 1:]
    return draw(st.sampled_from(['*', '*:*:*.*', '0000:*', '03:00.*', 'all', 'ALL', '']))


bad_addresses = st.one_of(
    out_of_range_addresses(),
    path_climbing_addresses(),
    wildcard_addresses(),
    st.text(max_size=16),
).filter(lambda text: not is_valid_address(text))

# ---- names and values --------------------------------------------------------------------------

_AWKWARD = ['"', "'", '`', '$', '$(reboot)', '`id`', '\\', '\n', '\r', '\0', '\t', ' ', '=', '#', ';', '|', '&',
            '/', '../', '\x7f', '\x85', '\u2028', 'é', '\ue000', '(', ')', ',', '.', '-', '_']

awkward_text = st.one_of(
    st.text(max_size=12),
    st.lists(st.one_of(st.sampled_from(_AWKWARD), st.text('abcXYZ019_-', max_size=4)),
             min_size=1, max_size=5).map(''.join),
)


def is_module_name(text):
    """kmod names: letters, digits, ``-`` and ``_``."""
    return re.fullmatch(r'[A-Za-z0-9_-]+', text) is not None


def is_kconfig_symbol(text):
    """``CONFIG_NAME`` or ``NAME``: upper-case letters, digits and ``_``."""
    return re.fullmatch(r'(?:CONFIG_)?[A-Z0-9_]+', text) is not None


def is_cmdline_key(text):
    """A kernel/Xen parameter name: starts with a letter, digit or ``_``; then also ``.`` and ``-``."""
    return re.fullmatch(r'[A-Za-z0-9_][A-Za-z0-9_.\-]*', text) is not None


def has_control(text):
    """A character that is not printable text (line breaks, NUL, tabs, C1 controls, separators)."""
    return not text.isprintable()
