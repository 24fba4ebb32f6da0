# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""The host's commands as module_utils run them: argument lists only, in the C locale, each with a time limit.

xl, xenstore, grubby and the other tools are found and run through one ``Commands`` object, which the
modules make from their AnsibleModule and the tests make from fakes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

COMMAND_TIMEOUT = 120               # seconds; an xl command takes about one on hardware, a few under emulation
_TIMED_OUT = (124, 137)             # coreutils timeout: stopped by SIGTERM, or by SIGKILL after --kill-after


class Commands:
    """How module_utils run host commands: ``find(name)`` gives a path or None, ``run(argv)`` gives (rc, out, err)."""

    def __init__(self, find, run):
        self.find = find
        self.run = run

    @classmethod
    def for_module(cls, module, timeout=COMMAND_TIMEOUT):
        """An AnsibleModule's ``get_bin_path`` and ``run_command``, in the C locale so outputs parse.

        Each command is stopped after ``timeout`` seconds (through coreutils' ``timeout`` where it is installed):
        xl and the xenstore tools wait for xenstored forever, and a run must end with an error instead.
        """
        limiter = module.get_bin_path('timeout')

        def run(argv):
            argv = list(argv)
            limited = [limiter, '--kill-after=10', str(timeout)] + argv if limiter else argv
            rc, out, err = module.run_command(limited, environ_update={'LANG': 'C', 'LC_ALL': 'C'})
            if limiter and rc in _TIMED_OUT:
                err = ('%s did not finish within %d s and was stopped (xl and the xenstore tools wait for xenstored: '
                       'is it running?) %s' % (argv[0].rsplit('/', 1)[-1], timeout, err)).strip()
            return rc, out, err
        return cls(module.get_bin_path, run)
