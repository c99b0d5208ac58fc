// Package fakekernel is a small model of the kernel's NETLINK_ROUTE side
// for host tests: links (vxcan pairs across network namespaces, vcan, CAN
// controllers), can-gw rules and the traffic control objects of package
// ratelimit. It answers exactly the requests kanto-can makes, as an
// nltest.Func, with the kernel's error semantics where kanto-can depends
// on them (EEXIST for a taken name, ENODEV for a missing link, EINVAL for
// deleting a rule that is not there, ...), and refuses what it does not
// model rather than guess.
//
// Every path tested here also runs against the real kernel in the guest
// tests (*_kernel_test.go); this model lets the decisions above netlink
// (attach, rollback, sync, reconcile) be tested at every step on the host,
// with failures injected at any request and interrupted dumps.
//
// Namespaces: 0 is the host's; the others are created by NewNS and named
// by their file's descriptor number, which is what a test passes as a
// target's namespace (target.Target.NS) and what nltest reports as the
// asking socket's namespace.
package fakekernel

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/cangw"
	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/nl/nltest"
)

// Host is the host's network namespace.
const Host = 0

// ARPHRDCAN is the hardware type of every SocketCAN interface.
const ARPHRDCAN = 280

// MTUs of CAN interfaces.
const (
	MTUClassic = 16
	MTUFD      = 72
)

// Link is one network interface as the model keeps it.
type Link struct {
	NS    int
	Index int
	Name  string
	Kind  string // IFLA_INFO_KIND: "can", "vcan", "vxcan", "" (lo)
	Type  uint16 // ARPHRD_*
	MTU   int
	Up    bool
	Alias string
	// PeerNS and PeerIndex name a vxcan end's peer.
	PeerNS, PeerIndex int
	// CANState is a controller's IFLA_CAN_STATE (Kind "can" only).
	CANState uint32
	// Oper is IFLA_OPERSTATE; pending: a vxcan end with carrier that
	// linkwatch has not yet made operational (linkwatch.go).
	Oper    uint8
	pending bool
}

// Kernel is the model. Its methods are safe for concurrent use.
type Kernel struct {
	mu   sync.Mutex
	nss  map[int]*netns
	next uint32 // the last tc action index given out

	mutations int
	log       []string
	failAt    int
	failErr   error
	interrupt int                     // dumps still to mark interrupted
	held      map[int]map[string]bool // links linkwatch never makes operational
}

type netns struct {
	id       int
	file     *os.File // nil for the host
	dev, ino uint64
	links    []*Link // by index
	last     int     // the last ifindex given out
	rules    []cangw.Rule
	ingress  map[int]*qdisc // by ifindex
	actions  map[uint32]*police
	notes    []nl.Message // link notifications sent, for watchers
}

// New returns a kernel with the host's namespace, holding lo.
func New() *Kernel {
	k := &Kernel{nss: map[int]*netns{}}
	k.nss[Host] = newNetns(Host)
	return k
}

func newNetns(id int) *netns {
	n := &netns{id: id, ingress: map[int]*qdisc{}, actions: map[uint32]*police{}}
	n.add(&Link{Name: "lo", Type: unix.ARPHRD_LOOPBACK, MTU: 65536, Up: true})
	return n
}

// add registers l under the namespace's next ifindex (the kernel counts
// indexes per namespace and never reuses one while it runs).
func (n *netns) add(l *Link) *Link {
	n.last++
	l.NS, l.Index = n.id, n.last
	n.links = append(n.links, l)
	return l
}

func (n *netns) byName(name string) *Link {
	for _, l := range n.links {
		if l.Name == name {
			return l
		}
	}
	return nil
}

func (n *netns) byIndex(index int) *Link {
	for _, l := range n.links {
		if l.Index == index {
			return l
		}
	}
	return nil
}

// Dial returns a Conn in the host's namespace whose kernel is k.
func (k *Kernel) Dial() *nl.Conn { return nltest.DialNotifying(k.Func, k.notify) }

// NewNS makes a network namespace (with lo) and returns its file, whose
// descriptor names it: pass the file as a target's namespace. Closing the
// file does not destroy the namespace; DeleteNS does.
func (k *Kernel) NewNS() (*os.File, error) {
	fd, err := unix.MemfdCreate("fakekernel-netns", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "netns")
	k.mu.Lock()
	defer k.mu.Unlock()
	n := newNetns(fd)
	n.file, n.dev, n.ino = f, st.Dev, st.Ino
	k.nss[fd] = n
	return f, nil
}

// DeleteNS destroys the namespace of f, as when a container's last process
// exits: its links are unregistered, a vxcan end's peer with it (both ends
// go, wherever the peer is), and with them the rules naming them. f stays
// open.
func (k *Kernel) DeleteNS(f *os.File) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nss[int(f.Fd())]
	if n == nil {
		return
	}
	for _, l := range slices.Clone(n.links) {
		k.unregister(l)
	}
	delete(k.nss, n.id)
}

// nsOfFD resolves an IFLA_NET_NS_FD as the kernel does, by the file the
// descriptor refers to: one of NewNS's, or /dev/null, which is how
// package nltest names the host's namespace (a socket's NetNS).
func (k *Kernel) nsOfFD(fd int) (*netns, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, unix.EBADF
	}
	for _, n := range k.nss {
		if n.file != nil && n.dev == st.Dev && n.ino == st.Ino {
			return n, nil
		}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(1, 3) {
		return k.nss[Host], nil
	}
	return nil, unix.EINVAL // not a network namespace
}

// AddLink registers a link in namespace ns, as a driver or another tool
// would (a CAN controller: Kind "can"; a vcan: "vcan"), and returns it with
// its ifindex. Type defaults to ARPHRD_CAN, MTU to the classic one.
func (k *Kernel) AddLink(ns int, l Link) (Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nss[ns]
	if n == nil {
		return Link{}, fmt.Errorf("fakekernel: no namespace %d", ns)
	}
	if n.byName(l.Name) != nil {
		return Link{}, fmt.Errorf("fakekernel: %s: %w", l.Name, unix.EEXIST)
	}
	if l.Type == 0 {
		l.Type = ARPHRDCAN
	}
	if l.MTU == 0 {
		l.MTU = MTUClassic
	}
	return *n.add(&l), nil
}

// AddPair registers a vxcan pair made by another tool: end a in namespace
// nsA, end b in nsB.
func (k *Kernel) AddPair(nsA int, a Link, nsB int, b Link) (Link, Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	na, nb := k.nss[nsA], k.nss[nsB]
	if na == nil || nb == nil {
		return Link{}, Link{}, fmt.Errorf("fakekernel: no namespace %d or %d", nsA, nsB)
	}
	if na.byName(a.Name) != nil || nb.byName(b.Name) != nil {
		return Link{}, Link{}, unix.EEXIST
	}
	a.Kind, b.Kind, a.Type, b.Type = "vxcan", "vxcan", ARPHRDCAN, ARPHRDCAN
	if a.MTU == 0 {
		a.MTU = MTUFD
	}
	b.MTU = a.MTU
	la, lb := na.add(&a), nb.add(&b)
	la.PeerNS, la.PeerIndex, lb.PeerNS, lb.PeerIndex = nsB, lb.Index, nsA, la.Index
	if la.Up && lb.Up { // settled long ago
		la.Oper, lb.Oper = OperUp, OperUp
	}
	return *la, *lb, nil
}

// RemoveLink unregisters the link called name in ns, as a driver does when
// its device goes (a replugged adapter): its rules go with it.
func (k *Kernel) RemoveLink(ns int, name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nss[ns]
	if n == nil || n.byName(name) == nil {
		return fmt.Errorf("fakekernel: %s: %w", name, unix.ENODEV)
	}
	k.unregister(n.byName(name))
	return nil
}

// unregister removes l (and a vxcan end's peer) and what names it: the
// can-gw rules (cgw_notifier) and its ingress qdisc.
func (k *Kernel) unregister(l *Link) {
	n := k.nss[l.NS]
	if n == nil || n.byIndex(l.Index) != l {
		return // gone already
	}
	n.links = slices.DeleteFunc(n.links, func(o *Link) bool { return o == l })
	del := k.linkMessage(l)
	del.Header.Type = unix.RTM_DELLINK
	n.note(del)
	n.rules = slices.DeleteFunc(n.rules, func(r cangw.Rule) bool { return r.Src == l.Index || r.Dst == l.Index })
	n.dropIngress(l.Index)
	if l.Kind == "vxcan" {
		if pn := k.nss[l.PeerNS]; pn != nil {
			if p := pn.byIndex(l.PeerIndex); p != nil {
				k.unregister(p)
			}
		}
	}
}

// Link returns the link called name in ns.
func (k *Kernel) Link(ns int, name string) (Link, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nss[ns]; n != nil {
		if l := n.byName(name); l != nil {
			return *l, true
		}
	}
	return Link{}, false
}

// Links returns the links of ns by ifindex.
func (k *Kernel) Links(ns int) []Link {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []Link
	if n := k.nss[ns]; n != nil {
		for _, l := range n.links {
			out = append(out, *l)
		}
	}
	return out
}

// FailAt makes the nth state-changing request from now (1: the next one)
// fail with err (a unix.Errno or an *nl.KernelError), changing nothing.
// Requests that only read are not counted.
func (k *Kernel) FailAt(n int, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failAt, k.failErr = k.mutations+n, err
}

// Mutations is how many state-changing requests were answered so far,
// failed ones included.
func (k *Kernel) Mutations() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.mutations
}

// Log returns the state-changing requests so far, one line each (what,
// then the outcome when it failed), in order.
func (k *Kernel) Log() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.log)
}

// InterruptDumps marks the next n dumps interrupted (NLM_F_DUMP_INTR), as
// the kernel does when its table changed under the dump; each such dump
// answers with only the first half of the table, as a dump cut by a change
// may.
func (k *Kernel) InterruptDumps(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.interrupt = n
}

// State is everything the model holds, one line per object, sorted, so
// that tests compare it before and after (rule order and the ifindexes
// given out are not part of it: the kernel does not promise either).
func (k *Kernel) State() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var lines []string
	for _, n := range k.nss {
		for _, l := range n.links {
			line := fmt.Sprintf("ns%d link %d %s kind=%s mtu=%d up=%v alias=%q", n.id, l.Index, l.Name, l.Kind, l.MTU, l.Up, l.Alias)
			if l.Kind == "vxcan" {
				line += fmt.Sprintf(" peer=ns%d/%d", l.PeerNS, l.PeerIndex)
			}
			lines = append(lines, line)
		}
		for _, r := range n.rules {
			lines = append(lines, fmt.Sprintf("ns%d rule %s", n.id, RuleString(r)))
		}
		for ifindex, q := range n.ingress {
			line := fmt.Sprintf("ns%d ingress %d", n.id, ifindex)
			if f := q.filter; f != nil {
				p := n.actions[f.action]
				line += fmt.Sprintf(" matchall prio %d handle %d police %d/s burst %d ticks", f.prio, f.handle, p.rate, p.burst)
			}
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// RuleString shows a rule compactly: src>dst flags filter hops.
func RuleString(r cangw.Rule) string {
	s := fmt.Sprintf("%d>%d %s", r.Src, r.Dst, r.Flags)
	if f := r.Filter; f != nil && (f.ID != 0 || f.Mask != 0 || f.Inverted) {
		s += fmt.Sprintf(" %08x/%08x", f.ID, f.Mask)
		if f.Inverted {
			s += "!"
		}
	} else {
		s += " all"
	}
	if r.HopLimit != 0 {
		s += fmt.Sprintf(" hops=%d", r.HopLimit)
	}
	return s
}

// mutating are the request types that change state.
var mutating = map[nl.HeaderType]string{
	unix.RTM_NEWLINK: "newlink", unix.RTM_DELLINK: "dellink",
	unix.RTM_NEWROUTE: "newroute", unix.RTM_DELROUTE: "delroute",
	unix.RTM_NEWQDISC: "newqdisc", unix.RTM_DELQDISC: "delqdisc",
	unix.RTM_NEWTFILTER: "newtfilter", unix.RTM_DELTFILTER: "deltfilter",
	unix.RTM_NEWACTION: "newaction", unix.RTM_DELACTION: "delaction",
}

// Func answers one request from a socket in namespace ns: it is the
// nltest.Func of the model.
func (k *Kernel) Func(ns int, req nl.Message) ([]nl.Message, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nss[ns]
	if n == nil {
		return nil, unix.EINVAL // the namespace is gone: no socket there
	}
	if what, ok := mutating[req.Header.Type]; ok {
		k.mutations++
		if k.mutations == k.failAt {
			k.log = append(k.log, fmt.Sprintf("ns%d %s: injected %v", ns, what, k.failErr))
			return nil, k.failErr
		}
		summary, err := k.change(n, req)
		line := fmt.Sprintf("ns%d %s %s", ns, what, summary)
		if err != nil {
			line += fmt.Sprintf(": %v", err)
		}
		k.log = append(k.log, line)
		return nil, err
	}
	var replies []nl.Message
	var err error
	switch req.Header.Type {
	case unix.RTM_GETLINK:
		replies, err = k.getLink(n, req)
	case unix.RTM_GETROUTE:
		replies, err = k.listRules(n, req)
	case unix.RTM_GETTFILTER:
		replies, err = k.listFilters(n, req)
	default:
		return nil, notModelled("request type %d", req.Header.Type)
	}
	if err != nil || req.Header.Flags&nl.Dump != nl.Dump || k.interrupt == 0 {
		return replies, err
	}
	k.interrupt--
	replies = replies[:len(replies)/2]
	if len(replies) == 0 { // the mark travels on a reply
		replies = []nl.Message{{Header: nl.Header{Type: unix.NLMSG_NOOP}}}
	}
	for i := range replies {
		replies[i].Header.Flags |= nl.DumpInterrupted
	}
	return replies, nil
}

// change applies a state-changing request; summary says what it was.
func (k *Kernel) change(n *netns, req nl.Message) (summary string, err error) {
	switch req.Header.Type {
	case unix.RTM_NEWLINK:
		return k.newLink(n, req)
	case unix.RTM_DELLINK:
		return k.delLink(n, req)
	case unix.RTM_NEWROUTE:
		return n.addRule(req)
	case unix.RTM_DELROUTE:
		return n.delRule(req)
	case unix.RTM_NEWQDISC:
		return n.newQdisc(req)
	case unix.RTM_DELQDISC:
		return n.delQdisc(req)
	case unix.RTM_NEWTFILTER:
		return k.newFilter(n, req)
	case unix.RTM_NEWACTION:
		return k.replaceAction(n, req)
	}
	return "", notModelled("request type %d", req.Header.Type)
}

// notModelled is the answer to what this model does not know: an error a
// test cannot mistake for the kernel's.
func notModelled(format string, args ...any) error {
	return &nl.KernelError{Errno: unix.ENOSYS, Message: "fakekernel: not modelled: " + fmt.Sprintf(format, args...)}
}

// ne: netlink structs are in host byte order.
var ne = binary.NativeEndian
