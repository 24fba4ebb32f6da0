# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""Vendor, device and class names from the pci.ids database, read only for the ids asked for."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def _split_entry(line):
    """``8086  Intel Corporation`` -> ('8086', 'Intel Corporation')."""
    parts = line.split(None, 1)
    return parts[0].lower(), (parts[1].strip() if len(parts) > 1 else '')


class PciNames:
    """Names for the vendor/device ids and classes given, loaded in one pass over pci.ids."""

    def __init__(self, vendors=None, devices=None, classes=None, source=None):
        self.vendors = vendors or {}
        self.devices = devices or {}
        self.classes = classes or {}
        self.source = source        # the pci.ids file read; None when there was none

    @classmethod
    def load(cls, candidates, id_pairs, class_codes):
        """Read the first existing file of ``candidates``; ``id_pairs`` are (vendor, device) hex strings."""
        wanted_vendors = set(vendor for vendor, _device in id_pairs)
        wanted_pairs = set(id_pairs)
        wanted_classes = set()
        for code in class_codes:
            wanted_classes.update((code[:2], code[:4]))
        for path in candidates:
            try:
                handle = open(path, 'rb')
            except (IOError, OSError):
                continue
            with handle:
                return cls._parse(handle, wanted_vendors, wanted_pairs, wanted_classes, path)
        return cls()

    @classmethod
    def _parse(cls, handle, wanted_vendors, wanted_pairs, wanted_classes, source):
        vendors, devices, classes = {}, {}, {}
        vendor = None
        class_code = None
        for raw in handle:
            if not raw.strip() or raw.startswith(b'#'):
                continue
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            if line.startswith('\t\t'):
                continue  # subsystems and programming interfaces
            if line.startswith('\t'):
                if vendor is not None:
                    device, name = _split_entry(line)
                    if (vendor, device) in wanted_pairs:
                        devices[(vendor, device)] = name
                elif class_code is not None:
                    subclass, name = _split_entry(line)
                    if class_code + subclass in wanted_classes:
                        classes[class_code + subclass] = name
                continue
            vendor = class_code = None
            if line.startswith('C '):
                code, name = _split_entry(line[2:])
                class_code = code
                if code in wanted_classes:
                    classes[code] = name
                continue
            vendor_id, name = _split_entry(line)
            if vendor_id in wanted_vendors:
                vendors[vendor_id] = name
                vendor = vendor_id
        return cls(vendors, devices, classes, source)

    def vendor_name(self, vendor):
        return self.vendors.get(vendor)

    def device_name(self, vendor, device):
        return self.devices.get((vendor, device))

    def class_name(self, class_code):
        """The subclass name (``Ethernet controller``) when known, else the base class name."""
        return self.classes.get(class_code[:4]) or self.classes.get(class_code[:2])
