# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Awkward values that are not refused are written exactly: what the boot loader, the shell or
modprobe reads back is the value asked for, in one line, and a second run changes nothing. A value
a back end refuses is named in the message and changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.cmdline import render, tokenize
from ansible_collections.xenpci.passthrough.plugins.module_utils._boot.grub_defaults import GRUB_SPECIAL
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.modprobe import parse_owned
from ansible_collections.xenpci.passthrough.plugins.modules import boot_cmdline, module_params
from ansible_collections.xenpci.passthrough.tests.unit.fakes.grubby import FakeEntry
from ansible_collections.xenpci.passthrough.tests.unit.fakes.snapshot import assert_unchanged
from ansible_collections.xenpci.passthrough.tests.unit.plugins.module_utils._boot.test_grub_defaults import shell_lines
from ansible_collections.xenpci.passthrough.tests.unit.plugins.modules.test_bad_input import (
    EXTLINUX,
    EXTLINUX_TEXT,
    PreparedHost,
    _backend_args,
)
from ansible_collections.xenpci.passthrough.tests.unit.strategies import awkward_text

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OWNED = 'etc/modprobe.d/xenpci-e1000.conf'
# What each back end refuses besides a double quote and control characters (see boot_cmdline's documentation).
SPECIAL = {'grub': GRUB_SPECIAL, 'grub in place': GRUB_SPECIAL, 'extlinux': set('$\'\\'), 'grubby': set(' ')}
PRINTABLE = awkward_text.filter(lambda text: text.isprintable() and '"' not in text and text != '')


@pytest.fixture
def host(run):
    return PreparedHost(run)


class Restore:
    """Put back the files and boot entries a written example changed, so the next one starts alike."""

    def __init__(self, host, relative):
        self.host = host
        self.relatives = relative
        self.texts = {}
        for name in relative:
            with open(host.path(name)) as handle:
                self.texts[name] = handle.read()

    def __call__(self):
        for name, text in self.texts.items():
            self.host.write(name, text)
        self.host.grubby.entries[:] = [FakeEntry('/boot/vmlinuz-6', 'ro quiet', root='UUID=1')]


def _written_line(host, backend, target):
    """The command line as the boot loader would get it from what is now on the host."""
    if backend.startswith('grub '):
        return shell_lines(host.root)['dom0_linux']
    if backend == 'grub':
        return shell_lines(host.root)[target]
    if backend == 'extlinux':
        with open(host.path(EXTLINUX)) as handle:
            lines = handle.read().split('\n')
        assert len(lines) == len(EXTLINUX_TEXT.split('\n')), lines
        return [line for line in lines if line.strip().startswith('append')][0].strip()[len('append'):]
    entry = host.grubby.entries[0]
    return ' '.join(['root=%s' % entry.root] + entry.args)


@SETTINGS
@given(PRINTABLE, st.sampled_from(sorted(SPECIAL)))
@example(value="a'b", backend='extlinux')
@example(value='$(reboot)', backend='grub')
@example(value='a b', backend='grubby')
@example(value='`id` x', backend='extlinux')
def test_boot_cmdline_writes_an_accepted_value_exactly_or_refuses_it_naming_it(host, monkeypatch, value, backend):
    args = _backend_args(host, monkeypatch, backend)
    restore = Restore(host, ['etc/default/grub', 'etc/default/grub.d/zz-xenpci-passthrough.cfg', EXTLINUX])
    values = [value] if backend == 'grubby' else ['tty0', value]      # grubby gives a name once only
    params = {'console': values}
    if SPECIAL[backend].intersection(value):
        host.refused(boot_cmdline, [value], params=params, **args)
        return
    try:
        calls = len(host.grubby.calls)
        result = host.run(boot_cmdline, params=params, **args)
        assert result.get('failed') is None and result['changed'] is True, result
        wanted = [render('console', item) for item in values]
        line = _written_line(host, backend, args['target'])
        assert [token.raw for token in tokenize(line) if token.norm_key == 'console'] == wanted, line
        assert result['cmdline_after'].split() == line.split()
        for argv in host.grubby.calls[calls:]:
            assert all(arg.isprintable() for arg in argv), argv
        again = host.run(boot_cmdline, params=params, **args)
        assert again['changed'] is False, again
    finally:
        restore()
    assert_unchanged(host.snapshot, host.root, host.xen, 'the host after the files were put back')


@SETTINGS
@given(st.one_of(PRINTABLE, st.lists(PRINTABLE.filter(lambda text: ',' not in text), min_size=1, max_size=3)))
def test_module_params_writes_an_accepted_value_so_that_it_reads_back(host, value):
    path = host.path(OWNED)
    result = host.run(module_params, name='e1000', params={'debug': value}, runtime=False)
    try:
        if result.get('failed'):
            texts = value if isinstance(value, list) else [value]
            assert any(repr(text) in result['msg'] for text in texts), result['msg']
            assert not os.path.exists(path)
            return
        text = ','.join(value) if isinstance(value, list) else value
        with open(path) as handle:
            written = handle.read()
        options = [line for line in written.split('\n') if line and not line.startswith('#')]
        assert len(options) == 1 and not options[0].endswith('\\'), written
        assert parse_owned(written, path, 'e1000')[0] == [('debug', text)]
        again = host.run(module_params, name='e1000', params={'debug': value}, runtime=False)
        assert again['changed'] is False, again
    finally:
        if os.path.exists(path):
            os.unlink(path)
    assert_unchanged(host.snapshot, host.root, host.xen, 'the host after the file was removed')
