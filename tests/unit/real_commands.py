# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The test machine's own commands, run for real: /bin/sh reading GRUB defaults files is never faked.

``real_commands()`` is a Commands object for module_utils called directly; the fakes of other tools
(tests/unit/fakes/grubby.py, toolstack.py) hand ``sh`` to ``run_real`` too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess

from ansible_collections.xenpci.passthrough.plugins.module_utils._host.commands import Commands


def run_real(argv):
    done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60, env=dict(os.environ, LANG='C', LC_ALL='C'), check=False)
    return done.returncode, done.stdout.decode('utf-8', 'replace'), done.stderr.decode('utf-8', 'replace')


def real_commands():
    return Commands(shutil.which, run_real)


def is_shell(argv):
    return os.path.basename(argv[0]) == 'sh'
