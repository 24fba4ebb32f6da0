# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shutil
import subprocess

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands


class ProcessModule:
    """What Commands.for_module uses of an AnsibleModule, running real processes."""

    def __init__(self, has_timeout=True):
        self.has_timeout = has_timeout

    def get_bin_path(self, name):
        return shutil.which(name) if name != 'timeout' or self.has_timeout else None

    def run_command(self, argv, environ_update=None):
        assert isinstance(argv, list) and environ_update == {'LANG': 'C', 'LC_ALL': 'C'}
        process = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                 check=False)
        return process.returncode, process.stdout, process.stderr


@pytest.mark.skipif(shutil.which('timeout') is None, reason='coreutils timeout is not installed')
def test_commands_for_module_stop_a_command_that_hangs():
    commands = Commands.for_module(ProcessModule(), timeout=1)
    rc, _out, err = commands.run([shutil.which('sleep'), '30'])
    assert rc == 124 and 'sleep did not finish within 1 s' in err and 'xenstored' in err
    rc, out, err = commands.run([shutil.which('echo'), 'fine'])
    assert (rc, out, err) == (0, 'fine\n', '')
    rc, _out, err = commands.run([shutil.which('false')])
    assert rc == 1 and err == ''


def test_commands_for_module_without_coreutils_timeout_run_the_command_itself():
    commands = Commands.for_module(ProcessModule(has_timeout=False), timeout=1)
    assert commands.run([shutil.which('echo'), 'plain']) == (0, 'plain\n', '')
