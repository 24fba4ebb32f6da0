# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Vendor, device and class names from the pci.ids database, read only for the ids asked for."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Lines that end a vendor's or a class's block: any that is not indented, a comment or empty.
_BLOCK_END_RE = re.compile(br'\n[^\t#\r\n]')
# The first class line: the classes follow the vendors.
_FIRST_CLASS_RE = re.compile(br'\nC [0-9a-f]{2}[ \t]')


def _find(data, prefix, code, start, end):
    """(name, end of its line) of the line ``<prefix><code>  <name>`` between ``start`` and ``end``, or None.

    The pattern begins with a literal newline, prefix and id, which the regular expression engine finds with a fast
    substring search, not by trying each position; pci.ids writes ids in lower case.
    """
    pattern = re.compile(b'\n' + prefix + re.escape(code.lower().encode('ascii')) + br'[ \t]+([^\n]*)')
    match = pattern.search(data, start, end)
    if match is None:
        return None
    return match.group(1).decode('utf-8', 'replace').strip(), match.end()


def _block_end(data, start, end):
    """Where the block of entries indented below the line that ends at ``start`` ends."""
    match = _BLOCK_END_RE.search(data, start, end)
    return match.start() if match else end


class PciNames:
    """Names for the vendor/device ids and classes given, looked up in pci.ids.

    pci.ids has some 40000 lines; a host has a handful of vendors. The file is read whole and each id asked for
    is found with a regular expression in the part it can be in (a device in its vendor's block, a subclass in its
    class's block): the text is scanned in C, not line by line in Python, which made pci_info seconds slower on an
    emulated dom0.
    """

    def __init__(self, vendors=None, devices=None, classes=None, source=None):
        self.vendors = vendors or {}
        self.devices = devices or {}
        self.classes = classes or {}
        self.source = source        # the pci.ids file read; None when there was none

    @classmethod
    def load(cls, candidates, id_pairs, class_codes):
        """Read the first existing file of ``candidates``; ``id_pairs`` are (vendor, device) hex strings."""
        for path in candidates:
            try:
                with open(path, 'rb') as handle:
                    data = handle.read()
            except (IOError, OSError):
                continue
            return cls.load_text(data, id_pairs, class_codes, path)
        return cls()

    @classmethod
    def load_text(cls, text, id_pairs, class_codes, source=None):
        """The names of ``id_pairs`` and ``class_codes`` (hex strings) in ``text``, the bytes of a pci.ids file."""
        data = b'\n' + text        # every line, the first too, begins after a newline
        classes_start = _FIRST_CLASS_RE.search(data)
        vendors_end = classes_start.start() if classes_start else len(data)
        devices_of = {}
        for vendor, device in id_pairs:
            devices_of.setdefault(vendor, set()).add(device)
        vendors, devices, classes = {}, {}, {}
        for vendor in sorted(devices_of):
            found = _find(data, b'', vendor, 0, vendors_end)
            if found is None:
                continue
            vendors[vendor], line_end = found
            block_end = _block_end(data, line_end, vendors_end)
            for device in sorted(devices_of[vendor]):
                entry = _find(data, b'\t', device, line_end, block_end)
                if entry is not None:
                    devices[(vendor, device)] = entry[0]
        subclasses_of = {}
        for code in class_codes:
            if len(code) >= 2:
                subclasses_of.setdefault(code[:2], set()).update([code[2:4]] if len(code) >= 4 else [])
        for base in sorted(subclasses_of):
            found = _find(data, b'C ', base, vendors_end, len(data))
            if found is None:
                continue
            classes[base], line_end = found
            block_end = _block_end(data, line_end, len(data))
            for subclass in sorted(subclasses_of[base]):
                entry = _find(data, b'\t', subclass, line_end, block_end)
                if entry is not None:
                    classes[base + subclass] = entry[0]
        return cls(vendors, devices, classes, source)

    def vendor_name(self, vendor):
        return self.vendors.get(vendor)

    def device_name(self, vendor, device):
        return self.devices.get((vendor, device))

    def class_name(self, class_code):
        """The subclass name (``Ethernet controller``) when known, else the base class name."""
        return self.classes.get(class_code[:4]) or self.classes.get(class_code[:2])
