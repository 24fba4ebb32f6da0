# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import os
import sys
import types

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.file_edit import write_planned
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.kconfig import (
    ConfigText,
    KconfigError,
    check_running,
    kconfiglib_problems,
    parse_value,
    plan_edit,
    render_line,
)
from ansible_collections.xenpci.passthrough.plugins.module_utils._kernel.symbols import KernelSymbolError
from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.host import XenHost
from ansible_collections.xenpci.passthrough.tests.unit.fakes.kernel import FakeKernel

FULL_X86 = '''#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.0 Kernel Configuration
#
CONFIG_LOCALVERSION="-dom0"
CONFIG_PCI=y
CONFIG_XEN=y
CONFIG_XEN_DOM0=y

#
# Xen driver support
#
CONFIG_XEN_BACKEND=y
# CONFIG_XEN_PCIDEV_BACKEND is not set
CONFIG_NR_CPUS=64
'''


def _host(tmp_path, arch='x86_64', release='6.1.0-test-amd64', **options):
    kernel = FakeKernel(str(tmp_path / 'host'), arch=arch, release=release, **options)
    return kernel, XenHost(kernel.paths, uname=kernel.uname)


@pytest.fixture
def host(tmp_path):
    return _host(tmp_path)[1]


def _file(tmp_path, text, name='.config'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize('raw, value', [
    ('y', 'y'), ('m', 'm'), ('64', '64'), ('0x1000', '0x1000'), ('""', ''),
    ('"a \\"quoted\\" \\\\ b"', 'a "quoted" \\ b'), ('"-dom0"', '-dom0'), ('y\r', 'y'),
])
def test_values_parse(raw, value):
    assert parse_value(raw) == value


@pytest.mark.parametrize('raw', ['"open', 'a b', '"a" b', 'x"y'])
def test_bad_values_do_not_parse(raw):
    with pytest.raises(ValueError):
        parse_value(raw)


@pytest.mark.parametrize('value, line', [
    ('n', '# CONFIG_X is not set'), ('m', 'CONFIG_X=m'), ('-12', 'CONFIG_X=-12'), ('0xff', 'CONFIG_X=0xff'),
    ('a "b" \\', 'CONFIG_X="a \\"b\\" \\\\"'), ('', 'CONFIG_X=""'), ('64k', 'CONFIG_X="64k"'),
])
def test_lines_render_and_parse_back(value, line):
    assert render_line('X', value) == line
    assert ConfigText(line + '\n').value('X') == value


def test_a_full_config_is_edited_in_place_keeping_order_and_comments(tmp_path, host):
    path = _file(tmp_path, FULL_X86)
    plan = plan_edit(path, {'XEN_PCIDEV_BACKEND': 'm', 'CONFIG_LOCALVERSION': 'a"b', 'HZ': 250}, 'present', host)
    expected = FULL_X86.replace('# CONFIG_XEN_PCIDEV_BACKEND is not set', 'CONFIG_XEN_PCIDEV_BACKEND=m') \
        .replace('CONFIG_LOCALVERSION="-dom0"', 'CONFIG_LOCALVERSION="a\\"b"') + 'CONFIG_HZ=250\n'
    assert plan.planned.after == expected
    assert plan.full and plan.arch == 'x86' and plan.version == '6.1'
    assert plan.options == {
        'CONFIG_XEN_PCIDEV_BACKEND': {'before': 'n', 'after': 'm'},
        'CONFIG_LOCALVERSION': {'before': '-dom0', 'after': 'a"b'},
        'CONFIG_HZ': {'before': None, 'after': '250'},
    }
    assert any('olddefconfig' in note for note in plan.notes)
    write_planned(plan.planned)
    again = plan_edit(path, {'CONFIG_XEN_PCIDEV_BACKEND': 'm', 'LOCALVERSION': 'a"b', 'HZ': '250'}, 'present', host)
    assert not again.planned.changed


def test_n_is_written_as_not_set_and_an_equal_n_is_left_alone(tmp_path, host):
    path = _file(tmp_path, 'CONFIG_A=y\nCONFIG_B=n\n')
    plan = plan_edit(path, {'A': 'n', 'B': False}, 'present', host)
    assert plan.planned.after == '# CONFIG_A is not set\nCONFIG_B=n\n'


def test_absent_drops_every_line_of_the_symbol(tmp_path, host):
    path = _file(tmp_path, '# keep\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_A=m\nCONFIG_C=y\n')
    plan = plan_edit(path, ['A', 'CONFIG_B'], 'absent', host)
    assert plan.planned.after == '# keep\nCONFIG_C=y\n'
    assert plan.options == {'CONFIG_A': {'before': 'm', 'after': None}, 'CONFIG_B': {'before': 'n', 'after': None}}


def test_duplicates_are_folded_into_the_first_line(tmp_path, host):
    path = _file(tmp_path, 'CONFIG_A=m\nCONFIG_B=y\nCONFIG_A=y\n')
    plan = plan_edit(path, {'A': 'm'}, 'present', host)
    assert plan.options['CONFIG_A'] == {'before': 'y', 'after': 'm'}
    assert plan.planned.after == 'CONFIG_A=m\nCONFIG_B=y\n'


def test_a_missing_fragment_is_created_or_refused(tmp_path, host):
    path = str(tmp_path / 'xen.config')
    plan = plan_edit(path, {'XEN_BACKEND': 'y', 'XEN_PCIDEV_BACKEND': 'y'}, 'present', host)
    assert plan.planned.before is None and plan.planned.after == 'CONFIG_XEN_BACKEND=y\nCONFIG_XEN_PCIDEV_BACKEND=y\n'
    assert not plan.full
    assert plan.notes == ['CONFIG_XEN_PCIDEV_BACKEND depends on CONFIG_PCI, CONFIG_XEN, which this fragment does not '
                          'set: the configuration it is merged into must have them']
    with pytest.raises(KconfigError, match='does not exist'):
        plan_edit(path, {'XEN': 'y'}, 'present', host, create=False)
    assert not plan_edit(path, ['XEN'], 'absent', host).planned.changed


def test_a_text_without_final_newline_is_kept_when_nothing_changes(tmp_path, host):
    path = _file(tmp_path, 'CONFIG_A=y')
    assert plan_edit(path, {'A': 'y'}, 'present', host).planned.after == 'CONFIG_A=y'
    assert plan_edit(path, {'B': 'y'}, 'present', host).planned.after == 'CONFIG_A=y\nCONFIG_B=y\n'


@pytest.mark.parametrize('text, line', [
    ('CONFIG_A=y\nthis is not kconfig\n', 2),
    ('CONFIG_A=y\n\nCONFIG_B="unterminated\n', 3),
    ('  CONFIG_A=y\n', 1),
    ('CONFIG_A=two words\n', 1),
])
def test_garbage_is_refused_with_its_line_number(tmp_path, host, text, line):
    path = _file(tmp_path, text)
    with pytest.raises(KconfigError, match='line %d.*left as it was' % line):
        plan_edit(path, {'XEN': 'y'}, 'present', host)


@pytest.mark.parametrize('options, message', [
    ({'xen': 'y'}, 'not a kernel config symbol'),
    ({'XEN': 'y', 'CONFIG_XEN': 'y'}, 'given twice'),
    ({'LOCALVERSION': 'a\nCONFIG_EVIL=y'}, 'line break'),
    ({'NR_CPUS': 1.5}, 'give y, m, n'),
    ({'XEN': None}, 'has no value'),
    (['XEN'], 'must be a mapping'),
    ({}, 'options is empty'),
    ({'XEN_PCI_STUB': 'y'}, 'cannot be set by hand'),
    ({'XEN_PCIDEV_STUB': 'm'}, 'on x86 xen-pciback is built by CONFIG_XEN_PCIDEV_BACKEND'),
])
def test_bad_requests_are_refused(tmp_path, host, options, message):
    path = _file(tmp_path, FULL_X86)
    with pytest.raises(KernelSymbolError, match=message):
        plan_edit(path, options, 'present', host)


def test_a_full_config_refuses_switching_off_what_a_request_needs(tmp_path, host):
    path = _file(tmp_path, FULL_X86.replace('CONFIG_XEN_BACKEND=y', '# CONFIG_XEN_BACKEND is not set'))
    with pytest.raises(KconfigError, match='CONFIG_XEN_PCIDEV_BACKEND=m needs CONFIG_XEN_BACKEND, which would be n'):
        plan_edit(path, {'XEN_PCIDEV_BACKEND': 'm'}, 'present', host)
    path = _file(tmp_path, FULL_X86.replace('# CONFIG_XEN_PCIDEV_BACKEND is not set', 'CONFIG_XEN_PCIDEV_BACKEND=y'))
    with pytest.raises(KconfigError, match='needs CONFIG_XEN_BACKEND'):
        plan_edit(path, {'XEN_BACKEND': 'n'}, 'present', host)
    with pytest.raises(KconfigError, match='does not have'):
        plan_edit(path, ['XEN_BACKEND'], 'absent', host)


def test_a_derived_dependency_names_what_to_set(tmp_path, host):
    path = _file(tmp_path, FULL_X86.replace('CONFIG_XEN_DOM0=y\n', ''))
    with pytest.raises(KconfigError, match='CONFIG_XEN_DOM0.*follows CONFIG_XEN'):
        plan_edit(path, {'XEN_PCIDEV_BACKEND': 'm', 'XEN_BACKEND': 'y'}, 'present', host)


def test_the_header_gives_arch_and_version_for_a_cross_build(tmp_path, host):
    arm = FULL_X86.replace('Linux/x86 6.1.0', 'Linux/arm64 5.10.0').replace('# CONFIG_XEN_PCIDEV_BACKEND is not set\n', '')
    path = _file(tmp_path, arm)
    with pytest.raises(KernelSymbolError, match='on arm64 xen-pciback is built by CONFIG_XEN_PCIDEV_STUB'):
        plan_edit(path, {'XEN_PCIDEV_BACKEND': 'm'}, 'present', host)
    with pytest.raises(KernelSymbolError, match='Linux 5.10 on arm64 has no xen-pciback.*kernel_version'):
        plan_edit(path, {'XEN_PCIDEV_STUB': 'm'}, 'present', host)
    plan = plan_edit(path, {'XEN_PCIDEV_STUB': 'm'}, 'present', host, kernel_version='6.1.0-13-arm64')
    assert plan.arch == 'arm64' and plan.version == '6.1' and plan.planned.after.endswith('CONFIG_XEN_PCIDEV_STUB=m\n')


def test_arch_and_version_given_for_a_fragment(tmp_path, host):
    path = str(tmp_path / 'arm.config')
    plan = plan_edit(path, {'XEN_PCIDEV_STUB': 'm'}, 'present', host, arch='aarch64', kernel_version='6.1')
    assert plan.arch == 'arm64' and plan.planned.after == 'CONFIG_XEN_PCIDEV_STUB=m\n'
    with pytest.raises(KernelSymbolError, match='CONFIG_XEN_PCIDEV_STUB'):
        plan_edit(path, {'XEN_PCIDEV_BACKEND': 'm'}, 'present', host, arch='arm64')


# ---- kconfiglib ------------------------------------------------------------------------------

def test_source_tree_without_kconfiglib_says_what_to_install(tmp_path, host, monkeypatch):
    monkeypatch.setitem(sys.modules, 'kconfiglib', None)
    path = _file(tmp_path, FULL_X86)
    with pytest.raises(KconfigError, match='needs the Python library kconfiglib.*pip install kconfiglib'):
        plan_edit(path, {'XEN_PCIDEV_BACKEND': 'm'}, 'present', host, source_tree=str(tmp_path))


class _Sym:
    def __init__(self, value, deps=(), prompt=True):
        self.str_value = value
        self.direct_dep = list(deps)
        self.nodes = [types.SimpleNamespace(prompt='p' if prompt else None)]


def _fake_kconfiglib(symbols, seen):
    """Enough of kconfiglib's API for the adapter: Kconfig, syms, split_expr, expr_str, expr_value."""
    class Kconfig:
        def __init__(self, filename, warn=True):
            seen['filename'] = filename
            seen['env'] = dict(os.environ)
            self.syms = symbols

        def load_config(self, filename, replace=True):
            with open(filename) as handle:
                seen['config'] = handle.read()
            seen['temp'] = filename
    return types.SimpleNamespace(
        Kconfig=Kconfig, AND='and', KconfigError=RuntimeError,
        split_expr=lambda expr, op: expr, expr_str=lambda part: part[0], expr_value=lambda part: part[1])


def test_kconfiglib_findings_fail_a_full_config(tmp_path, host, monkeypatch):
    tree = tmp_path / 'linux'
    tree.mkdir()
    (tree / 'Kconfig').write_text('')
    seen = {}
    symbols = {'XEN_PCIDEV_BACKEND': _Sym('n', deps=[('PCI', 2), ('XEN_BACKEND', 0)])}
    monkeypatch.setitem(sys.modules, 'kconfiglib', _fake_kconfiglib(symbols, seen))
    monkeypatch.delenv('ARCH', raising=False)
    path = _file(tmp_path, FULL_X86)
    with pytest.raises(KconfigError, match='kconfig gives CONFIG_XEN_PCIDEV_BACKEND=n, not m: it depends on XEN_BACKEND'):
        plan_edit(path, {'XEN_PCIDEV_BACKEND': 'm', 'FOO': 'y'}, 'present', host, source_tree=str(tree))
    assert seen['env']['ARCH'] == 'x86_64' and seen['env']['SRCARCH'] == 'x86' and seen['env']['srctree'] == str(tree)
    assert 'CONFIG_XEN_PCIDEV_BACKEND=m' in seen['config']
    assert 'ARCH' not in os.environ and not os.path.exists(seen['temp'])


def test_kconfiglib_findings_are_notes_for_a_fragment(tmp_path, host, monkeypatch):
    tree = tmp_path / 'linux'
    tree.mkdir()
    (tree / 'Kconfig').write_text('')
    symbols = {'XEN_PCIDEV_STUB': _Sym('m'), 'XEN_PCI_STUB': _Sym('y', prompt=False)}
    monkeypatch.setitem(sys.modules, 'kconfiglib', _fake_kconfiglib(symbols, {}))
    plan = plan_edit(str(tmp_path / 'f.config'), {'XEN_PCIDEV_STUB': 'm', 'MISSING': 'y'}, 'present', host,
                     arch='aarch64', source_tree=str(tree))
    assert plan.checked_with == 'kconfiglib'
    assert 'kconfiglib, with only this fragment set: CONFIG_MISSING is not defined in %s for ARCH=arm64' % tree in plan.notes


def test_a_source_tree_without_kconfig_is_refused(tmp_path, host, monkeypatch):
    monkeypatch.setitem(sys.modules, 'kconfiglib', _fake_kconfiglib({}, {}))
    with pytest.raises(KconfigError, match='no Kconfig file'):
        kconfiglib_problems(str(tmp_path), 'x86_64', (6, 1), '', [('XEN', 'y')])


REAL_KCONFIG = '''
config MODULES
    bool "Modules"
    default y
    option modules

config X86
    def_bool "$(SRCARCH)" = "x86"

config PCI
    bool "PCI"

config XEN
    bool "Xen"

config XEN_DOM0
    def_bool y
    depends on XEN

config XEN_BACKEND
    bool "Backend"
    depends on XEN_DOM0

config XEN_PCI_STUB
    bool

config XEN_PCIDEV_STUB
    tristate "stub"
    depends on PCI && !X86 && XEN
    depends on XEN_BACKEND
    select XEN_PCI_STUB

config XEN_PCIDEV_BACKEND
    tristate "backend"
    depends on PCI && X86 && XEN
    depends on XEN_BACKEND
    select XEN_PCI_STUB
'''.replace('    ', '\t')


def test_real_kconfiglib_on_a_small_tree(tmp_path):
    pytest.importorskip('kconfiglib')
    tree = tmp_path / 'linux'
    tree.mkdir()
    (tree / 'Kconfig').write_text(REAL_KCONFIG)
    good = 'CONFIG_PCI=y\nCONFIG_XEN=y\nCONFIG_XEN_BACKEND=y\nCONFIG_XEN_PCIDEV_BACKEND=m\n'
    assert kconfiglib_problems(str(tree), 'x86_64', (6, 1), good, [('XEN_PCIDEV_BACKEND', 'm')]) == []
    problems = kconfiglib_problems(str(tree), 'aarch64', (6, 1), good, [('XEN_PCIDEV_BACKEND', 'm')])
    assert problems == ['kconfig gives CONFIG_XEN_PCIDEV_BACKEND=n, not m: it depends on X86']


# ---- the running kernel ------------------------------------------------------------------------

def test_the_running_kernel_is_checked_for_the_pciback_symbol_by_default(tmp_path):
    host = _host(tmp_path, pciback_build='module')[1]
    check = check_running(host)
    assert check.ok and check.present == {'CONFIG_XEN_PCIDEV_BACKEND': 'm'}
    assert check.options == {'CONFIG_XEN_PCIDEV_BACKEND': {'wanted': 'y or m', 'running': 'm'}}


def test_missing_and_mismatched_symbols(tmp_path):
    host = _host(tmp_path, pciback_build='absent')[1]
    check = check_running(host, {'XEN': 'm', 'XEN_PCIDEV_BACKEND': 'm', 'XEN_PCI_STUB': 'n', 'LOCALVERSION': '-x'})
    assert check.missing == ['CONFIG_XEN_PCIDEV_BACKEND', 'CONFIG_LOCALVERSION'] and check.mismatched == []
    assert check.present == {'CONFIG_XEN': 'y'}
    assert check.failure_message() == ('this kernel (6.1.0-test-amd64, x86) lacks CONFIG_XEN_PCIDEV_BACKEND, '
                                       'CONFIG_LOCALVERSION')
    host = _host(tmp_path / 'b', pciback_build='builtin')[1]
    check = check_running(host, {'XEN_PCIDEV_BACKEND': 'm', 'CONFIG_XEN': 'n'})
    assert check.mismatched == ['CONFIG_XEN'] and 'has CONFIG_XEN=y, not n' in check.failure_message()


def test_the_wrong_symbol_for_the_running_arch_is_refused(tmp_path):
    host = _host(tmp_path, arch='aarch64', release='6.1.0-13-arm64')[1]
    with pytest.raises(KernelSymbolError, match='on arm64 xen-pciback is built by CONFIG_XEN_PCIDEV_STUB'):
        check_running(host, ['XEN_PCIDEV_BACKEND'])


def test_an_old_arm_kernel_lacks_pciback_and_says_why(tmp_path):
    kernel, host = _host(tmp_path, arch='aarch64', release='5.10.0-28-arm64', pciback_build='absent')
    check = check_running(host)
    assert check.missing == ['CONFIG_XEN_PCIDEV_STUB']
    assert 'Linux 5.10 on arm64 has no xen-pciback' in check.failure_message()


def test_proc_config_gz_is_used_and_no_config_is_an_error(tmp_path):
    kernel, host = _host(tmp_path)
    os.unlink(os.path.join(kernel.paths.boot, 'config-' + kernel.release))
    with pytest.raises(KconfigError, match='config.gz'):
        check_running(host)
    with gzip.open(os.path.join(kernel.paths.proc, 'config.gz'), 'wb') as handle:
        handle.write(b'CONFIG_XEN_PCIDEV_BACKEND=y\nCONFIG_LOCALVERSION="-x"\n')
    check = check_running(host, {'XEN_PCIDEV_BACKEND': 'm', 'LOCALVERSION': '-x'})
    assert check.ok and check.present == {'CONFIG_XEN_PCIDEV_BACKEND': 'y', 'CONFIG_LOCALVERSION': '-x'}
