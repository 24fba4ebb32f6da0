# -*- coding: utf-8 -*-
# Copyright: contributors to xenpci.passthrough
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to xenpci.passthrough: no API promise.

"""A transaction: named steps done in order, each with its undo; a failure undoes the steps begun, newest first.

A step's undo is recorded before the step runs, so a step that fails part-way is undone with the
others: an undo copes with its step done in part or not at all (as putting a device back to its
snapshot does, comparing with what is there). ``undo`` is None for a step whose effect an older
step's undo already takes back.

``run`` is told which failures undo the transaction: those raise StepFailed once the undo is done,
naming the step and its cause. Any other exception, and one raised by an undo, goes up as it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class StepFailed(Exception):
    """``step`` failed with ``cause``; ``undone`` are the steps begun, undone newest first (that order)."""

    def __init__(self, step, cause, undone):
        super(StepFailed, self).__init__('%s: %s' % (step.name, cause))
        self.step = step
        self.cause = cause
        self.undone = undone


class Step:
    """One step: ``do()``, and ``undo()`` to take it back (or None); ``subject`` is what it acts on."""

    def __init__(self, name, subject, do, undo):
        self.name = name
        self.subject = subject
        self.do = do
        self.undo = undo

    def __repr__(self):
        return 'Step(%r, %r)' % (self.name, self.subject)


class Transaction:
    """Steps begun so far, oldest first; ``run`` does more of them, ``undo`` takes them all back."""

    def __init__(self):
        self.begun = []

    def run(self, steps, undo_on=()):
        """Do ``steps`` in order. A failure of a type in ``undo_on`` undoes every step begun (in this call and in
        earlier ones), newest first, and raises StepFailed; other failures undo nothing and go up as they are."""
        for step in steps:
            self.begun.append(step)
            try:
                step.do()
            except undo_on as exc:
                raise StepFailed(step, exc, self.undo())

    def undo(self):
        """Undo every step begun, newest first; return them in that order."""
        undone = []
        while self.begun:
            step = self.begun.pop()
            if step.undo is not None:
                step.undo()
            undone.append(step)
        return undone
