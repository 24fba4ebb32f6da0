# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``patch_module_args`` for every ansible-core the collection supports: ansible-core's own from 2.19 on, and
before it the same thing done the way those versions read a module's arguments (``basic._ANSIBLE_ARGS``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from ansible.module_utils.testing import patch_module_args  # pylint: disable=unused-import
except ImportError:     # ansible-core before 2.19
    import contextlib
    import json

    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        arguments = dict(args or {})
        arguments.setdefault('_ansible_remote_tmp', '/tmp')
        arguments.setdefault('_ansible_keep_remote_files', False)
        saved = basic._ANSIBLE_ARGS, basic.AnsibleModule._log_invocation
        basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': arguments}).encode('utf-8')
        # These versions send every invocation to syslog, which raises ValueError on a NUL character before the
        # module's own checks run; the tests give modules NULs on purpose, so the invocation is not logged here.
        basic.AnsibleModule._log_invocation = lambda module: None
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS, basic.AnsibleModule._log_invocation = saved
