# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Bad input to every writing module, property-based: each is refused naming the bad value, and the
host -- every file under the fake root (sysfs with the driver of each device, the journal and its
lock, modprobe.d, the GRUB files, extlinux.conf, a kernel .config), xenstore and Xen's owners --
is exactly as it was (one HostSnapshot before, one after).

One host is laid out per test and shared by its examples: an example that changed anything fails,
so every example starts from the same host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands
from ansible_collections.xenpci.passthrough.plugins.modules import boot_cmdline, kernel_config, module_params, pci_assignable
from ansible_collections.xenpci.passthrough.tests.unit.conftest import E1000_A, E1000_B, XHCI
from ansible_collections.xenpci.passthrough.tests.unit.fakes.grubby import FakeEntry, FakeGrubby
from ansible_collections.xenpci.passthrough.tests.unit.fakes.snapshot import HostSnapshot, assert_unchanged
from ansible_collections.xenpci.passthrough.tests.unit.plugins.module_utils._boot.test_grub_defaults import DEBIAN_GRUB, XEN_CFG
from ansible_collections.xenpci.passthrough.tests.unit.strategies import (
    awkward_text,
    bad_addresses,
    has_control,
    is_cmdline_key,
    is_kconfig_symbol,
    is_module_name,
    is_valid_address,
    spellings,
)

LETTERED = '0000:0a:1c.5'          # a device whose address has letters, to spell it in both cases
KCONFIG = 'usr/src/linux/.config'
EXTLINUX = 'boot/extlinux/extlinux.conf'
EXTLINUX_TEXT = 'default l\nlabel l\n  kernel /Image\n  append root=/dev/mmcblk0p2 rw\n'
KCONFIG_TEXT = '''#
# Linux/x86 6.1.0 Kernel Configuration
#
CONFIG_PCI=y
CONFIG_XEN=y
CONFIG_XEN_DOM0=y
CONFIG_XEN_BACKEND=y
CONFIG_XEN_PCIDEV_BACKEND=m
CONFIG_LOCALVERSION="-xen"
'''
SHARED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class PreparedHost:
    """The rig-shaped dom0 with one device already on pciback and every file the modules manage in place."""

    def __init__(self, run):
        self.run = run
        self.kernel = run.kernel
        self.xen = run.xen
        self.root = run.kernel.root
        self.kernel.add_device(LETTERED, vendor='8086', device='10d3', driver='e1000')
        self.write('etc/default/grub', DEBIAN_GRUB)
        self.write('etc/default/grub.d/xen.cfg', XEN_CFG)
        self.write('etc/modprobe.d/local.conf', 'options e1000 debug=1\n')
        self.write(KCONFIG, KCONFIG_TEXT)
        self.write(EXTLINUX, EXTLINUX_TEXT)
        for module, args in ((pci_assignable, dict(devices=[E1000_B])),
                             (module_params, dict(name='xen-pciback', params={'hide': [E1000_B]}, runtime=False)),
                             (boot_cmdline, dict(target='xen', params={'iommu': '1'}, backend='grub'))):
            result = run(module, **args)
            assert result.get('changed') is True, result
        self.grubby = FakeGrubby([FakeEntry('/boot/vmlinuz-6', 'ro quiet', root='UUID=1')])
        self.snapshot = HostSnapshot.take(self.root, self.xen)
        assert os.path.isfile(self.path('var/lib/xenpci_passthrough/drivers.json'))

    def path(self, relative):
        return os.path.join(self.root, relative)

    def write(self, relative, text):
        path = self.path(relative)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, 'w') as handle:
            handle.write(text)

    def refused(self, module, named, **args):
        """Run ``module`` with bad ``args``: it must fail naming one of ``named`` (``repr`` of each
        is looked for in the message) and change nothing."""
        writes, calls, grubby_calls = len(self.kernel.writes), len(self.xen.calls), len(self.grubby.calls)
        entries = [list(entry.args) for entry in self.grubby.entries]
        result = self.run(module, **args)
        assert result.get('failed') is True, result
        # ansible-core itself refuses a NUL anywhere in the arguments, before the module's code runs.
        ansible_nul = 'embedded null character' in result['msg'] and any('\0' in text for text in named)
        assert ansible_nul or any(repr(text) in result['msg'] for text in named), (named, result['msg'])
        assert self.kernel.writes[writes:] == []
        assert [call for call in self.xen.calls[calls:] if not _reads(call)] == []
        assert [call for call in self.grubby.calls[grubby_calls:] if '--update-kernel=ALL' in call] == []
        assert [list(entry.args) for entry in self.grubby.entries] == entries
        assert_unchanged(self.snapshot, self.root, self.xen)
        return result


def _reads(argv):
    return argv[0] in ('xenstore-ls', 'xenstore-list') or argv[:2] in (['xl', 'info'], ['xl', 'pci-assignable-list'])


@pytest.fixture
def host(run):
    return PreparedHost(run)


# ---- pci_assignable ------------------------------------------------------------------------------

@SHARED
@given(bad=bad_addresses, good=st.lists(st.sampled_from([E1000_A, '00:04.0', XHCI, LETTERED]), max_size=3),
       position=st.integers(0, 3), state=st.sampled_from(['present', 'absent']), check=st.booleans())
def test_pci_assignable_refuses_a_bad_address_before_touching_anything(host, bad, good, position, state, check):
    devices = good[:position] + [bad] + good[position:]
    result = host.refused(pci_assignable, [bad], devices=devices, state=state, _ansible_check_mode=check)
    assert 'nothing was changed' in result['msg']


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(spellings(0, 0x0a, 0x1c, 5), min_size=2, max_size=5))
def test_pci_assignable_moves_a_device_named_in_several_spellings_once(host, names):
    writes, calls = len(host.kernel.writes), len(host.xen.calls)
    result = host.run(pci_assignable, devices=names + [LETTERED], state='present')
    assert result.get('failed') is None, result
    assert [(device['address'], device['action']) for device in result['devices']] == [(LETTERED, 'assigned')]
    assert host.kernel.driver(LETTERED) == 'pciback'
    binds = [text for path, text in host.kernel.writes[writes:] if path.endswith('drivers/pciback/bind')]
    assert binds == [LETTERED]
    assert [call for call in host.xen.calls[calls:] if call[:2] == ['xl', 'pci-assignable-add']] == \
        [['xl', 'pci-assignable-add', LETTERED]]
    back = host.run(pci_assignable, devices=list(reversed(names)), state='absent')
    assert [(device['address'], device['action']) for device in back['devices']] == [(LETTERED, 'released')]
    assert_unchanged(host.snapshot, host.root, host.xen, 'the host after assigning and releasing')


@pytest.fixture
def bare_host(run):
    """The rig-shaped dom0 on which no module ran yet: no journal, no lock, no state directory."""
    host = PreparedHost.__new__(PreparedHost)
    host.run, host.kernel, host.xen, host.root = run, run.kernel, run.xen, run.kernel.root
    host.grubby = FakeGrubby([])
    host.snapshot = HostSnapshot.take(host.root, host.xen)
    return host


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=bad_addresses, good=st.lists(st.sampled_from([E1000_A, XHCI]), max_size=2))
def test_pci_assignable_on_a_fresh_host_creates_nothing_for_a_bad_address(bare_host, bad, good):
    bare_host.refused(pci_assignable, [bad], devices=good + [bad])


# ---- module_params -------------------------------------------------------------------------------

@SHARED
@given(awkward_text.filter(lambda text: not is_module_name(text)), st.sampled_from(['present', 'absent']))
def test_module_params_refuses_a_bad_module_name(host, name, state):
    host.refused(module_params, [name], name=name, params={'permissive': '1'}, state=state)


@SHARED
@given(awkward_text.filter(lambda text: not is_module_name(text)), st.sampled_from(['present', 'absent']))
def test_module_params_refuses_a_bad_parameter_name(host, param, state):
    host.refused(module_params, [param], name='xen-pciback', params={param: '1'}, state=state)


def _bad_modprobe_value(text):
    """What an ``options`` line cannot carry: a line break or control character, a double quote,
    non-ASCII, a trailing backslash (it would continue the line), or nothing at all."""
    return (text == '' or '"' in text or text.endswith('\\')
            or any(ord(char) < 32 or ord(char) > 126 for char in text))


@SHARED
@given(awkward_text.filter(_bad_modprobe_value), st.booleans(), st.sampled_from(['e1000', 'xen-pciback']))
@example(value='abc\\', in_list=False, module='e1000')
def test_module_params_refuses_a_bad_value(host, value, in_list, module):
    params = {'debug': ['1', value] if in_list else value}
    host.refused(module_params, [value], name=module, params=params)


@SHARED
@given(bad_addresses, st.booleans())
def test_module_params_refuses_a_bad_address_in_hide(host, bad, parenthesised):
    # A list item is stripped of surrounding blanks (the canonical form is what is written); inside
    # "(...)" nothing is stripped.
    assume(parenthesised or not is_valid_address(bad.strip()))
    value = '(%s)(0000:00:03.0)' % bad if parenthesised else [E1000_A, bad]
    host.refused(module_params, [bad, bad.strip(), '(%s)(0000:00:03.0)' % bad], name='xen-pciback',
                 params={'hide': value})


# ---- kernel_config -------------------------------------------------------------------------------

@SHARED
@given(awkward_text.filter(lambda text: not is_kconfig_symbol(text)), st.sampled_from(['present', 'absent']))
def test_kernel_config_refuses_a_bad_symbol(host, name, state):
    host.refused(kernel_config, [name], path=host.path(KCONFIG), options={name: 'y'} if state == 'present' else [name],
                 state=state)


@SHARED
@given(awkward_text.filter(lambda text: any(ord(char) < 32 or ord(char) == 127 for char in text)))
def test_kernel_config_refuses_a_value_with_a_line_break_or_control_character(host, value):
    host.refused(kernel_config, [value], path=host.path(KCONFIG), options={'LOCALVERSION': value})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(awkward_text)
def test_kernel_config_writes_any_accepted_string_so_that_it_reads_back(host, value):
    path = host.path('usr/src/other/.config')
    host.write('usr/src/other/.config', KCONFIG_TEXT)
    result = host.run(kernel_config, path=path, options={'LOCALVERSION': value})
    if result.get('failed'):
        assert repr(value) in result['msg']
        return
    again = host.run(kernel_config, path=path, options={'LOCALVERSION': value})
    expected = value.lower() if value in ('Y', 'M', 'N') else value
    assert again['changed'] is False and again['options']['CONFIG_LOCALVERSION']['before'] == expected
    with open(path) as handle:
        lines = handle.read().split('\n')
    assert len(lines) == len(KCONFIG_TEXT.split('\n')), lines


# ---- boot_cmdline --------------------------------------------------------------------------------

BACKENDS = st.sampled_from(['grub', 'grub in place', 'extlinux', 'grubby'])


def _backend_args(host, monkeypatch, backend):
    if backend == 'grubby':
        monkeypatch.setattr(Commands, 'for_module', classmethod(lambda cls, module: host.grubby.commands))
        return dict(backend='grubby', target='linux')
    monkeypatch.setattr(Commands, 'for_module', classmethod(lambda cls, module: host.xen.commands))
    if backend == 'extlinux':
        return dict(backend='extlinux', target='linux')
    if backend == 'grub in place':
        return dict(backend='grub', target='dom0_linux', grub_file='/etc/default/grub')
    return dict(backend='grub', target='xen')


@SHARED
@given(awkward_text.filter(lambda text: not is_cmdline_key(text)), BACKENDS, st.sampled_from(['present', 'absent']))
@example(key='iommu\n', backend='extlinux', state='present')     # a regular expression's $ matches before a final newline
@example(key='iommu\n', backend='grubby', state='present')
def test_boot_cmdline_refuses_a_bad_parameter_name(host, monkeypatch, key, backend, state):
    host.refused(boot_cmdline, [key], params={key: '1'}, state=state, **_backend_args(host, monkeypatch, backend))


@SHARED
@given(awkward_text.filter(lambda text: '"' in text or has_control(text)), BACKENDS, st.sampled_from(['present', 'absent']))
def test_boot_cmdline_refuses_a_value_with_a_quote_or_control_character(host, monkeypatch, value, backend, state):
    host.refused(boot_cmdline, [value], params={'console': ['tty0', value]}, state=state,
                 **_backend_args(host, monkeypatch, backend))
