# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rig scripts' shell library (tests/rig/lib.sh): a refusal stops the script with its reason."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'rig', 'lib.sh')


def run(script, **env):
    environment = dict(os.environ, **env)
    return subprocess.run(['bash', '-c', 'set -euo pipefail; . "$0"; ' + script, LIB], env=environment,
                          capture_output=True, text=True, check=False)


def test_die_stops_the_script_with_its_message():
    result = run('die "the rig is already running"; echo after')
    assert result.returncode == 1 and 'after' not in result.stdout
    assert 'ERROR: the rig is already running' in result.stderr and 'command not found' not in result.stderr


def test_a_bad_architecture_is_refused_when_the_library_is_read():
    result = run('echo read', RIG_ARCH='ppc64le', RIG_CACHE_DIR='/nonexistent')
    assert result.returncode == 1 and 'read' not in result.stdout
    assert "RIG_ARCH must be x86_64 or aarch64, not 'ppc64le'" in result.stderr
