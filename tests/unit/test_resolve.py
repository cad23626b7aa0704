"""resolve_selectors on fixture formats: the same event selected twice is said, once."""
from __future__ import annotations

from unittest import mock

import pytest

import support
from ebpfprof.kernel import tracefs
from ebpfprof.options import RunConfig
from ebpfprof.resolve import resolve_selectors


def warnings_for(*events: str) -> list[str]:
    said: list[str] = []

    def read_format(system, name):
        return support.fixture_format(f"{system}_{name}")

    with mock.patch.object(tracefs, "expand_tracepoint", lambda system, name: [(system, name)]), \
            mock.patch.object(tracefs, "read_format", read_format), \
            mock.patch("ebpfprof.resolve.online_cpus", lambda: (0, 1)):
        resolve_selectors(events, RunConfig(events=events), warn=said.append)
    return said


TWICE = ("-e selects sched:sched_wakeup twice with the same filter and alias: each of its events is "
         "delivered twice (give each an alias=, or drop one)")


@pytest.mark.parametrize("events, said", [
    (("sched:sched_wakeup,sched:sched_wakeup",), [TWICE]),
    (("sched:sched_wakeup", "sched:sched_wakeup"), [TWICE]),                   # two -e options
    (("sched:sched_wakeup/pid>1/,sched:sched_wakeup/pid>1/stack/",), [TWICE]),  # ATTRs aside
    (("sched:sched_wakeup//alias=a/,sched:sched_wakeup//alias=a/",), [TWICE]),
    (("sched:sched_wakeup,sched:sched_wakeup,sched:sched_wakeup,sched:sched_switch",),
     [TWICE.replace("twice", "3 times")]),
    (("sched:sched_wakeup//alias=a/,sched:sched_wakeup//alias=b/",), []),      # two aliases: on purpose
    (("sched:sched_wakeup/pid>1/,sched:sched_wakeup/pid>2/",), []),            # two filters
    (("sched:sched_wakeup,sched:sched_switch",), []),
])
def test_the_same_event_twice_is_said_once(events, said):
    assert warnings_for(*events) == said
