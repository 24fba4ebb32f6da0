# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The transaction: steps in order, a failure undoes the steps begun (the failing one too), newest first."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.xenpci.passthrough.plugins.module_utils._xen.transaction import Step, StepFailed, Transaction


class Shelf:
    """A tiny piece of state the steps change: a list of items, with a step that can fail after its change."""

    def __init__(self):
        self.items = []

    def step(self, item, fail=None):
        def do():
            self.items.append(item)
            if fail is not None:
                raise fail

        def undo():
            if item in self.items:
                self.items.remove(item)
        return Step('put ' + item, item, do, undo)


def test_steps_run_in_order_and_stay_done():
    shelf = Shelf()
    transaction = Transaction()
    transaction.run([shelf.step('a'), shelf.step('b')])
    transaction.run([shelf.step('c')], undo_on=(OSError,))
    assert shelf.items == ['a', 'b', 'c']
    assert [step.subject for step in transaction.begun] == ['a', 'b', 'c']


def test_a_failure_undoes_every_step_begun_newest_first_the_failing_one_included():
    shelf = Shelf()
    transaction = Transaction()
    transaction.run([shelf.step('journal')])
    with pytest.raises(StepFailed) as failed:
        transaction.run([shelf.step('a'), shelf.step('b', fail=OSError(5, 'EIO')), shelf.step('never')],
                        undo_on=(OSError,))
    assert shelf.items == []
    assert failed.value.step.subject == 'b' and isinstance(failed.value.cause, OSError)
    assert [step.subject for step in failed.value.undone] == ['b', 'a', 'journal']
    assert transaction.begun == []


def test_a_step_without_undo_is_passed_over_by_the_undo():
    shelf = Shelf()
    transaction = Transaction()
    with pytest.raises(StepFailed):
        transaction.run([shelf.step('a'), Step('note', None, lambda: shelf.items.append('note'), None),
                         shelf.step('b', fail=ValueError('no'))], undo_on=(ValueError,))
    assert shelf.items == ['note']


def test_a_failure_not_named_undoes_nothing_and_goes_up_as_it_is():
    shelf = Shelf()
    transaction = Transaction()
    with pytest.raises(KeyError):
        transaction.run([shelf.step('a'), shelf.step('b', fail=KeyError('b'))], undo_on=(OSError,))
    assert shelf.items == ['a', 'b']
    with pytest.raises(OSError):
        Transaction().run([shelf.step('c', fail=OSError(5, 'EIO'))])
    assert shelf.items == ['a', 'b', 'c']
