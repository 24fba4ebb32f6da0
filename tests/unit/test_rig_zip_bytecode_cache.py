# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rig image's bytecode cache for zip imports (tests/rig/zip_bytecode_cache.py), with Python's own zipimport:
a module imported from a zip compiles once; the same source at another path, in another archive, comes from the
cache and names its own path; a changed source compiles afresh; a cache file that cannot be read is compiled over.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os
import sys
import zipfile
import zipimport

import pytest

RIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'rig')
sys.path.insert(0, RIG_DIR)
try:
    import zip_bytecode_cache
finally:
    sys.path.remove(RIG_DIR)


@pytest.fixture
def compiled(monkeypatch, tmp_path):
    """zipimport with the cache under tmp_path; the sources zipimport compiled, as (path, source) in order."""
    calls = []
    real = zipimport._compile_source

    def counting(pathname, source):
        calls.append((pathname, source))
        return real(pathname, source)

    monkeypatch.setattr(zipimport, '_compile_source',
                        zip_bytecode_cache.caching(counting, cache_dir=str(tmp_path / 'cache')))
    yield calls
    for name in [name for name in sys.modules if name.startswith('rigzipdemo')]:
        del sys.modules[name]


def import_from_zip(tmp_path, archive, source):
    """Import the module rigzipdemo from a new zip ``archive`` holding ``source``; return the module."""
    path = str(tmp_path / archive)
    with zipfile.ZipFile(path, 'w') as payload:
        payload.writestr('rigzipdemo.py', source)
    sys.modules.pop('rigzipdemo', None)
    sys.path.insert(0, path)
    try:
        importlib.invalidate_caches()
        return importlib.import_module('rigzipdemo')
    finally:
        sys.path.remove(path)


SOURCE = 'def where():\n    return where.__code__.co_filename\nVALUE = 6 * 7\n'


def test_a_source_compiles_once_and_names_the_archive_it_came_from(compiled, tmp_path):
    first = import_from_zip(tmp_path, 'one.zip', SOURCE)
    second = import_from_zip(tmp_path, 'two.zip', SOURCE)
    assert first.VALUE == second.VALUE == 42
    assert [os.path.basename(os.path.dirname(path)) for path, _source in compiled] == ['one.zip']
    assert second.where() == os.path.join(str(tmp_path / 'two.zip'), 'rigzipdemo.py')
    assert os.listdir(str(tmp_path / 'cache')) == [os.path.basename(zip_bytecode_cache.cache_path(SOURCE.encode()))]


def test_a_changed_source_compiles_afresh(compiled, tmp_path):
    import_from_zip(tmp_path, 'one.zip', SOURCE)
    changed = import_from_zip(tmp_path, 'two.zip', SOURCE.replace('6 * 7', '6 * 8'))
    assert changed.VALUE == 48 and len(compiled) == 2


def test_a_cache_file_that_cannot_be_read_is_compiled_over(compiled, tmp_path):
    cache = tmp_path / 'cache'
    cache.mkdir()
    broken = zip_bytecode_cache.cache_path(SOURCE.encode(), cache_dir=str(cache))
    with open(broken, 'wb') as handle:
        handle.write(b'\xff not marshal data')
    assert import_from_zip(tmp_path, 'one.zip', SOURCE).VALUE == 42 and len(compiled) == 1
    assert import_from_zip(tmp_path, 'two.zip', SOURCE).VALUE == 42 and len(compiled) == 1


def test_a_cache_directory_others_can_write_to_is_not_used(compiled, tmp_path):
    cache = tmp_path / 'cache'
    cache.mkdir()
    os.chmod(str(cache), 0o777)
    import_from_zip(tmp_path, 'one.zip', SOURCE)
    import_from_zip(tmp_path, 'two.zip', SOURCE)
    archives = set(os.path.basename(os.path.dirname(path)) for path, _source in compiled)
    assert archives == set(['one.zip', 'two.zip']) and os.listdir(str(cache)) == []


def test_install_is_once_and_can_be_turned_off(monkeypatch):
    real = zipimport._compile_source
    monkeypatch.setattr(zipimport, '_compile_source', real)
    monkeypatch.setenv('RIG_ZIP_BYTECODE_CACHE', '0')
    zip_bytecode_cache.install()
    assert zipimport._compile_source is real
    monkeypatch.delenv('RIG_ZIP_BYTECODE_CACHE')
    zip_bytecode_cache.install()
    installed = zipimport._compile_source
    zip_bytecode_cache.install()
    assert installed is zipimport._compile_source and installed.uncached is real
