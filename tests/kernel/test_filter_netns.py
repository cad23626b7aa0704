"""Interface names in filters (pyroute2): ``ifindex == "NAME"`` on real traffic between network
namespaces.

The topology, made with pyroute2 and removed in a finalizer (also when a test fails):

    root namespace                               namespace ebpfprof-test-XXXX
    eptAXXXX 10.213.S.1/30  <==== veth pair ====>  eptBXXXX 10.213.S.2/30
    tbf qdisc HA:                                  tbf qdisc HB:

ebpfprof runs where the tests run, in the **root** namespace: that is where it resolves interface
names, so the filters name eptA (which lives there); eptB only exists inside the other namespace,
which is what the unknown-name test relies on. Both ends get a tbf qdisc (veth is ``noqueue`` by
default, and pfifo_fast lets an idle queue be bypassed, so neither would run the qdisc
tracepoints), static ARP entries and no IPv6, so the only packets on the pair are the test's:
N UDP datagrams root -> namespace (a socket opened inside the namespace with
``pyroute2.netns.pushns`` receives them) and M replies back.

Tracepoints carry the interface *index* and no namespace: an index is only unique within one
namespace, so ``ifindex == "eptA"`` would also keep events of an interface with the same index in
another namespace. The tests assert that the index of eptA is not the index of eptB.
"""
from __future__ import annotations

import random
import re
import socket
import time
import uuid

import pytest

from runner import Tracer, run_ebpfprof, write_script

N_TO_NS = 120     # datagrams root -> namespace (through eptA)
M_REPLIES = 45    # datagrams namespace -> root (through eptB)

SCRIPT = '''
from collections import Counter
seen = Counter()
def __sample__(event):
    if event._event.startswith("qdisc:"):
        seen[(event._event, event.ifindex, event.handle)] += 1
    else:
        seen[(event._event, event.iif, event.oif, event.err)] += 1
def __exit__():
    for key, n in sorted(seen.items()):
        print("SEEN", repr(key), n)
'''


def parse_seen(stdout: str) -> list[tuple[tuple, int]]:
    import ast

    out = []
    for line in stdout.splitlines():
        m = re.match(r"SEEN (\(.*\)) (\d+)$", line)
        if m:
            out.append((ast.literal_eval(m.group(1)), int(m.group(2))))
    return out


def _missing_piece() -> str | None:
    try:
        import pyroute2  # noqa: F401
        from pyroute2.netns import popns, pushns  # noqa: F401
    except ImportError as exc:
        return f"pyroute2 is missing: {exc}"
    for event in ("qdisc/qdisc_enqueue", "qdisc/qdisc_dequeue", "fib/fib_table_lookup"):
        try:
            open(f"/sys/kernel/tracing/events/{event}/format").close()
        except OSError:
            return f"tracepoint {event.replace('/', ':')} does not exist on this kernel"
    return None


_MISSING = _missing_piece()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


class VethPair:
    """eptA (root namespace) <-> eptB (a new namespace), each with a tbf qdisc, addresses,
    static neighbours and IPv6 off. remove() undoes whatever was made."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute, NetNS, netns

        tag = uuid.uuid4().hex[:6]
        self.ns = f"ebpfprof-test-{tag}"
        self.a, self.b = f"eptA{tag}", f"eptB{tag}"
        subnet = random.randrange(256)
        self.addr_a, self.addr_b = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
        major_a = random.randrange(0x100, 0x800)
        self.handle_a, self.handle_b = major_a << 16, (major_a + 1) << 16
        self._netns = netns
        self._ns_made = False
        self.ipr = IPRoute()
        try:
            self._build(NetNS, major_a)
        except BaseException:
            self.remove()     # whatever was made of it
            raise

    def _build(self, NetNS, major_a: int) -> None:
        netns = self._netns
        netns.create(self.ns)
        self._ns_made = True
        self.ipr.link("add", ifname=self.a, kind="veth", peer={"ifname": self.b, "net_ns_fd": self.ns})
        self.index_a = self.ipr.link_lookup(ifname=self.a)[0]
        _write(f"/proc/sys/net/ipv6/conf/{self.a}/disable_ipv6", "1")
        self.ipr.addr("add", index=self.index_a, address=self.addr_a, prefixlen=30)
        self.ipr.tc("add", "tbf", index=self.index_a, handle=f"{major_a:x}:", rate="1gbit",
                    burst=256 * 1024, latency="100ms")
        mac_a = self.ipr.get_links(self.index_a)[0].get_attr("IFLA_ADDRESS")
        with NetNS(self.ns) as ns:
            self.index_b = ns.link_lookup(ifname=self.b)[0]
            mac_b = ns.get_links(self.index_b)[0].get_attr("IFLA_ADDRESS")
            self._in_ns(lambda: _write(f"/proc/sys/net/ipv6/conf/{self.b}/disable_ipv6", "1"))
            ns.addr("add", index=self.index_b, address=self.addr_b, prefixlen=30)
            ns.tc("add", "tbf", index=self.index_b, handle=f"{major_a + 1:x}:", rate="1gbit",
                  burst=256 * 1024, latency="100ms")
            ns.neigh("add", dst=self.addr_a, lladdr=mac_a, ifindex=self.index_b, state="permanent")
            ns.link("set", index=self.index_b, state="up")
        self.ipr.neigh("add", dst=self.addr_b, lladdr=mac_b, ifindex=self.index_a, state="permanent")
        self.ipr.link("set", index=self.index_a, state="up")

    def _in_ns(self, fn):
        from pyroute2.netns import popns, pushns

        pushns(self.ns)
        try:
            return fn()
        finally:
            popns()

    def exchange(self, n_to_ns: int, m_back: int) -> None:
        """n datagrams root -> namespace, then m back; each side checks it received them all."""
        rx = self._in_ns(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rx.bind((self.addr_b, 0))
            tx.bind((self.addr_a, 0))
            rx.settimeout(2)
            tx.settimeout(2)
            for i in range(n_to_ns):
                tx.sendto(b"to-ns %d" % i, rx.getsockname())
            got = [rx.recvfrom(64)[0] for _ in range(n_to_ns)]
            for i in range(m_back):
                rx.sendto(b"back %d" % i, tx.getsockname())
            back = [tx.recvfrom(64)[0] for _ in range(m_back)]
        finally:
            rx.close()
            tx.close()
        assert len(got) == n_to_ns and len(back) == m_back

    def remove(self) -> None:
        if self.ipr is None:
            return
        try:
            if self.ipr.link_lookup(ifname=self.a):
                self.ipr.link("del", ifname=self.a)   # takes its peer with it
        finally:
            try:
                if self._ns_made:
                    self._netns.remove(self.ns)      # would also take eptB with it
                    self._ns_made = False
            finally:
                self.ipr.close()
                self.ipr = None


@pytest.fixture
def veth():
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        pair = VethPair()     # removes what it made if it fails half-way
    except NetlinkError as exc:
        # The kernel refused a piece (no veth, no tbf, no namespaces): nothing to test here.
        pytest.skip(f"cannot build the veth/namespace topology here: {exc}")
    try:
        yield pair
    finally:
        pair.remove()


def _trace(tmp_path, selectors: list[str], traffic) -> tuple[list[tuple[tuple, int]], str]:
    script = write_script(tmp_path, SCRIPT)
    args = []
    for s in selectors:
        args += ["-e", s]
    tracer = Tracer([*args, str(script)])
    try:
        tracer.wait_attached()
        traffic()
        time.sleep(0.2)
    finally:
        if tracer.proc.poll() is None:
            tracer.signal()
        rc = tracer.wait(timeout=15)
    assert rc == 0, tracer.stderr
    assert re.search(r"events delivered, 0 lost", tracer.stderr), tracer.stderr
    return parse_seen(tracer.stdout), tracer.stderr


def test_qdisc_ifindex_by_name(tmp_path, veth):
    """qdisc_enqueue/qdisc_dequeue with ``ifindex == "eptA"`` count exactly the datagrams sent
    through eptA, and ``ifindex != "eptA"`` (with eptB's qdisc handle) exactly those through eptB."""
    assert veth.index_a != veth.index_b, "same index on both ends: the filter could not tell them apart"
    a = veth.a
    seen, _ = _trace(tmp_path, [
        f'qdisc:qdisc_enqueue/ifindex == "{a}"/alias=enqueue_a/',
        f'qdisc:qdisc_dequeue/ifindex=="{a}" && skbaddr != 0/alias=dequeue_a/',
        f'qdisc:qdisc_enqueue/ifindex != "{a}" && handle == {veth.handle_b:#x}/alias=enqueue_not_a/',
    ], lambda: veth.exchange(N_TO_NS, M_REPLIES))
    print(f"\n{a}: index {veth.index_a}; {veth.b} (in {veth.ns}): index {veth.index_b}; seen {seen}")
    assert seen == [
        (("qdisc:dequeue_a", veth.index_a, veth.handle_a), N_TO_NS),
        (("qdisc:enqueue_a", veth.index_a, veth.handle_a), N_TO_NS),
        (("qdisc:enqueue_not_a", veth.index_b, veth.handle_b), M_REPLIES),
    ], seen


def test_fib_iif_by_name(tmp_path, veth):
    """fib_table_lookup with ``iif == "eptA"``: the route lookups of the replies received on eptA,
    and nothing of any other input interface."""
    seen, _ = _trace(tmp_path, [f'fib:fib_table_lookup/iif == "{veth.a}" && oif != "{veth.a}"/'],
                     lambda: veth.exchange(N_TO_NS, M_REPLIES))
    print(f"\n{veth.a}: index {veth.index_a}; seen {seen}")
    assert seen, "no route lookup for the packets received on eptA"
    assert {key[1] for key, _ in seen} == {veth.index_a}, seen
    assert all(key[2] != veth.index_a for key, _ in seen), seen
    total = sum(n for _, n in seen)
    # One lookup per received datagram, or two with reverse-path filtering; never none.
    assert M_REPLIES <= total <= 3 * M_REPLIES, seen


def test_unknown_interface_name_is_a_clean_error(tmp_path, veth):
    """A name that is not an interface of ebpfprof's namespace — here eptB, which exists, but in
    the other namespace — is one error line, exit 2, before anything is loaded."""
    script = write_script(tmp_path, SCRIPT)
    b = veth.b
    proc = run_ebpfprof("python", "-v", "-e", f'qdisc:qdisc_dequeue/ifindex == "{b}"/', str(script),
                        timeout=30)
    assert proc.returncode == 2, proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith("ebpfprof: error:")]
    assert errors == [
        f"ebpfprof: error: qdisc:qdisc_dequeue filter 'ifindex == \"{b}\"': unknown network "
        f"interface '{b}' at column 12"], proc.stderr
    assert "Traceback" not in proc.stderr
    assert "attached" not in proc.stderr
    assert "hint: interface names are resolved in the current network namespace" in proc.stderr
