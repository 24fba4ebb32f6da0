# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.symbols import (
    KernelSymbolError,
    availability,
    check_settable,
    kernel_arch,
    normalise_name,
    parse_kernel_version,
    pciback_symbol,
)


@pytest.mark.parametrize('arch, kernel', [
    ('x86_64', 'x86'), ('x86', 'x86'), ('i686', 'x86'), ('amd64', 'x86'),
    ('aarch64', 'arm64'), ('arm64', 'arm64'), ('armv7l', 'arm'), ('riscv64', 'riscv64'),
])
def test_architectures_get_the_kernel_name(arch, kernel):
    assert kernel_arch(arch) == kernel


@pytest.mark.parametrize('arch, symbol', [
    ('x86_64', 'CONFIG_XEN_PCIDEV_BACKEND'), ('x86', 'CONFIG_XEN_PCIDEV_BACKEND'), ('aarch64', 'CONFIG_XEN_PCIDEV_STUB'),
])
def test_the_pciback_symbol_follows_the_architecture_in_either_spelling(arch, symbol):
    assert pciback_symbol(arch) == symbol


@pytest.mark.parametrize('text, version', [
    ('6.1.0-13-amd64', (6, 1)), ('5.16', (5, 16)), ('v5.10.0', (5, 10)), ('', None), ('linux', None),
])
def test_kernel_versions(text, version):
    assert parse_kernel_version(text) == version


def test_names_with_or_without_prefix_and_nothing_else():
    assert normalise_name('CONFIG_XEN') == 'XEN' and normalise_name('XEN_BACKEND') == 'XEN_BACKEND'
    for bad in ('xen', 'CONFIG_', 'XEN BACKEND', 'XEN\nFOO', 'XEN=y', 3):
        with pytest.raises(KernelSymbolError):
            normalise_name(bad)


def test_the_backend_is_refused_off_x86_naming_the_stub():
    with pytest.raises(KernelSymbolError, match='on arm64 xen-pciback is built by CONFIG_XEN_PCIDEV_STUB'):
        check_settable('XEN_PCIDEV_BACKEND', 'm', 'aarch64', (6, 1))


def test_the_stub_is_refused_on_x86_naming_the_backend():
    with pytest.raises(KernelSymbolError, match='on x86 xen-pciback is built by CONFIG_XEN_PCIDEV_BACKEND'):
        check_settable('XEN_PCIDEV_STUB', 'y', 'x86_64', (6, 1))


def test_the_stub_needs_linux_5_16():
    check_settable('XEN_PCIDEV_STUB', 'm', 'aarch64', (5, 16))
    with pytest.raises(KernelSymbolError, match='from Linux 5.16 on; Linux 5.10 on arm64 has no xen-pciback'):
        check_settable('XEN_PCIDEV_STUB', 'm', 'aarch64', (5, 10))
    check_settable('XEN_PCIDEV_STUB', 'm', 'aarch64', None)


@pytest.mark.parametrize('arch, right', [('x86_64', 'CONFIG_XEN_PCIDEV_BACKEND'), ('aarch64', 'CONFIG_XEN_PCIDEV_STUB')])
def test_xen_pci_stub_is_never_set_by_hand(arch, right):
    for value in ('y', 'n'):
        with pytest.raises(KernelSymbolError, match='cannot be set by hand.*set %s instead' % right):
            check_settable('XEN_PCI_STUB', value, arch, (6, 1))


def test_types_are_checked():
    with pytest.raises(KernelSymbolError, match='is a bool'):
        check_settable('XEN_BACKEND', 'm', 'x86_64', (6, 1))
    with pytest.raises(KernelSymbolError, match='is a tristate'):
        check_settable('XEN_PCIDEV_BACKEND', 'yes', 'x86_64', (6, 1))


def test_switching_a_wrong_arch_symbol_off_is_harmless_and_unknown_symbols_pass():
    check_settable('XEN_PCIDEV_BACKEND', 'n', 'aarch64', (6, 1))
    check_settable('LOCALVERSION', '-xen', 'aarch64', (6, 1))


def test_xen_symbols_on_an_architecture_without_xen():
    assert availability('XEN_BACKEND', 'riscv64', (6, 1))[0] == 'arch'
    assert availability('PCI', 'riscv64', (6, 1)) is None


def test_the_frontend_is_x86_only():
    kind, message = availability('XEN_PCIDEVICE_FRONTEND', 'aarch64', (6, 1))
    assert kind == 'arch' and 'pcifront' in message
